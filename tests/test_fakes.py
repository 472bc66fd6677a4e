"""The fakes (meta / FakeTensor implementations, python/sketchwalk/ops.py) refuse the bad shapes
the real ops refuse, naming the same argument, so torch.compile does not trace what fails later
(issue 23). Each case runs the op on meta tensors."""

import pytest
import torch

from utils import assert_raises_naming, ops

M = "meta"


def t(*shape, dtype=torch.bfloat16):
    return torch.empty(shape, device=M, dtype=dtype)


def i32(*shape):
    return torch.empty(shape, device=M, dtype=torch.int32)


CASES = {
    # sparse_prefill: a head_dim the kernels do not have; Hq not a multiple of Hkv; too few rows.
    "prefill_head_dim": (
        lambda o: o.sparse_prefill(
            t(1, 4, 100, 96), t(1, 2, 100, 96), t(1, 2, 100, 96), i32(1, 1, 2, 2), i32(1, 1, 2)
        ),
        "q",
    ),
    "prefill_gqa": (
        lambda o: o.sparse_prefill(
            t(1, 5, 100, 64), t(1, 2, 100, 64), t(1, 2, 100, 64), i32(1, 1, 2, 2), i32(1, 1, 2)
        ),
        "k",
    ),
    "prefill_rows": (
        lambda o: o.sparse_prefill(
            t(1, 4, 100, 64), t(1, 2, 100, 64), t(1, 2, 100, 64), i32(1, 1, 1, 2), i32(1, 1, 1)
        ),
        "block_index",
    ),
    "prefill_more_queries_than_keys": (
        lambda o: o.sparse_prefill(
            t(1, 4, 100, 64), t(1, 2, 90, 64), t(1, 2, 90, 64), i32(1, 1, 2, 2), i32(1, 1, 2)
        ),
        "q",
    ),
    # sparse_prefill_varlen: queries but an index without rows.
    "varlen_no_rows": (
        lambda o: o.sparse_prefill_varlen(
            t(100, 4, 64),
            t(100, 2, 64),
            t(100, 2, 64),
            i32(1, 1, 0, 2),
            i32(1, 1, 0),
            i32(2),
            cu_seqlens_k=i32(2),
        ),
        "block_index",
    ),
    # sparse_decode: two decode queries; an index of another batch.
    "decode_two_queries": (
        lambda o: o.sparse_decode(
            t(1, 4, 2, 64), t(1, 2, 100, 64), t(1, 2, 100, 64), i32(1, 1, 1, 2), i32(1, 1, 1)
        ),
        "q",
    ),
    "decode_index_batch": (
        lambda o: o.sparse_decode(
            t(2, 4, 1, 64), t(2, 2, 100, 64), t(2, 2, 100, 64), i32(1, 1, 1, 2), i32(1, 1, 1)
        ),
        "block_index",
    ),
    # select_decode_blocks_: a block count beyond the state's capacity; a fill of 0.
    "decode_capacity": (
        lambda o: o.select_decode_blocks_(
            t(1, 4, 1, 64),
            t(1, 2, 300, 64),
            t(1, 2, 2, 64, dtype=torch.float32),
            t(1, 4, 8, 64, dtype=torch.float32),
            t(1, 4, 8, 2, dtype=torch.float32),
            t(1, 2, 2, dtype=torch.float32),
            t(64, dtype=torch.float32),
            t(64, dtype=torch.int64),
            1,
            1,
            64,
            3,
            0.25,
            0.1,
            0.1,
            10,
            5,
            10,
        ),
        "transition",
    ),
    "decode_fill_0": (
        lambda o: o.select_decode_blocks_(
            t(1, 4, 1, 64),
            t(1, 2, 100, 64),
            t(1, 2, 4, 64, dtype=torch.float32),
            t(1, 4, 8, 64, dtype=torch.float32),
            t(1, 4, 8, 4, dtype=torch.float32),
            t(1, 4, 4, dtype=torch.float32),
            t(64, dtype=torch.float32),
            t(64, dtype=torch.int64),
            0,
            1,
            64,
            3,
            0.25,
            0.1,
            0.1,
            10,
            5,
            10,
        ),
        "window_fill",
    ),
    # update_window_logits_: a bad window slot; window_block_scores: a fill of 0.
    "window_slot": (
        lambda o: o.update_window_logits_(
            t(1, 4, 8, 16, dtype=torch.float32),
            t(1, 4, 8, 64, dtype=torch.float32),
            t(1, 2, 16, 64, dtype=torch.float32),
            4,
            8,
            0.1,
        ),
        "slot",
    ),
    "window_fill_0": (
        lambda o: o.window_block_scores(t(1, 4, 8, 16, dtype=torch.float32), 0, 4),
        "window_fill",
    ),
    # update_block_sketch_: a token past the capacity; heads sharing memory (stride 0).
    "block_sketch_capacity": (
        lambda o: o.update_block_sketch_(
            t(1, 2, 4, 32, dtype=torch.float32), t(1, 2, 1, 32, dtype=torch.float32), 4 * 64, 64
        ),
        "num_tokens_before",
    ),
    "block_sketch_overlap": (
        lambda o: o.update_block_sketch_(
            t(1, 1, 4, 32, dtype=torch.float32).expand(1, 2, 4, 32),
            t(1, 2, 1, 32, dtype=torch.float32),
            0,
            64,
        ),
        "block_sketch",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fake_refuses_bad_shapes(case):
    fn, arg = CASES[case]
    assert_raises_naming(lambda: fn(ops()), arg, exc=(RuntimeError, ValueError))
