"""torch.library.opcheck on every op (schema, fake tensor, autograd registration, AOT)."""

import pytest
import torch

import reference as R
from conftest import device_params
from utils import ops


def op_cases(device):
    o = ops()  # loads the extension
    ns = torch.ops.sketchwalk
    x = torch.randn(1, 2, 70, 64, device=device)
    signs, coords = o.sketch_transform(64, 32, seed=0, device=device)
    qs = torch.randn(1, 4, 3, 32, device=device)
    ks = torch.randn(1, 2, 5, 32, device=device)
    base = torch.rand(1, 3, 5, device=device)
    trans = torch.rand(1, 5, 5, device=device)
    scores = torch.rand(1, 5, 5, device=device)
    tq = 300
    adt = torch.bfloat16 if device == "cuda" else torch.float32  # CUDA attention: half types
    q = torch.randn(1, 4, tq, 64, device=device, dtype=adt)
    k = torch.randn(1, 2, tq, 64, device=device, dtype=adt)
    v = torch.randn(1, 2, tq, 64, device=device, dtype=adt)
    keep = torch.ones(1, 5, 5, dtype=torch.bool, device=device).tril()
    idx, cnt = R.mask_to_block_index(keep)
    qd = torch.randn(1, 4, 1, 64, device=device, dtype=adt)
    didx, dcnt = R.mask_to_block_index(torch.ones(1, 1, 5, dtype=torch.bool, device=device))
    a = torch.rand(1, 5, 5, device=device)
    r = torch.rand(1, 5, device=device)
    lens = torch.tensor([290], dtype=torch.int32, device=device)
    # A ragged batch: sequences of 100 and 200 queries (the second a chunk of 300 keys); packed
    # keys, and the same keys in a paged cache (pages 0-1 and 2-6).
    cu_q = torch.tensor([0, 100, 300], dtype=torch.int32, device=device)
    cu_k = torch.tensor([0, 100, 400], dtype=torch.int32, device=device)
    qv = torch.randn(300, 4, 64, device=device, dtype=adt)
    kv = torch.randn(400, 2, 64, device=device, dtype=adt)
    vv = torch.randn(400, 2, 64, device=device, dtype=adt)
    vidx = torch.arange(5, dtype=torch.int32, device=device).expand(2, 1, 4, 5).contiguous()
    vcnt = torch.tensor([[[1, 2, 0, 0]], [[3, 4, 5, 5]]], dtype=torch.int32, device=device)
    pages = torch.zeros(7, 64, 2, 64, device=device, dtype=adt)
    pages.view(-1, 2, 64)[:100] = kv[:100]
    pages.view(-1, 2, 64)[128:428] = kv[100:]
    table = torch.tensor([[0, 1, 0, 0, 0], [2, 3, 4, 5, 6]], dtype=torch.int32, device=device)
    seq_k = torch.tensor([100, 300], dtype=torch.int32, device=device)
    codes = torch.randint(1, 16, (1, 2, tq, 32), dtype=torch.uint8, device=device)
    scales = torch.rand(1, 2, tq, device=device)
    return [
        ("hadamard_sketch", ns.hadamard_sketch.default, (x, signs, coords, 64)),
        (
            "hadamard_sketch_varlen",
            ns.hadamard_sketch_varlen.default,
            (qv, signs, coords, 64, cu_q, 4, True),
        ),
        ("score_blocks", ns.score_blocks.default, (qs, ks, 0.1)),
        (
            "score_blocks_num_kv_blocks",
            ns.score_blocks.default,
            (
                qs.expand(2, *qs.shape[1:]).contiguous(),
                ks.expand(2, *ks.shape[1:]).contiguous(),
                0.1,
                torch.tensor([ks.shape[2], 1], dtype=torch.int32, device=device),
                True,
            ),
        ),
        (
            "select_blocks_varlen",
            ns.select_blocks_varlen.default,
            (
                torch.rand(2, 5, 5, device=device),
                torch.tensor(
                    [[300, 300, 15, 7, 15], [100, 250, 64, 0, 64]], dtype=torch.int32, device=device
                ),
                64,
                0.125,
                1,
                True,
            ),
        ),
        ("walk_blocks", ns.walk_blocks.default, (base, trans, None, 3, 0.25)),
        ("walk_blocks_init", ns.walk_blocks.default, (base, trans, base.clone(), 2, 0.25)),
        ("select_blocks", ns.select_blocks.default, (scores, tq, tq, 64, 0.125, 15, 7, 15, 4)),
        (
            "select_blocks_dense_rows",
            ns.select_blocks.default,
            (
                scores,
                tq,
                tq,
                64,
                0.125,
                15,
                7,
                15,
                4,
                torch.rand(scores.shape[:2], device=device) < 0.3,
            ),
        ),
        (
            "select_blocks_dense_rows_in_budget",
            ns.select_blocks.default,
            (
                scores,
                tq,
                tq,
                64,
                0.3,
                15,
                7,
                15,
                4,
                torch.rand(scores.shape[:2], device=device) < 0.3,
                True,
            ),
        ),
        ("query_spread_rows", ns.query_spread_rows.default, (q, 64, 0.25, 1)),
        (
            "query_spread_rows_varlen",
            ns.query_spread_rows.default,
            (
                q[:1],
                64,
                0.25,
                1,
                torch.tensor([0, 130, q.shape[2]], dtype=torch.int32, device=device),
                R.ceil_div(q.shape[2], 64),
                torch.tensor([2, 1], dtype=torch.int32, device=device),
                True,
            ),
        ),
        ("sparse_prefill", ns.sparse_prefill.default, (q, k, v, idx, cnt, None, True)),
        (
            "sparse_prefill_varlen",
            ns.sparse_prefill_varlen.default,
            (qv, kv, vv, vidx, vcnt, cu_q, cu_k, None, None, None, True),
        ),
        (
            "sparse_prefill_varlen_paged",
            ns.sparse_prefill_varlen.default,
            (qv, pages, pages, vidx, vcnt, cu_q, None, seq_k, table, None, True),
        ),
        ("sparse_decode", ns.sparse_decode.default, (qd, k, v, didx, dcnt, 0.125, True)),
        (
            "update_block_sketch_",
            ns.update_block_sketch_.default,
            (
                torch.randn(1, 2, 6, 32, device=device),
                torch.randn(1, 2, 1, 32, device=device),
                70,
                64,
            ),
        ),
        (
            "push_query_window_",
            ns.push_query_window_.default,
            (torch.randn(1, 4, 8, 32, device=device), torch.randn(1, 4, 1, 32, device=device), 11),
        ),
        ("update_block_matrix_", ns.update_block_matrix_.default, (a, r, 300, 64)),
        (
            "update_window_logits_",
            ns.update_window_logits_.default,
            (
                torch.randn(1, 4, 8, 7, device=device),
                torch.randn(1, 4, 8, 32, device=device),
                torch.randn(1, 2, 6, 32, device=device),
                5,
                3,
                0.1,
            ),
        ),
        (
            "window_block_scores",
            ns.window_block_scores.default,
            (torch.randn(1, 4, 8, 7, device=device), 6, 5),
        ),
        (
            "select_decode_blocks_",
            ns.select_decode_blocks_.default,
            (
                qd,
                k,
                torch.zeros(1, 2, 16, 32, device=device),
                torch.zeros(1, 4, 8, 32, device=device),
                torch.zeros(1, 4, 8, 16, device=device),
                torch.eye(16, device=device)[None].clone(),
                signs,
                coords,
                4,
                4,
                64,
                3,
                0.25,
                0.1,
                0.125,
                15,
                7,
                15,
            ),
        ),
        (
            "sparse_decode_seq_lens",
            ns.sparse_decode.default,
            (qd, k, v, didx, dcnt, 0.125, True, lens),
        ),
        (
            "sparse_decode_left_padded",
            ns.sparse_decode.default,
            (
                qd,
                k,
                v,
                didx,
                dcnt,
                0.125,
                True,
                lens,
                None,
                torch.tensor([5], dtype=torch.int32, device=device),
            ),
        ),
        (
            "sparse_decode_paged",
            ns.sparse_decode.default,
            (
                qd[:, :, :, :64].expand(2, 4, 1, 64).contiguous(),
                pages,
                pages,
                vidx[:, :, :1].contiguous(),
                torch.tensor([[[2]], [[5]]], dtype=torch.int32, device=device),
                0.125,
                True,
                seq_k,
                table,
            ),
        ),
        ("quantize_keys4_", ns.quantize_keys4_.default, (codes, scales, k[:, :, :5], lens, True)),
        (
            "score_blocks_keys4",
            ns.score_blocks_keys4.default,
            (qd, codes, scales, lens, None, True),
        ),
        (
            "quantize_keys4_paged",
            ns.quantize_keys4_.default,
            (
                torch.zeros(7, 2, 64, 32, dtype=torch.uint8, device=device),
                torch.zeros(7, 2, 64, device=device),
                kv[:2, None].transpose(1, 2).contiguous(),
                seq_k,
                True,
                table,
            ),
        ),
        (
            "score_blocks_keys4_paged",
            ns.score_blocks_keys4.default,
            (
                qd[:, :, :, :64].expand(2, 4, 1, 64).contiguous(),
                torch.randint(1, 16, (7, 2, 64, 32), dtype=torch.uint8, device=device),
                torch.rand(7, 2, 64, device=device),
                seq_k,
                None,
                True,
                table,
            ),
        ),
        (
            "select_blocks_keys4",
            ns.select_blocks_keys4.default,
            (torch.rand(1, 2, 5, device=device), lens, 0.125, 0.05, 0.025, True),
        ),
        (
            "score_blocks_sampled_rows",
            ns.score_blocks_sampled_rows.default,
            (q[:, :, 100:].to(torch.bfloat16), k.to(torch.bfloat16), 4, None),
        ),
    ]


NAMES = [
    "hadamard_sketch",
    "hadamard_sketch_varlen",
    "score_blocks",
    "score_blocks_num_kv_blocks",
    "walk_blocks",
    "walk_blocks_init",
    "select_blocks",
    "select_blocks_dense_rows",
    "select_blocks_dense_rows_in_budget",
    "select_blocks_varlen",
    "query_spread_rows",
    "query_spread_rows_varlen",
    "sparse_prefill",
    "sparse_prefill_varlen",
    "sparse_prefill_varlen_paged",
    "sparse_decode",
    "update_block_sketch_",
    "push_query_window_",
    "update_block_matrix_",
    "update_window_logits_",
    "window_block_scores",
    "select_decode_blocks_",
    "sparse_decode_seq_lens",
    "sparse_decode_left_padded",
    "sparse_decode_paged",
    "quantize_keys4_",
    "score_blocks_keys4",
    "quantize_keys4_paged",
    "score_blocks_keys4_paged",
    "select_blocks_keys4",
    "score_blocks_sampled_rows",
]


def test_every_registered_op_is_checked():
    ops()  # loads the extension
    registered = {
        name.split("::")[1].split(".")[0]
        for name in torch._C._dispatch_get_all_op_names()
        if name.startswith("sketchwalk::")
    }
    checked = {
        name for _, op, _ in op_cases("cpu") for name in [op.name().split("::")[1].split(".")[0]]
    }
    assert registered and registered <= checked, (
        f"ops without an opcheck case: {registered - checked}"
    )


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("name", NAMES)
def test_opcheck(device, name):
    cases = {n: (op, args) for n, op, args in op_cases(device)}
    op, args = cases[name]
    torch.library.opcheck(op, args)
