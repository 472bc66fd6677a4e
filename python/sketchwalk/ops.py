"""Typed wrappers over ``torch.ops.sketchwalk.*`` with their fake (meta) implementations.

Each docstring gives shapes with named dims and an executable equivalence with the float64
reference in ``tests/reference.py`` (the specification the kernels are tested against).
docs/ops.md is the full contract, including the block-index format.
"""

from __future__ import annotations

import functools

import torch

from .limits import ATTENTION_HEAD_DIMS, MAX_SAMPLED_ROWS

_ops = torch.ops.sketchwalk
_DIMS = "{" + ", ".join(map(str, ATTENTION_HEAD_DIMS)) + "}"  # as the C++ checks print them

__all__ = [
    "hadamard_sketch",
    "hadamard_sketch_varlen",
    "score_blocks",
    "walk_blocks",
    "select_blocks",
    "select_blocks_varlen",
    "query_spread_rows",
    "sparse_prefill",
    "sparse_prefill_varlen",
    "sparse_decode",
    "update_block_sketch_",
    "push_query_window_",
    "update_block_matrix_",
    "update_window_logits_",
    "window_block_scores",
    "select_decode_blocks_",
    "quantize_keys4_",
    "score_blocks_keys4",
    "score_blocks_sampled_rows",
    "select_blocks_keys4",
    "sketch_transform",
    "logit_scale",
]

# Fakes (meta / FakeTensor) run the checks that need no data: shapes, ranks, devices.


def _check_same_device(op: str, ref_name: str, ref, **tensors) -> None:
    """Fakes run for meta tensors, also beside real ones: refuse a mix of devices there too."""
    for name, t in tensors.items():
        if t is not None:
            torch._check(
                t.device == ref.device,
                lambda: (
                    f"sketchwalk.{op}: argument '{name}' must be on the same device "
                    f"as '{ref_name}' ({ref.device}), got {t.device}"
                ),
            )


def _check_rank(op: str, name: str, t, rank: int) -> None:
    torch._check(
        t.dim() == rank,
        lambda: f"sketchwalk.{op}: argument '{name}' must have {rank} dims, got {t.dim()}",
    )


# ---------------------------------------------------------------------------------------
# Helpers that fix the random draw and the logit scale (docs/spec.md sections 1-2)


@functools.lru_cache(maxsize=64)
def _sketch_transform_cpu(n: int, m: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, (n,), generator=gen).to(torch.float32) * 2 - 1
    coords = torch.randperm(n, generator=gen)[:m].to(torch.int64)
    return signs, coords


def sketch_transform(
    head_dim: int, sketch_dim: int, seed: int = 0, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed random draw of the sketch: ``(signs [n] float32 of +-1, coords [m] int64)``.

    ``n = next_pow2(head_dim)``, ``m = min(sketch_dim, n)``; drawn once per (seed, n, m) from a
    CPU ``torch.Generator`` (signs first, then a permutation whose first m entries are the
    coordinates), so every device and process gets the same draw.
    """
    n = 1 << (head_dim - 1).bit_length()
    m = min(sketch_dim, n)
    signs, coords = _sketch_transform_cpu(n, m, seed)
    return signs.to(device), coords.to(device)


def logit_scale(sketch_dim: int, head_dim: int) -> float:
    """c = m**1.5 / (100 n), the authors' scale of the sketched block logits (~0.113 at m=n=128)."""
    n = 1 << (head_dim - 1).bit_length()
    m = min(sketch_dim, n)
    return m**1.5 / (100.0 * n)


# ---------------------------------------------------------------------------------------
# 1. sketch


def hadamard_sketch(
    x: torch.Tensor,
    signs: torch.Tensor,
    coords: torch.Tensor,
    block_size: int,
    validate: bool = True,
) -> torch.Tensor:
    """Block mean-pool + subsampled randomized Hadamard transform.

    x: [batch, heads, tokens, head_dim] fp16/bf16/fp32; signs: [n]; coords: [m].
    Returns [batch, heads, ceil(tokens / block_size), m] float32.
    Equivalent to ``reference.hadamard_sketch(x, signs, coords, block_size)``.
    ``validate=False`` skips the range check of coords (one device sync on CUDA).
    """
    return _ops.hadamard_sketch(x, signs, coords, block_size, validate)


@torch.library.register_fake("sketchwalk::hadamard_sketch")
def _(x, signs, coords, block_size, validate=True):
    _check_same_device("hadamard_sketch", "x", x, signs=signs, coords=coords)
    _check_rank("hadamard_sketch", "x", x, 4)
    _check_rank("hadamard_sketch", "coords", coords, 1)
    torch._check(
        1 <= block_size <= 2**31 - 1,
        lambda: (
            f"sketchwalk.hadamard_sketch: argument 'block_size' must lie in [1, 2^31), got "
            f"{block_size}"
        ),
    )
    num_blocks = (x.shape[2] + block_size - 1) // block_size
    return x.new_empty((x.shape[0], x.shape[1], num_blocks, coords.shape[0]), dtype=torch.float32)


def hadamard_sketch_varlen(
    x: torch.Tensor,
    signs: torch.Tensor,
    coords: torch.Tensor,
    block_size: int,
    cu_seqlens: torch.Tensor,
    max_blocks: int,
    validate: bool = True,
) -> torch.Tensor:
    """hadamard_sketch of packed sequences: each sequence's blocks start at its first token.

    x: [total_tokens, heads, head_dim] (NHD), sequence s at rows cu_seqlens[s] : cu_seqlens[s + 1]
    (int32 [num_seqs + 1], the flash-attn varlen convention). Returns [num_seqs, heads,
    max_blocks, m] float32; blocks past a sequence's ceil(len / block_size) are zeros.
    Equivalent to ``reference.hadamard_sketch_varlen(x, signs, coords, block_size, cu_seqlens,
    max_blocks)``. ``validate=False`` skips the value checks of coords and cu_seqlens (they read
    the device).
    """
    return _ops.hadamard_sketch_varlen(
        x, signs, coords, block_size, cu_seqlens, max_blocks, validate
    )


@torch.library.register_fake("sketchwalk::hadamard_sketch_varlen")
def _(x, signs, coords, block_size, cu_seqlens, max_blocks, validate=True):
    op = "hadamard_sketch_varlen"
    _check_same_device(op, "x", x, signs=signs, coords=coords, cu_seqlens=cu_seqlens)
    _check_rank(op, "x", x, 3)
    _check_rank(op, "coords", coords, 1)
    _check_rank(op, "cu_seqlens", cu_seqlens, 1)
    torch._check(
        cu_seqlens.dtype == torch.int32 and cu_seqlens.shape[0] >= 1,
        lambda: f"sketchwalk.{op}: argument 'cu_seqlens' must be int32 [num_seqs + 1]",
    )
    torch._check(
        1 <= block_size <= 2**31 - 1,
        lambda: f"sketchwalk.{op}: argument 'block_size' must lie in [1, 2^31), got {block_size}",
    )
    torch._check(
        0 <= max_blocks <= 2**31 - 1,
        lambda: f"sketchwalk.{op}: argument 'max_blocks' must lie in [0, 2^31), got {max_blocks}",
    )
    return x.new_empty(
        (cu_seqlens.shape[0] - 1, x.shape[1], max_blocks, coords.shape[0]), dtype=torch.float32
    )


# 2. scores


def score_blocks(
    q_sketch: torch.Tensor,
    k_sketch: torch.Tensor,
    logit_scale: float,
    num_kv_blocks: torch.Tensor | None = None,
    validate: bool = True,
) -> torch.Tensor:
    """Row-stochastic block transition matrix shared by all heads.

    q_sketch: [batch, num_q_heads, rows, m]; k_sketch: [batch, num_kv_heads, cols, m] (float32).
    Returns A [batch, rows, cols] float32: per-head softmax over all key blocks of the
    sketched logits, summed over heads, rows normalized.
    ``num_kv_blocks`` (int32 [batch], optional; padded sketches of a ragged batch): batch row
    b's softmax runs over its first num_kv_blocks[b] columns only, the others are 0.
    Equivalent to ``reference.score_blocks(q_sketch, k_sketch, logit_scale, num_kv_blocks)``.
    ``validate=False`` skips the range check of num_kv_blocks (it reads the device).
    """
    return _ops.score_blocks(q_sketch, k_sketch, logit_scale, num_kv_blocks, validate)


@torch.library.register_fake("sketchwalk::score_blocks")
def _(q_sketch, k_sketch, logit_scale, num_kv_blocks=None, validate=True):
    _check_same_device(
        "score_blocks", "q_sketch", q_sketch, k_sketch=k_sketch, num_kv_blocks=num_kv_blocks
    )
    _check_rank("score_blocks", "q_sketch", q_sketch, 4)
    _check_rank("score_blocks", "k_sketch", k_sketch, 4)
    if num_kv_blocks is not None:
        torch._check(
            num_kv_blocks.dtype == torch.int32
            and num_kv_blocks.dim() == 1
            and num_kv_blocks.shape[0] == q_sketch.shape[0],
            lambda: (
                "sketchwalk.score_blocks: argument 'num_kv_blocks' must be int32 "
                f"[batch={q_sketch.shape[0]}]"
            ),
        )
    return q_sketch.new_empty((q_sketch.shape[0], q_sketch.shape[2], k_sketch.shape[2]))


# 3. walk


def walk_blocks(
    base: torch.Tensor,
    transition: torch.Tensor,
    init: torch.Tensor | None,
    degree: int,
    damping: float,
) -> torch.Tensor:
    """Damped walk: ``state = init (or base); degree x: state = (1-damping)*base +
    damping*state@transition``.

    base: [batch, rows, n]; transition: [batch, n, n]; init like base or None. float32.
    Equivalent to ``reference.walk_blocks(base, transition, init, degree, damping)``.
    """
    return _ops.walk_blocks(base, transition, init, degree, damping)


@torch.library.register_fake("sketchwalk::walk_blocks")
def _(base, transition, init, degree, damping):
    _check_same_device("walk_blocks", "base", base, transition=transition, init=init)
    _check_rank("walk_blocks", "base", base, 3)
    _check_rank("walk_blocks", "transition", transition, 3)
    return base.new_empty(base.shape)


# 4. selection


def select_blocks(
    scores: torch.Tensor,
    num_queries: int,
    num_keys: int,
    block_size: int,
    keep_frac: float,
    window_tokens: int,
    exclude_sink_tokens: int,
    attend_sink_tokens: int,
    dense_last_q_blocks: int,
    dense_rows: torch.Tensor | None = None,
    dense_rows_in_budget: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantile top-k + sink/window/dense-row rules -> the block index (docs/ops.md).

    scores: [batch, num_q_blocks, num_kv_blocks] float32; dense_rows (optional): bool [batch,
    num_q_blocks], flagged query blocks keep every causal key block (as the last
    dense_last_q_blocks do); with dense_rows_in_budget the other rows of their batch row keep
    less of their candidates to pay for them (docs/spec.md section 13).
    Returns (block_index [batch, 1, num_q_blocks, num_kv_blocks] int32, ascending, -1 padded;
    num_selected [batch, 1, num_q_blocks] int32).
    Equivalent to ``reference.select_blocks(...)`` (same arguments).
    """
    return _ops.select_blocks(
        scores,
        num_queries,
        num_keys,
        block_size,
        keep_frac,
        window_tokens,
        exclude_sink_tokens,
        attend_sink_tokens,
        dense_last_q_blocks,
        dense_rows,
        dense_rows_in_budget,
    )


def _check_dense_rows(
    op: str, scores: torch.Tensor, dense_rows: torch.Tensor | None, in_budget: bool
) -> None:
    """The fake kernels' check of select_blocks(_varlen)'s dense_rows (csrc/checks/select_blocks.h
    makes the real one): bool [rows, num_q_blocks] beside scores; with dense_rows_in_budget,
    num_q_blocks x num_kv_blocks within int32."""
    if dense_rows is None:
        return
    torch._check(
        not in_budget or scores.shape[1] * scores.shape[2] <= 2**31 - 1,
        lambda: (
            f"sketchwalk.{op}: argument 'dense_rows_in_budget' needs num_q_blocks x "
            f"num_kv_blocks <= 2^31 - 1, got {scores.shape[1]} x {scores.shape[2]}"
        ),
    )
    _check_same_device(op, "scores", scores, dense_rows=dense_rows)
    torch._check(
        dense_rows.dtype == torch.bool and tuple(dense_rows.shape) == tuple(scores.shape[:2]),
        lambda: (
            f"sketchwalk.{op}: argument 'dense_rows' must be bool "
            f"[rows={scores.shape[0]}, num_q_blocks={scores.shape[1]}]"
        ),
    )
    torch._check(
        dense_rows.shape[1] <= 1 or dense_rows.stride(1) == 1,
        lambda: f"sketchwalk.{op}: argument 'dense_rows' must have a contiguous last dimension",
    )


@torch.library.register_fake("sketchwalk::select_blocks")
def _(
    scores,
    num_queries,
    num_keys,
    block_size,
    keep_frac,
    window_tokens,
    exclude_sink_tokens,
    attend_sink_tokens,
    dense_last_q_blocks,
    dense_rows=None,
    dense_rows_in_budget=False,
):
    _check_rank("select_blocks", "scores", scores, 3)
    _check_dense_rows("select_blocks", scores, dense_rows, dense_rows_in_budget)
    b, nq, nk = scores.shape
    return (
        scores.new_empty((b, 1, nq, nk), dtype=torch.int32),
        scores.new_empty((b, 1, nq), dtype=torch.int32),
    )


def select_blocks_varlen(
    scores: torch.Tensor,
    seq_args: torch.Tensor,
    block_size: int,
    keep_frac: float,
    dense_last_q_blocks: int,
    validate: bool = True,
    dense_rows: torch.Tensor | None = None,
    dense_rows_in_budget: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """select_blocks over the padded scores of a ragged batch, each row with its own sequence.

    scores: [rows, num_q_blocks, num_kv_blocks] float32 (padded to the longest sequence);
    seq_args: int32 [rows, 5], row r's (num_queries, num_keys, window_tokens,
    exclude_sink_tokens, attend_sink_tokens) (plan.StepPlan makes it from SelectionArgs).
    Returns (block_index [rows, 1, num_q_blocks, num_kv_blocks], num_selected [rows, 1,
    num_q_blocks]); row r's first ceil(num_queries / block_size) query blocks are select_blocks of
    its own [:nq, :nk] scores (and dense_rows[r, :nq], bool [rows, num_q_blocks] optional, and
    dense_rows_in_budget), its other rows select nothing. Equivalent to
    ``reference.select_blocks_varlen(...)``.
    ``validate=False`` skips the value checks of seq_args (they read the device).
    """
    return _ops.select_blocks_varlen(
        scores,
        seq_args,
        block_size,
        keep_frac,
        dense_last_q_blocks,
        validate,
        dense_rows,
        dense_rows_in_budget,
    )


@torch.library.register_fake("sketchwalk::select_blocks_varlen")
def _(
    scores,
    seq_args,
    block_size,
    keep_frac,
    dense_last_q_blocks,
    validate=True,
    dense_rows=None,
    dense_rows_in_budget=False,
):
    op = "select_blocks_varlen"
    _check_same_device(op, "scores", scores, seq_args=seq_args)
    _check_dense_rows(op, scores, dense_rows, dense_rows_in_budget)
    _check_rank(op, "scores", scores, 3)
    _check_rank(op, "seq_args", seq_args, 2)
    torch._check(
        seq_args.dtype == torch.int32 and tuple(seq_args.shape) == (scores.shape[0], 5),
        lambda: f"sketchwalk.{op}: argument 'seq_args' must be int32 [rows={scores.shape[0]}, 5]",
    )
    b, nq, nk = scores.shape
    return (
        scores.new_empty((b, 1, nq, nk), dtype=torch.int32),
        scores.new_empty((b, 1, nq), dtype=torch.int32),
    )


def query_spread_rows(
    q: torch.Tensor,
    block_size: int,
    frac: float,
    dense_last_q_blocks: int,
    cu_seqlens: torch.Tensor | None = None,
    max_blocks: int = -1,
    seq_q_blocks: torch.Tensor | None = None,
    validate: bool = True,
) -> torch.Tensor:
    """Per sequence row, its query blocks of largest query spread as select_blocks' dense_rows
    (docs/spec.md section 13, docs/ops.md op 4c).

    q: [batch, heads, tokens, head_dim] float16 / bfloat16 / float32 (head_dim <= 256), row r =
    batch row r; or, with cu_seqlens (int32 [rows + 1]), batch 1 and row r = tokens
    cu_seqlens[r] : cu_seqlens[r + 1] of dim 2 (packed [total, heads, D] as
    ``q.transpose(0, 1)[None]``), max_blocks then the output's width. seq_q_blocks (int32
    [rows], optional): row r ranks its first seq_q_blocks[r] query blocks (0: none; default all
    of its own). Row r keeps round(frac * n) of its n ranked blocks dense, those of largest
    spread among blocks 1 .. n - dense_last_q_blocks - 1. Returns bool [rows, width]. No host
    synchronization with ``validate=False`` (the values of cu_seqlens and seq_q_blocks are then
    not checked, only clamped to q's tokens and each row's blocks). Equivalent to
    ``reference.dense_spread_rows(...)``.
    """
    return _ops.query_spread_rows(
        q, block_size, frac, dense_last_q_blocks, cu_seqlens, max_blocks, seq_q_blocks, validate
    )


@torch.library.register_fake("sketchwalk::query_spread_rows")
def _(
    q,
    block_size,
    frac,
    dense_last_q_blocks,
    cu_seqlens=None,
    max_blocks=-1,
    seq_q_blocks=None,
    validate=True,
):
    op = "query_spread_rows"
    _check_rank(op, "q", q, 4)
    _check_same_device(op, "q", q, cu_seqlens=cu_seqlens, seq_q_blocks=seq_q_blocks)
    if cu_seqlens is not None:
        torch._check(
            max_blocks >= 0,
            lambda: (
                f"sketchwalk.{op}: argument 'max_blocks' must be given (>= 0) with "
                f"cu_seqlens, got {max_blocks}"
            ),
        )
        rows, width = cu_seqlens.shape[0] - 1, max_blocks
    else:
        rows, width = q.shape[0], -(-q.shape[2] // block_size) if max_blocks == -1 else max_blocks
    return q.new_empty((rows, width), dtype=torch.bool)


# 5-6. attention


def sparse_prefill(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    block_index: torch.Tensor,
    num_selected: torch.Tensor,
    softmax_scale: float | None = None,
    validate: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Block-sparse causal attention over a block index of 64x64 blocks.

    q: [batch, num_q_heads, num_queries, head_dim]; k, v: [batch, num_kv_heads, num_keys, head_dim]
    (queries end at the last key); block_index: [batch, index_heads, ceil(num_queries/64),
    max_selected];
    num_selected: [batch, index_heads, ceil(num_queries/64)]. head_dim 64 or 128.
    Returns (out like q, lse [batch, num_q_heads, num_queries] float32, natural log).
    Equivalent to ``reference.sparse_attention(q, k, v, block_index, num_selected, softmax_scale)``.
    ``validate=False`` skips the index check (one device sync on CUDA).
    """
    return _ops.sparse_prefill(q, k, v, block_index, num_selected, softmax_scale, validate)


def _attention_fake(
    q,
    k,
    v,
    block_index,
    num_selected,
    softmax_scale=None,
    validate=True,
    op="sparse_prefill",
    num_kv_heads=None,
    kv_names=("k", "v"),
):
    """The shape checks of sparse_prefill / sparse_decode (csrc/checks/attention.h
    check_attention_args) that need no data, named as the real op names them (sparse_decode's
    key and value arguments are k_cache and v_cache)."""
    kn, vn = kv_names
    _check_same_device(
        op, "q", q, **{kn: k, vn: v}, block_index=block_index, num_selected=num_selected
    )
    for name, t in (("q", q), (kn, k), (vn, v), ("block_index", block_index)):
        _check_rank(op, name, t, 4)
    _check_rank(op, "num_selected", num_selected, 3)
    hkv = k.shape[1] if num_kv_heads is None else num_kv_heads
    torch._check(
        q.shape[3] in ATTENTION_HEAD_DIMS,
        lambda: (
            f"sketchwalk.{op}: argument 'q' has "
            f"unsupported head_dim {q.shape[3]}; supported head_dim values are {_DIMS}"
        ),
    )
    torch._check(
        hkv >= 1 and q.shape[1] % hkv == 0,
        lambda: (
            f"sketchwalk.{op}: argument '{kn}' has {hkv} heads, which must divide the "
            f"{q.shape[1]} heads of 'q' (GQA)"
        ),
    )
    torch._check(
        block_index.shape[0] == q.shape[0] and block_index.shape[1] in (1, hkv),
        lambda: (
            f"sketchwalk.{op}: argument 'block_index' must be [batch={q.shape[0]}, "
            f"index_heads in (1, {hkv}), num_q_blocks, max_selected], got "
            f"{tuple(block_index.shape)}"
        ),
    )
    torch._check(
        num_selected.shape == block_index.shape[:3],
        lambda: (
            f"sketchwalk.{op}: argument 'num_selected' must have shape "
            f"{tuple(block_index.shape[:3])}, got {tuple(num_selected.shape)}"
        ),
    )
    return q.new_empty(q.shape), q.new_empty(q.shape[:3], dtype=torch.float32)


@torch.library.register_fake("sketchwalk::sparse_prefill")
def _(q, k, v, block_index, num_selected, softmax_scale=None, validate=True):
    out = _attention_fake(q, k, v, block_index, num_selected)
    torch._check(
        1 <= q.shape[2] <= k.shape[2],
        lambda: (
            f"sketchwalk.sparse_prefill: argument 'q' has {q.shape[2]} queries; need "
            f"1 <= queries <= the {k.shape[2]} keys of 'k' (queries end at the last key)"
        ),
    )
    torch._check(
        block_index.shape[2] == (q.shape[2] + 63) // 64,
        lambda: (
            f"sketchwalk.sparse_prefill: argument 'block_index' must have "
            f"num_q_blocks = ceil(num_queries / 64) = {(q.shape[2] + 63) // 64} rows "
            f"(dim 2), got {tuple(block_index.shape)}"
        ),
    )
    return out


def sparse_prefill_varlen(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    block_index: torch.Tensor,
    num_selected: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    cu_seqlens_k: torch.Tensor | None = None,
    seq_lens_k: torch.Tensor | None = None,
    page_table: torch.Tensor | None = None,
    softmax_scale: float | None = None,
    validate: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Block-sparse causal attention of a ragged batch in one call (the flash-attn varlen layout).

    q: [total_q, num_q_heads, head_dim] packed tokens (NHD); sequence b's queries are rows
    ``cu_seqlens_q[b] : cu_seqlens_q[b + 1]`` (int32 [num_seqs + 1], starting at 0). Its keys
    either packed, k, v: [total_k, num_kv_heads, head_dim] with ``cu_seqlens_k`` (int32
    [num_seqs + 1]), or in a paged cache, k, v: [num_pages, 64, num_kv_heads, head_dim] with
    ``page_table`` (int32 [num_seqs, max_pages]: key block j of sequence b is page
    page_table[b, j]) and ``seq_lens_k`` (int32 [num_seqs]). A sequence's queries end at its
    last key, so a chunk of a longer prompt (fewer queries than keys) is one sequence.
    block_index: [num_seqs, index_heads, num_q_blocks, max_selected], num_q_blocks >= the most
    query blocks of any sequence (rows past a sequence's are never read); num_selected:
    [num_seqs, index_heads, num_q_blocks]. head_dim 64 or 128; fp16 / bf16, or fp32 (on CUDA the
    exact scalar path of sparse_prefill's fp32).
    Returns (out [total_q, num_q_heads, head_dim], lse [num_q_heads, total_q] float32).
    Equivalent to ``reference.sparse_attention_varlen(q, k, v, block_index, num_selected,
    cu_seqlens_q, cu_seqlens_k, seq_lens_k, page_table, softmax_scale)``. ``validate=False``
    skips reading the lengths, page ids and index (on CUDA: no host synchronization, so the
    call can be captured in a CUDA graph).
    """
    return _ops.sparse_prefill_varlen(
        q,
        k,
        v,
        block_index,
        num_selected,
        cu_seqlens_q,
        cu_seqlens_k,
        seq_lens_k,
        page_table,
        softmax_scale,
        validate,
    )


@torch.library.register_fake("sketchwalk::sparse_prefill_varlen")
def _(
    q,
    k,
    v,
    block_index,
    num_selected,
    cu_seqlens_q,
    cu_seqlens_k=None,
    seq_lens_k=None,
    page_table=None,
    softmax_scale=None,
    validate=True,
):
    op = "sparse_prefill_varlen"
    _check_same_device(
        op,
        "q",
        q,
        k=k,
        v=v,
        block_index=block_index,
        num_selected=num_selected,
        cu_seqlens_q=cu_seqlens_q,
        cu_seqlens_k=cu_seqlens_k,
        seq_lens_k=seq_lens_k,
        page_table=page_table,
    )
    paged = page_table is not None
    torch._check(
        paged != (cu_seqlens_k is not None),
        lambda: (
            f"sketchwalk.{op}: argument 'cu_seqlens_k' must be given for packed keys "
            "and omitted for a paged cache (page_table)"
        ),
    )
    torch._check(
        paged == (seq_lens_k is not None),
        lambda: (
            f"sketchwalk.{op}: argument 'seq_lens_k' must be given with page_table and only then"
        ),
    )
    _check_rank(op, "q", q, 3)
    for name, t in (("k", k), ("v", v)):
        _check_rank(op, name, t, 4 if paged else 3)
    _check_rank(op, "block_index", block_index, 4)
    _check_rank(op, "num_selected", num_selected, 3)
    torch._check(
        q.shape[-1] in ATTENTION_HEAD_DIMS,
        lambda: (
            f"sketchwalk.{op}: argument 'q' has "
            f"unsupported head_dim {q.shape[-1]}; supported head_dim values are {_DIMS}"
        ),
    )
    num_kv_heads = k.shape[-2]
    torch._check(
        q.shape[1] % num_kv_heads == 0,
        lambda: (
            f"sketchwalk.{op}: argument 'k' has {num_kv_heads} heads, which must "
            f"divide the {q.shape[1]} heads of 'q' (GQA)"
        ),
    )
    torch._check(
        block_index.shape[2] >= 1 or q.shape[0] == 0,
        lambda: (
            f"sketchwalk.{op}: argument 'block_index' has no rows (dim 2) for the "
            f"{q.shape[0]} queries of 'q'"
        ),
    )
    num_seqs = block_index.shape[0]
    torch._check(
        cu_seqlens_q.shape == (num_seqs + 1,),
        lambda: (
            f"sketchwalk.{op}: argument 'cu_seqlens_q' must have shape "
            f"[num_seqs + 1] = [{num_seqs + 1}], got {tuple(cu_seqlens_q.shape)}"
        ),
    )
    return q.new_empty(q.shape), q.new_empty((q.shape[1], q.shape[0]), dtype=torch.float32)


def sparse_decode(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_index: torch.Tensor,
    num_selected: torch.Tensor,
    softmax_scale: float | None = None,
    validate: bool = True,
    seq_lens: torch.Tensor | None = None,
    page_table: torch.Tensor | None = None,
    seq_starts: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Block-sparse attention of one new query per sequence against a KV cache (split-KV on CUDA).

    q: [batch, num_q_heads, 1, head_dim]; k_cache, v_cache: [batch, num_kv_heads, num_keys,
    head_dim];
    block_index: [batch, index_heads, 1, max_selected]; num_selected: [batch, index_heads, 1].
    seq_lens: optional int32 [batch] on q's device: sequence b holds keys [0, seq_lens[b]) of a
    fixed-capacity cache (its query sits at key seq_lens[b] - 1; later keys are never read), so
    a CUDA-graph decode loop needs no host-side length. None means num_keys for every row.
    page_table: optional int32 [batch, max_pages], with seq_lens: a paged cache. k_cache and
    v_cache are then page pools [num_pages, 64, num_kv_heads, head_dim] and key block j of
    sequence b lives in page page_table[b, j] (entries past a sequence's length are never read).
    Returns (out like q, lse [batch, num_q_heads, 1]).
    Equivalent to ``reference.sparse_attention(q, k_cache[:, :, :L], v_cache[:, :, :L], ...)`` per
    batch row with L = seq_lens[b] (paged: on ``reference.pages_to_dense(k_cache, page_table)``).
    seq_starts: optional int32 [batch], with seq_lens, for a left-padded dense cache: row b's keys
    are ``k_cache[b, :, seq_starts[b] : seq_starts[b] + seq_lens[b]]`` (the index counts blocks
    from its first key), equivalent to the call on those slices row by row.
    """
    return _ops.sparse_decode(
        q,
        k_cache,
        v_cache,
        block_index,
        num_selected,
        softmax_scale,
        validate,
        seq_lens,
        page_table,
        seq_starts,
    )


@torch.library.register_fake("sketchwalk::sparse_decode")
def _(
    q,
    k_cache,
    v_cache,
    block_index,
    num_selected,
    softmax_scale=None,
    validate=True,
    seq_lens=None,
    page_table=None,
    seq_starts=None,
):
    _check_same_device(
        "sparse_decode", "q", q, seq_lens=seq_lens, page_table=page_table, seq_starts=seq_starts
    )
    torch._check(
        seq_starts is None or (seq_lens is not None and page_table is None),
        lambda: "sketchwalk.sparse_decode: argument 'seq_starts' needs seq_lens and no page_table",
    )
    torch._check(
        q.dim() != 4 or q.shape[2] == 1,
        lambda: (
            "sketchwalk.sparse_decode: argument 'q' must hold one query per sequence "
            f"[batch, num_q_heads, 1, head_dim], got {tuple(q.shape)}"
        ),
    )
    if page_table is not None:
        torch._check(
            seq_lens is not None,
            lambda: (
                "sketchwalk.sparse_decode: argument 'seq_lens' "
                "must be given with page_table (the keys of each sequence)"
            ),
        )
        _check_rank("sparse_decode", "page_table", page_table, 2)
    return _attention_fake(
        q,
        k_cache,
        v_cache,
        block_index,
        num_selected,
        op="sparse_decode",
        # A paged pool is [num_pages, 64, num_kv_heads, head_dim].
        num_kv_heads=k_cache.shape[2] if page_table is not None else None,
        kv_names=("k_cache", "v_cache"),
    )


# 7. decode-state updates (in place)


def update_block_sketch_(
    block_sketch: torch.Tensor, token_sketch: torch.Tensor, num_tokens_before: int, block_size: int
) -> None:
    """Running mean of one token's sketch into its block: block j = num_tokens_before // block_size.

    block_sketch: [batch, heads, capacity, m] (mutated); token_sketch: [batch, heads, 1, m].
    Equivalent to ``reference.update_block_sketch(...)``.
    """
    _ops.update_block_sketch_(block_sketch, token_sketch, num_tokens_before, block_size)


@torch.library.register_fake("sketchwalk::update_block_sketch_")
def _(block_sketch, token_sketch, num_tokens_before, block_size):
    op = "update_block_sketch_"
    _check_same_device(op, "block_sketch", block_sketch, token_sketch=token_sketch)
    _check_rank(op, "block_sketch", block_sketch, 4)
    _check_rank(op, "token_sketch", token_sketch, 4)
    b, h, cap, m = block_sketch.shape
    torch._check(
        tuple(token_sketch.shape) == (b, h, 1, m),
        lambda: (
            f"sketchwalk.{op}: argument 'token_sketch' must be [{b}, {h}, 1, {m}], "
            f"got {list(token_sketch.shape)}"
        ),
    )
    torch._check(
        1 <= block_size <= 2**31 - 1,
        lambda: (
            f"sketchwalk.{op}: argument 'block_size' must lie in [1, 2147483647], got {block_size}"
        ),
    )
    torch._check(
        num_tokens_before >= 0 and num_tokens_before // block_size < cap,
        lambda: (
            f"sketchwalk.{op}: argument 'num_tokens_before' {num_tokens_before} falls "
            f"past the capacity of 'block_sketch' ({cap} blocks)"
        ),
    )
    for d in (0, 1, 3):
        torch._check(
            block_sketch.shape[d] <= 1 or block_sketch.stride(d) != 0,
            lambda: (
                f"sketchwalk.{op}: argument 'block_sketch' must not have overlapping "
                f"elements (stride 0 in dim {d})"
            ),
        )
    return None


def push_query_window_(window: torch.Tensor, q_sketch: torch.Tensor, position: int) -> None:
    """Write q_sketch [batch, heads, 1, m] into slot ``position % W`` of window
    [batch, heads, W, m]."""
    _ops.push_query_window_(window, q_sketch, position)


@torch.library.register_fake("sketchwalk::push_query_window_")
def _(window, q_sketch, position):
    _check_same_device("push_query_window_", "window", window, q_sketch=q_sketch)
    return None


def update_block_matrix_(
    transition: torch.Tensor, r: torch.Tensor, num_keys: int, block_size: int
) -> None:
    """Decode-time row/column blend of transition [batch, n, n] with scores r [batch, n], in place.

    n = ceil(num_keys / block_size); alpha = 1 / ((num_keys - 1) % block_size + 1).
    Equivalent to ``reference.update_block_matrix(...)``.
    """
    _ops.update_block_matrix_(transition, r, num_keys, block_size)


@torch.library.register_fake("sketchwalk::update_block_matrix_")
def _(transition, r, num_keys, block_size):
    _check_same_device("update_block_matrix_", "transition", transition, r=r)
    return None


def update_window_logits_(
    window_logits: torch.Tensor,
    query_window: torch.Tensor,
    key_blocks: torch.Tensor,
    num_blocks: int,
    slot: int,
    logit_scale: float,
) -> None:
    """Refresh the cached decode logits ``logit_scale * <query_window[b, h, s], key_blocks[b, h/g,
    j]>``.

    window_logits: [batch, num_q_heads, W, capacity] (mutated); query_window: [batch, num_q_heads,
    W, m]; key_blocks: [batch, num_kv_heads, >= num_blocks, m]. ``slot`` in [0, W): row ``slot``
    over blocks [0, num_blocks) and column ``num_blocks - 1`` over every slot (one decode step);
    ``slot == -1``: every row over every block (seeding after a prefill). Other entries are kept.
    Equivalent to ``reference.update_window_logits(...)``.
    """
    _ops.update_window_logits_(
        window_logits, query_window, key_blocks, num_blocks, slot, logit_scale
    )


@torch.library.register_fake("sketchwalk::update_window_logits_")
def _(window_logits, query_window, key_blocks, num_blocks, slot, logit_scale):
    op = "update_window_logits_"
    _check_same_device(
        op, "window_logits", window_logits, query_window=query_window, key_blocks=key_blocks
    )
    _check_rank(op, "window_logits", window_logits, 4)
    _check_rank(op, "query_window", query_window, 4)
    _check_rank(op, "key_blocks", key_blocks, 4)
    torch._check(
        1 <= num_blocks <= window_logits.shape[3] and num_blocks <= key_blocks.shape[2],
        lambda: (
            f"sketchwalk.{op}: argument 'num_blocks' must lie in [1, capacity="
            f"{window_logits.shape[3]}] and within 'key_blocks', got {num_blocks}"
        ),
    )
    torch._check(
        -1 <= slot < window_logits.shape[2],
        lambda: (
            f"sketchwalk.{op}: argument 'slot' must lie in [-1, W="
            f"{window_logits.shape[2]}), got {slot}"
        ),
    )
    return None


def window_block_scores(
    window_logits: torch.Tensor, window_fill: int, num_blocks: int
) -> torch.Tensor:
    """Decode block scores r [batch, num_blocks] (float32) from the cached window logits: the
    softmax over blocks [0, num_blocks) of every (head, slot < window_fill) row, averaged.
    Equivalent to ``reference.window_block_scores(...)``.
    """
    return _ops.window_block_scores(window_logits, window_fill, num_blocks)


@torch.library.register_fake("sketchwalk::window_block_scores")
def _(window_logits, window_fill, num_blocks):
    op = "window_block_scores"
    _check_rank(op, "window_logits", window_logits, 4)
    torch._check(
        1 <= window_fill <= window_logits.shape[2],
        lambda: (
            f"sketchwalk.{op}: argument 'window_fill' must lie in [1, W="
            f"{window_logits.shape[2]}], got {window_fill}"
        ),
    )
    torch._check(
        1 <= num_blocks <= window_logits.shape[3],
        lambda: (
            f"sketchwalk.{op}: argument 'num_blocks' must lie in [1, capacity="
            f"{window_logits.shape[3]}], got {num_blocks}"
        ),
    )
    return window_logits.new_empty((window_logits.shape[0], num_blocks))


# One decode step's selection in one call


def select_decode_blocks_(
    q: torch.Tensor,
    k: torch.Tensor,
    key_blocks: torch.Tensor,
    query_window: torch.Tensor,
    window_logits: torch.Tensor,
    transition: torch.Tensor,
    signs: torch.Tensor,
    coords: torch.Tensor,
    window_fill: int,
    pushes: int,
    block_size: int,
    degree: int,
    damping: float,
    logit_scale: float,
    keep_frac: float,
    window_tokens: int,
    exclude_sink_tokens: int,
    attend_sink_tokens: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """docs/spec.md section 6 steps 1-4 for one new token, mutating the decode state in place.

    q: [batch, num_q_heads, 1, head_dim] (the new query); k: [batch, num_kv_heads, num_keys,
    head_dim]
    (all keys, the new one last); key_blocks: [batch, num_kv_heads, capacity, m];
    query_window: [batch, num_q_heads, W, m]; window_logits: [batch, num_q_heads, W, capacity]
    (the cached logits of query_window against key_blocks, kept current by this op; seed it
    after a prefill with ``update_window_logits_(..., slot=-1, ...)``); transition:
    [batch, capacity, capacity].
    Equivalent to: sketch q and k[:, :, -1:] (block_size 1); ``update_block_sketch_``;
    ``push_query_window_(query_window, q_sketch, pushes)``;
    ``update_window_logits_(window_logits, query_window, key_blocks, n, pushes % W, logit_scale)``;
    ``r = window_block_scores(window_logits, window_fill, n)`` (which equals
    ``score_blocks(query_window[:, :, :window_fill], key_blocks[:, :, :n], logit_scale).mean(1)``);
    ``update_block_matrix_(transition[:, :n, :n], r, num_keys, block_size)``;
    ``walk_blocks(r[:, None], transition[:, :n, :n], None, degree, damping)``; then
    ``select_blocks(walk, 1, num_keys, block_size, keep_frac, window_tokens, exclude_sink_tokens,
    attend_sink_tokens, 0)``, whose (block_index [batch, 1, 1, n], num_selected [batch, 1, 1]) it
    returns.
    """
    return _ops.select_decode_blocks_(
        q,
        k,
        key_blocks,
        query_window,
        window_logits,
        transition,
        signs,
        coords,
        window_fill,
        pushes,
        block_size,
        degree,
        damping,
        logit_scale,
        keep_frac,
        window_tokens,
        exclude_sink_tokens,
        attend_sink_tokens,
    )


@torch.library.register_fake("sketchwalk::select_decode_blocks_")
def _(
    q,
    k,
    key_blocks,
    query_window,
    window_logits,
    transition,
    signs,
    coords,
    window_fill,
    pushes,
    block_size,
    degree,
    damping,
    logit_scale,
    keep_frac,
    window_tokens,
    exclude_sink_tokens,
    attend_sink_tokens,
):
    _check_same_device(
        "select_decode_blocks_",
        "q",
        q,
        k=k,
        key_blocks=key_blocks,
        query_window=query_window,
        window_logits=window_logits,
        transition=transition,
        signs=signs,
        coords=coords,
    )
    op = "select_decode_blocks_"
    _check_rank(op, "q", q, 4)
    _check_rank(op, "k", k, 4)
    torch._check(
        q.shape[2] == 1,
        lambda: (
            f"sketchwalk.{op}: argument 'q' must hold one query per "
            f"sequence, got shape {tuple(q.shape)}"
        ),
    )
    torch._check(
        block_size >= 1,
        lambda: f"sketchwalk.{op}: argument 'block_size' must be >= 1, got {block_size}",
    )
    n = (k.shape[2] + block_size - 1) // block_size
    torch._check(
        transition.dim() == 3
        and min(transition.shape[1], transition.shape[2]) >= n
        and key_blocks.dim() == 4
        and key_blocks.shape[2] >= n
        and window_logits.dim() == 4
        and window_logits.shape[3] >= n,
        lambda: (
            f"sketchwalk.{op}: argument 'transition' and 'key_blocks', "
            f"'window_logits' need capacity for {n} blocks, got "
            f"{tuple(transition.shape)}, {tuple(key_blocks.shape)} and "
            f"{tuple(window_logits.shape)}"
        ),
    )
    torch._check(
        query_window.dim() == 4 and 1 <= window_fill <= query_window.shape[2],
        lambda: f"sketchwalk.{op}: argument 'window_fill' must lie in [1, W], got {window_fill}",
    )
    return (
        q.new_empty((q.shape[0], 1, 1, n), dtype=torch.int32),
        q.new_empty((q.shape[0], 1, 1), dtype=torch.int32),
    )


# keys4 decode scorer (docs/spec.md section 7; layout of the 4-bit key cache in
# include/sketchwalk/keys4.h and docs/ops.md)


def quantize_keys4_(
    codes: torch.Tensor,
    scales: torch.Tensor,
    k: torch.Tensor,
    seq_lens: torch.Tensor | None = None,
    validate: bool = True,
    page_table: torch.Tensor | None = None,
) -> None:
    """Write 4-bit key rows into the key cache, in place.

    codes: uint8 [batch, num_kv_heads, capacity, head_dim / 2] (mutated); scales: float32
    [batch, num_kv_heads, capacity] (mutated); k: [batch, num_kv_heads, tokens, head_dim]
    fp16/bf16/fp32.
    The tokens land at rows [L_b - tokens, L_b) with L_b = seq_lens[b] (int32 [batch], the lengths
    after the write) or L_b = tokens. Other rows are untouched. Per row: s = max|k| / 7,
    code = clamp(rint(k / s), -7, 7) in float32, stored as code + 8, dim 2i in the low nibble of
    byte i.
    Equivalent to ``reference.quantize_keys4(k)`` written at those rows. ``validate=False`` trusts
    seq_lens on CUDA (no device sync); the CPU always checks.
    page_table: int32 [batch, max_pages] with seq_lens: a paged cache, codes uint8 [num_pages,
    num_kv_heads, 64, head_dim / 2] and scales float32 [num_pages, num_kv_heads, 64]; token t of
    sequence b is row t % 64 of page page_table[b, t // 64] (the page ids of a paged K/V cache).
    """
    _ops.quantize_keys4_(codes, scales, k, seq_lens, validate, page_table)


def _check_keys4_cache(op: str, codes, scales, page_table=None, seq_lens=None) -> None:
    if page_table is not None:
        torch._check(
            seq_lens is not None,
            lambda: (
                f"sketchwalk.{op}: argument 'seq_lens' must be "
                "given with page_table (the keys of each sequence)"
            ),
        )
        _check_rank(op, "page_table", page_table, 2)
        torch._check(
            codes.dim() == 4 and codes.shape[2] == 64,
            lambda: (
                f"sketchwalk.{op}: argument 'codes' must be [num_pages, num_kv_heads, "
                f"64, head_dim / 2] (paged), got {tuple(codes.shape)}"
            ),
        )
    torch._check(
        codes.dim() == 4 and codes.dtype == torch.uint8,
        lambda: (
            f"sketchwalk.{op}: argument 'codes' must be uint8 [batch, num_kv_heads, "
            f"capacity, head_dim / 2], got {codes.dtype} {tuple(codes.shape)}"
        ),
    )
    torch._check(
        scales.dim() == 3 and tuple(scales.shape) == tuple(codes.shape[:3]),
        lambda: (
            f"sketchwalk.{op}: argument 'scales' must have shape "
            f"{tuple(codes.shape[:3])}, got {tuple(scales.shape)}"
        ),
    )


@torch.library.register_fake("sketchwalk::quantize_keys4_")
def _(codes, scales, k, seq_lens=None, validate=True, page_table=None):
    _check_same_device(
        "quantize_keys4_",
        "k",
        k,
        codes=codes,
        scales=scales,
        seq_lens=seq_lens,
        page_table=page_table,
    )
    _check_keys4_cache("quantize_keys4_", codes, scales, page_table, seq_lens)
    torch._check(
        k.dim() == 4 and k.shape[3] == 2 * codes.shape[3],
        lambda: (
            "sketchwalk.quantize_keys4_: argument 'k' must be [batch, num_kv_heads, "
            "tokens, head_dim] with head_dim = 2 * codes.shape[3]"
        ),
    )
    return None


def score_blocks_keys4(
    q: torch.Tensor,
    codes: torch.Tensor,
    scales: torch.Tensor,
    seq_lens: torch.Tensor | None = None,
    softmax_scale: float | None = None,
    validate: bool = True,
    page_table: torch.Tensor | None = None,
) -> torch.Tensor:
    """Block attention mass of the current query per kv group, from the 4-bit key cache.

    q: [batch, num_q_heads, 1, head_dim] (fp16/bf16; fp32 on CPU); codes/scales as in
    ``quantize_keys4_``; seq_lens: int32 [batch] or None (= capacity).
    Returns mass float32 [batch, num_kv_heads, ceil(capacity / 64)]: for kv group g, the sum over
    its query heads of softmax_t(softmax_scale * <q_h, s_t * code_t>) over the keys t < L_b of
    each 64-key block (each head's softmax sums to 1, so a row sums to the group size); 0 past L_b.
    No token-level logits are stored. Equivalent to ``reference.score_blocks_keys4(...)``.
    page_table (with seq_lens): a paged cache as in ``quantize_keys4_``; capacity = 64 * max_pages.
    """
    return _ops.score_blocks_keys4(q, codes, scales, seq_lens, softmax_scale, validate, page_table)


@torch.library.register_fake("sketchwalk::score_blocks_keys4")
def _(q, codes, scales, seq_lens=None, softmax_scale=None, validate=True, page_table=None):
    _check_same_device(
        "score_blocks_keys4",
        "q",
        q,
        codes=codes,
        scales=scales,
        seq_lens=seq_lens,
        page_table=page_table,
    )
    _check_keys4_cache("score_blocks_keys4", codes, scales, page_table, seq_lens)
    torch._check(
        q.dim() == 4 and q.shape[2] == 1 and q.shape[3] == 2 * codes.shape[3],
        lambda: (
            "sketchwalk.score_blocks_keys4: argument 'q' must be [batch, num_q_heads, "
            "1, head_dim] with head_dim = 2 * codes.shape[3]"
        ),
    )
    if page_table is not None:
        return q.new_empty(
            (page_table.shape[0], codes.shape[1], page_table.shape[1]), dtype=torch.float32
        )
    width = (codes.shape[2] + 63) // 64
    return q.new_empty((codes.shape[0], codes.shape[1], width), dtype=torch.float32)


def score_blocks_sampled_rows(
    q: torch.Tensor, k: torch.Tensor, rows: int, softmax_scale: float | None = None
) -> torch.Tensor:
    """Prefill block scores from a few exact query rows (docs/spec.md section 11).

    q: [batch, num_q_heads, num_queries, head_dim], k: [batch, num_kv_heads, num_keys, head_dim]
    (same dtype: fp16/bf16, fp32 on CPU; last dim contiguous; queries end at the last key,
    num_queries <= num_keys). rows: sampled queries per 64-query block and head, 1..64 (on CUDA
    at most 128 / group_size, head_dim 64 or 128).
    Returns scores float32 [batch, num_kv_heads, ceil(num_queries / 64), ceil(num_keys / 64)]:
    for kv group g and query block i, the mean over the group's query heads and the block's
    sampled rows of each row's causal softmax(softmax_scale * q.k), summed per 64-key block (a row
    sums to 1; 0 past the block's last sampled query). Equivalent to
    ``reference.score_blocks_sampled_rows(q, k, rows, softmax_scale)``. Reads no device memory on
    the host (capturable in a CUDA graph).
    """
    return _ops.score_blocks_sampled_rows(q, k, rows, softmax_scale)


@torch.library.register_fake("sketchwalk::score_blocks_sampled_rows")
def _(q, k, rows, softmax_scale=None):
    op = "score_blocks_sampled_rows"
    _check_same_device(op, "q", q, k=k)
    _check_rank(op, "q", q, 4)
    _check_rank(op, "k", k, 4)
    torch._check(
        k.shape[0] == q.shape[0]
        and k.shape[3] == q.shape[3]
        and k.shape[1] >= 1
        and q.shape[1] % k.shape[1] == 0,
        lambda: (
            f"sketchwalk.{op}: argument 'k' must be [batch, num_kv_heads, num_keys, head_dim] "
            f"with num_kv_heads dividing the heads of 'q' {tuple(q.shape)}, got {tuple(k.shape)}"
        ),
    )
    torch._check(
        q.shape[2] <= k.shape[2],
        lambda: f"sketchwalk.{op}: argument 'q' holds more queries than 'k' holds keys",
    )
    torch._check(
        1 <= rows <= MAX_SAMPLED_ROWS,
        lambda: f"sketchwalk.{op}: argument 'rows' must lie in [1, {MAX_SAMPLED_ROWS}], got {rows}",
    )
    return q.new_empty(
        (q.shape[0], k.shape[1], (q.shape[2] + 63) // 64, (k.shape[2] + 63) // 64),
        dtype=torch.float32,
    )


def select_blocks_keys4(
    mass: torch.Tensor,
    seq_lens: torch.Tensor | None,
    keep_frac: float,
    window_frac: float,
    sink_frac: float,
    validate: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode block index per kv group from block masses (docs/spec.md section 7 steps 3-4).

    mass: float32 [batch, num_kv_heads, width] (contiguous); seq_lens: int32 [batch] or None
    (= 64 * width keys). Row (b, g), n = ceil(L_b / 64), window w = max(1, floor(window_frac * L_b))
    and sink s = max(1, floor(sink_frac * L_b)) tokens: keeps blocks [0, ceil(s / 64)) and the last
    ceil(w / 64) blocks, and the candidates between them whose mass is strictly above the
    (1 - keep_frac) linear quantile of the candidates' mass (none if a candidate is NaN).
    Returns (block_index int32 [batch, num_kv_heads, 1, width], ascending, -1 padded;
    num_selected int32 [batch, num_kv_heads, 1]) for ``sparse_decode`` (index_heads = num_kv_heads).
    Equivalent to ``reference.select_blocks_keys4(...)``. Lengths are read on the device:
    graph-safe.
    """
    return _ops.select_blocks_keys4(mass, seq_lens, keep_frac, window_frac, sink_frac, validate)


@torch.library.register_fake("sketchwalk::select_blocks_keys4")
def _(mass, seq_lens, keep_frac, window_frac, sink_frac, validate=True):
    _check_same_device("select_blocks_keys4", "mass", mass, seq_lens=seq_lens)
    torch._check(
        mass.dim() == 3 and mass.dtype == torch.float32,
        lambda: (
            "sketchwalk.select_blocks_keys4: argument 'mass' must be float32 "
            "[batch, num_kv_heads, num_blocks]"
        ),
    )
    b, g, w = mass.shape
    return (
        mass.new_empty((b, g, 1, w), dtype=torch.int32),
        mass.new_empty((b, g, 1), dtype=torch.int32),
    )
