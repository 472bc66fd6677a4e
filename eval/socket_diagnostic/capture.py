"""Capture post-RoPE Q (last prompt token + N greedy decode steps) and the K/V cache per layer,
dense attention, for RULER niah prompts. Writes DIR/cap_<model>_<task>_<length>_<i>.pt (the
input of analyze.py); RULER samples and the tokenizer are cached under DIR/assets and
DIR/tokenizers. Run from the repository root (model: qwen1.5b, else SmolLM2-135M):

    python -m eval.socket_diagnostic.capture qwen1.5b niah_multikey_1 4096 [NSAMP [STEPS]] \\
        [--out DIR]
"""

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
from pathlib import Path

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from eval import quality_sweep as eq
from examples import assets

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("model", help="qwen1.5b, or anything else for smollm (SmolLM2-135M)")
parser.add_argument("tasks", help="comma-separated RULER tasks, e.g. niah_multikey_1")
parser.add_argument("length", type=int, help="RULER context length in tokens")
parser.add_argument("nsamp", type=int, nargs="?", default=1, help="samples per task (1)")
parser.add_argument("steps", type=int, nargs="?", default=7, help="greedy decode steps (7)")
parser.add_argument(
    "--out", default="/tmp/socket_diag", help="output and cache folder (default: %(default)s)"
)
args = parser.parse_args()
out_dir = Path(args.out)
out_dir.mkdir(parents=True, exist_ok=True)
os.environ["SKETCHWALK_ASSETS"] = str(out_dir / "assets")
model_key = args.model  # qwen1.5b | smollm
tasks = args.tasks.split(",")
length = args.length
nsamp = args.nsamp
steps = args.steps
torch.set_num_threads(2)

REC = {}


def capture_fwd(module, query, key, value, attention_mask, **kw):
    li = module.layer_idx
    REC.setdefault(li, []).append((query[0, :, -1].detach().float().clone(), key.shape[2]))
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kw)


AttentionInterface.register("capture", capture_fwd)
AttentionMaskInterface.register("capture", sdpa_mask)

t0 = time.time()
if model_key == "qwen1.5b":
    model, tok = assets.load_gguf(
        Path.home() / ".cache/sketchwalk/gguf/Qwen2.5-Coder-1.5B-Instruct.Q4_K_M.gguf",
        attn_implementation="capture",
        dtype=torch.float32,
    )
else:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = str(Path.home() / ".cache/sketchwalk/smollm2-135m")
    tok = AutoTokenizer.from_pretrained(d)
    model = AutoModelForCausalLM.from_pretrained(
        d, dtype=torch.float32, attn_implementation="capture"
    ).eval()
print(f"loaded {model_key} in {time.time() - t0:.0f}s", flush=True)
tokdir = out_dir / "tokenizers" / model_key
if not (tokdir / "tokenizer_config.json").exists():
    tokdir.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(tokdir))

for task in tasks:
    samples = eq.ruler_samples(task, nsamp, length, tokdir, 42)
    for si, s in enumerate(samples[:nsamp]):
        prompt = eq.chat_prompt(tok, s["input"])
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids
        REC.clear()
        t1 = time.time()
        with torch.no_grad():
            out = model(ids, use_cache=True, logits_to_keep=1)
            cache = out.past_key_values
            gen = []
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            for _ in range(steps):
                gen.append(int(nxt))
                out = model(nxt, past_key_values=cache, use_cache=True)
                nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            gen.append(int(nxt))
        text = tok.decode(gen)
        # needle positions: token indices of the reference answers in the prompt
        L = model.config.num_hidden_layers
        ks = [cache.layers[i].keys[0].float().clone() for i in range(L)]
        vs = [cache.layers[i].values[0].float().clone() for i in range(L)]
        qs = [torch.stack([q for q, _ in REC[i]]) for i in range(L)]  # [S, Hq, D]
        nk = [n for _, n in REC[0]]
        # locate answer tokens (char spans -> token ids) for the needle-hit metric
        enc = tok(prompt, add_special_tokens=False, return_offsets_mapping=True)
        offs = enc["offset_mapping"]
        needle_tok = []
        for ref in s["outputs"]:
            # the needle sentence in the haystack (last occurrence before the question is not
            # needed: take all)
            start = 0
            while True:
                c = prompt.find(ref, start)
                if c < 0:
                    break
                needle_tok.append(
                    [i for i, (a, b) in enumerate(offs) if a < c + len(ref) and b > c]
                )
                start = c + 1
        path = str(out_dir / f"cap_{model_key}_{task}_{length}_{si}.pt")
        torch.save(
            dict(
                q=qs,
                k=ks,
                v=vs,
                nkeys=nk,
                prompt_len=ids.shape[1],
                gen=text,
                refs=s["outputs"],
                needle_tok=needle_tok,
                scaling=float(model.model.layers[0].self_attn.scaling),
            ),
            path,
        )
        print(
            f"{task} #{si}: {ids.shape[1]} tokens, {time.time() - t1:.0f}s, "
            f"gen={text!r}, refs={s['outputs']}",
            flush=True,
        )
