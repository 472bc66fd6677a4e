"""Offline decode block-ranking diagnostic: exact block attention mass vs keys4 and SOCKET
(soft-LSH) variants on captured real Q/K/V (capture.py).

For one capture file it scores the key blocks of every (layer, kv group, decode query) with
each scorer and reports, against the exact attention mass: the mass captured by the top 20% /
10% of blocks, by the ~20% decode rule (sink + window + candidates), top-1 and needle block
hits and the attention output error; it writes DIR/<capture>_summary.json,
DIR/<capture>_perlayer.json and DIR/<capture>.acc.pkl. `--merge` pools several .acc.pkl files
into DIR/merged_summary.json and DIR/merged_perlayer.json. Run from the repository root:

    python -m eval.socket_diagnostic.analyze --out DIR DIR/cap_<model>_<task>_<length>_<i>.pt
    python -m eval.socket_diagnostic.analyze --out DIR --merge DIR/cap_*.acc.pkl
"""

import argparse
import collections
import json
import math
import time
from pathlib import Path

import torch

from sketchwalk import ops, soft_lsh
from sketchwalk.attention import keys4_layer_state

torch.set_num_threads(2)
BS = 64
FRACS = (0.2, 0.1)
DEC = dict(keep=0.125, window=0.05, sink=0.025)  # the decode knobs of the ~20% GPU runs
DENSE_LAYERS = 2
SOCK = [
    ((60, 8), 0.3),
    ((60, 8), 0.1),
    ((60, 8), 0.5),
    ((60, 8), 1.0),
    ((120, 8), 0.3),
    ((120, 8), 1.0),
    ((60, 10), 0.3),
    ("inf", 0.3),
    ("inf", 0.1),
]
TOK = {((60, 8), 0.3), ((60, 8), 1.0), ((120, 8), 0.3)}


def planes_for(D, L, P):
    if (L, P) == (soft_lsh.TABLES, soft_lsh.PLANES):
        return soft_lsh.hyperplanes(D, 0, "cpu")  # exactly what sketchwalk uses (seed 0)
    g = torch.Generator().manual_seed(1234 + 31 * L + P)
    return torch.randn(L, P, D, generator=g)


def key_codes(k, pl):  # k [Hkv,T,D] -> int64 [Hkv, L, T]
    bits = (torch.einsum("htd,lpd->hltp", k, pl) >= 0).long()
    w = 1 << torch.arange(pl.shape[1] - 1, -1, -1)
    return (bits * w).sum(-1)


CORN = {}


def q_probs(q, pl, T):  # q [Hq,D] -> [Hq, L, R]
    P = pl.shape[1]
    if P not in CORN:
        CORN[P] = (
            soft_lsh.corners(P, "cpu")
            if P <= 8
            else torch.tensor(
                [[(r >> (P - 1 - p)) & 1 for p in range(P)] for r in range(2**P)],
                dtype=torch.float32,
            ).t()
            * 2
            - 1
        )
    proj = torch.einsum("hd,lpd->hlp", q, pl)
    return torch.softmax((torch.tanh(proj) / q.shape[-1] ** 0.5) @ CORN[P] / T, dim=-1)


def soft_scores(q, codes, pl, T, hkv):  # -> per-head key score (no ||v||) [Hkv, G, Tk]
    pr = q_probs(q, pl, T)
    Hq, L, R = pr.shape
    G = Hq // hkv
    Tk = codes.shape[-1]
    idx = codes[:, None].expand(hkv, G, L, Tk)
    return torch.gather(pr.view(hkv, G, L, R), -1, idx).sum(2)


def blockify(x, n, red):  # x [..., T] >= 0 -> [..., n]
    x = torch.nn.functional.pad(x, (0, n * BS - x.shape[-1]))
    x = x.view(*x.shape[:-1], n, BS)
    return x.amax(-1) if red == "max" else x.sum(-1)


def topk_mask(s, k):
    m = torch.zeros_like(s, dtype=torch.bool)
    if k > 0:
        m.scatter_(-1, s.topk(k, dim=-1).indices, True)
    return m


def metrics(score, mass, n, T, needle_blocks, p=None, Vt=None):
    """score, mass [Hkv, n] -> dict of per-group lists."""
    out = collections.defaultdict(list)
    for f in FRACS:
        k = max(1, math.ceil(f * n))
        got = (mass * topk_mask(score, k)).sum(-1)
        best = (mass * topk_mask(mass, k)).sum(-1)
        out[f"top{int(f * 100)}"] = (got / best).tolist()
    sb = min(n, math.ceil(max(1, math.floor(DEC["sink"] * T)) / BS))
    wb = min(n, math.ceil(max(1, math.floor(DEC["window"] * T)) / BS))
    lo, hi = sb, n - wb
    kc = max(1, round(DEC["keep"] * (hi - lo)))
    forced = mass[:, :lo].sum(-1) + mass[:, hi:].sum(-1)
    sel = topk_mask(score[:, lo:hi], kc)
    osel = topk_mask(mass[:, lo:hi], kc)
    cg, co = (mass[:, lo:hi] * sel).sum(-1), (mass[:, lo:hi] * osel).sum(-1)
    out["rule20"] = ((forced + cg) / (forced + co)).tolist()
    if (
        p is not None
    ):  # relative L2 error of the attention output per head under the rule's selection
        keep = torch.ones_like(score, dtype=torch.bool)
        keep[:, lo:hi] = sel
        tk = keep.repeat_interleave(BS, -1)[:, :T]  # [Hkv, T]
        ps = p * tk[:, None]
        ps = ps / ps.sum(-1, keepdim=True)
        o, os_ = p @ Vt, ps @ Vt  # [Hkv, G, D]
        out["outerr"] = ((os_ - o).norm(dim=-1) / o.norm(dim=-1)).mean(-1).tolist()
    out["cand20"] = (cg / co).tolist()
    top1 = mass[:, lo:hi].argmax(-1)
    out["hit1"] = sel.gather(-1, top1[:, None])[:, 0].float().tolist()
    nb = [b - lo for b in needle_blocks if lo <= b < hi]
    if nb:
        ok = osel[:, nb].any(-1)
        out["needle"] = [float(x) for x, o in zip(sel[:, nb].any(-1).tolist(), ok.tolist()) if o]
    return out


def tok_metrics(tscore, p, lo, hi):  # per-head token scores / exact probs [Hkv, G, T]
    out = {}
    p, tscore = p[..., lo:hi], tscore[..., lo:hi]
    T = p.shape[-1]
    for f in FRACS:
        k = max(1, math.ceil(f * T))
        got = (p * topk_mask(tscore, k)).sum(-1)
        best = (p * topk_mask(p, k)).sum(-1)
        out[f"top{int(f * 100)}"] = (got.sum(-1) / best.sum(-1)).tolist()
    return out


def run_file(path, acc, perlayer):
    d = torch.load(path)
    Lyr = len(d["k"])
    Hkv, Tf, D = d["k"][0].shape
    Hq = d["q"][0].shape[1]
    G = Hq // Hkv
    needle_blocks = sorted({t // BS for occ in d["needle_tok"] for t in occ})
    cfgs = {}
    t0 = time.time()
    for li in range(Lyr):
        K, V = d["k"][li], d["v"][li]
        vn = V.norm(dim=-1)  # [Hkv, T]
        for LP in [(60, 8), (120, 8), (60, 10)]:
            pl = planes_for(D, *LP)
            cfgs[LP] = (pl, key_codes(K, pl))
        st = keys4_layer_state(K[None])
        for s, T in enumerate(d["nkeys"]):
            q = d["q"][li][s]  # [Hq, D]
            n = -(-T // BS)
            Kt, vt = K[:, :T], vn[:, :T]
            logits = d["scaling"] * torch.einsum("hgd,htd->hgt", q.view(Hkv, G, D), Kt)
            p = torch.softmax(logits, -1)  # [Hkv, G, T]
            mass = blockify(p, n, "sum").sum(1)  # [Hkv, n]
            bscores = {}
            tscores = {}
            bscores["oracle"] = mass
            mk = ops.score_blocks_keys4(
                q[None, :, None],
                st.codes,
                st.scales,
                torch.tensor([T], dtype=torch.int32),
                d["scaling"],
                True,
            )[0, :, :n]
            bscores["keys4"] = mk
            codes4 = ((st.codes[0, :, :T].long() & 15) - 8, (st.codes[0, :, :T].long() >> 4) - 8)
            kq = torch.stack(codes4, -1).view(Hkv, T, D).float() * st.scales[0, :, :T, None]
            tscores["keys4"] = torch.einsum("hgd,htd->hgt", q.view(Hkv, G, D), kq)
            bscores["exact-max"] = blockify(p, n, "max").sum(1)
            for LP, Tm in SOCK:
                if LP == "inf":
                    a = torch.sigmoid(torch.tensor(2.0 / (D**0.5 * Tm)))
                    cos = torch.nn.functional.cosine_similarity(
                        q.view(Hkv, G, 1, D), Kt[:, None], dim=-1
                    )
                    th = torch.arccos(cos.clamp(-1, 1)) / math.pi
                    base = (a * (1 - th) + (1 - a) * th) ** 8
                    tag = f"L=inf T={Tm}"
                else:
                    pl, codes = cfgs[LP]
                    base = soft_scores(q, codes[..., :T], pl, Tm, Hkv)  # [Hkv,G,T]
                    tag = f"{LP[0]}x{LP[1]} T={Tm}"
                wv = base * vt[:, None]
                bscores[f"socket {tag} V max"] = blockify(wv, n, "max").sum(1)
                if (LP, Tm) == ((60, 8), 0.3) and li == 0 and s == 0:  # check against the package
                    ref = soft_lsh.block_scores(
                        soft_lsh.query_probs(q[None, :, None], pl),
                        soft_lsh.hash_keys(Kt[None], pl),
                        vt[None],
                    )[0]
                    assert torch.allclose(ref, bscores[f"socket {tag} V max"], rtol=1e-4)
                bscores[f"socket {tag} V sum"] = blockify(wv, n, "sum").sum(1)
                bscores[f"socket {tag} noV max"] = blockify(base, n, "max").sum(1)
                bscores[f"socket {tag} noV sum"] = blockify(base, n, "sum").sum(1)
                if (LP, Tm) in TOK:
                    tscores[f"socket {tag} V"] = wv
                    tscores[f"socket {tag} noV"] = base
                if (LP, Tm) == ((60, 8), 0.3):
                    base0 = base
            cos = torch.nn.functional.cosine_similarity(q.view(Hkv, G, 1, D), Kt[:, None], dim=-1)
            bscores["cos-max"] = blockify((cos + 1), n, "max").sum(1)
            bscores["cos-max V"] = blockify((cos + 1) * vt[:, None], n, "max").sum(1)
            base = base0
            for name, sc in bscores.items():
                m = metrics(sc, mass, n, T, needle_blocks, p, V[:, :T])
                for key, vals in m.items():
                    acc[(name, key, li >= DENSE_LAYERS)].extend(vals)
                    perlayer[(name, key, li)].extend(vals)
            for name, sc in tscores.items():
                for key, vals in tok_metrics(
                    sc,
                    p,
                    BS * min(n, math.ceil(max(1, math.floor(DEC["sink"] * T)) / BS)),
                    T - BS * min(n, math.ceil(max(1, math.floor(DEC["window"] * T)) / BS)),
                ).items():
                    acc[("tok " + name, key, li >= DENSE_LAYERS)].extend(vals)
            if s == 0:
                acc[("qnorm", "", li >= DENSE_LAYERS)].extend(q.norm(dim=-1).tolist())
                # fraction of |tanh(proj)| > 0.95
                proj = torch.einsum("hd,lpd->hlp", q, pl)
                acc[("tanh_sat", "", li >= DENSE_LAYERS)].append(
                    float((proj.tanh().abs() > 0.95).float().mean())
                )
                # key-score vs exact logit correlation (socket, per head)
                x, y = base.flatten(1, 1), logits.flatten(0, 1)
                x = x.reshape(Hq, T)
                y = y.reshape(Hq, T)
                xc, yc = x - x.mean(-1, keepdim=True), y - y.mean(-1, keepdim=True)
                r = (xc * yc).sum(-1) / (xc.norm(dim=-1) * yc.norm(dim=-1))
                acc[("corr(socket,logit)", "", li >= DENSE_LAYERS)].extend(r.tolist())
    print(
        f"{path}: {Lyr} layers x {Hkv} groups x {len(d['nkeys'])} queries, T={Tf}, "
        f"{time.time() - t0:.0f}s, needle blocks {needle_blocks}",
        flush=True,
    )
    return Lyr * Hkv * len(d["nkeys"])


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out",
        default="/tmp/socket_diag",
        help="output folder for the .acc.pkl and the JSON files (default: %(default)s)",
    )
    parser.add_argument(
        "--merge", action="store_true", help="merge the .acc.pkl files of earlier runs"
    )
    parser.add_argument(
        "files", nargs="+", help="one capture .pt file, or .acc.pkl files with --merge"
    )
    args = parser.parse_args()
    if not args.merge and len(args.files) != 1:
        parser.error("give exactly one capture file (or --merge with .acc.pkl files)")
    return args


def mean(v):
    return sum(v) / len(v) if v else float("nan")


if __name__ == "__main__":
    import pickle

    args = parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = Path(args.files[0]).name.replace(".pt", "_")
    OUTSTEM = str(out_dir / ("merged_" if args.merge else stem))
    acc, perlayer = collections.defaultdict(list), collections.defaultdict(list)
    if args.merge:
        nsamp = 0
        for f in args.files:
            a, p, ns = pickle.load(open(f, "rb"))
            nsamp += ns
            for k, v in a.items():
                acc[k].extend(v)
            for k, v in p.items():
                perlayer[k].extend(v)
    else:
        nsamp = run_file(args.files[0], acc, perlayer)
        pkl = out_dir / Path(args.files[0]).name.replace(".pt", ".acc.pkl")
        pickle.dump((dict(acc), dict(perlayer), nsamp), open(pkl, "wb"))
    names = [k[0] for k in acc if k[1] == "top20" and k[2]]
    names = list(dict.fromkeys(names))
    keys = ["top20", "top10", "rule20", "cand20", "hit1", "needle", "outerr"]
    print(
        f"\n{nsamp} (layer, group, query) samples; "
        f"sparse layers (>= {DENSE_LAYERS}) | all layers top20"
    )
    print(f"{'scorer':30s} " + " ".join(f"{k:>7s}" for k in keys) + "   all:top20")
    for nm in names:
        row = [mean(acc[(nm, k, True)]) for k in keys]
        print(
            f"{nm:30s} "
            + " ".join(f"{x:7.3f}" for x in row)
            + f"   {mean(acc[(nm, 'top20', True)] + acc[(nm, 'top20', False)]):.3f}"
        )
    for k in ["qnorm", "tanh_sat", "corr(socket,logit)"]:
        print(
            f"{k}: sparse {mean(acc[(k, '', True)]):.3f}  "
            f"dense-layers {mean(acc[(k, '', False)]):.3f}"
        )
    Ls = sorted({k[2] for k in perlayer})
    sel = [
        "keys4",
        "socket 60x8 T=0.3 V max",
        "socket 60x8 T=0.3 noV max",
        "socket 60x8 T=0.1 noV max",
        "socket 120x8 T=0.1 noV max",
        "cos-max",
    ]
    print("\nper layer, top20 / cand20:")
    print("layer " + " ".join(f"{s[:18]:>18s}" for s in sel))
    for layer in Ls:
        print(
            f"{layer:5d} "
            + " ".join(
                f"{mean(perlayer[(s, 'top20', layer)]):8.3f}/"
                f"{mean(perlayer[(s, 'cand20', layer)]):.3f}"
                for s in sel
            )
        )
    json.dump(
        {f"{a}|{b}|{c}": mean(v) for (a, b, c), v in acc.items()},
        open(OUTSTEM + "summary.json", "w"),
        indent=1,
    )
    json.dump(
        {f"{a}|{b}|{c}": mean(v) for (a, b, c), v in perlayer.items()},
        open(OUTSTEM + "perlayer.json", "w"),
        indent=1,
    )
