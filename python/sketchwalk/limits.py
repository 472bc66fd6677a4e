"""The kernels' fixed sizes, defined once in include/sketchwalk/ (common.h, block_index.h) and
read here from the extension, so Python checks and fakes cannot drift from the C++ ones."""

from __future__ import annotations

from . import _C

BLOCK_SIZE: int = _C.BLOCK_SIZE
"""Tokens per block on both axes: the block index's unit and every attention kernel's tile."""
ATTENTION_HEAD_DIMS: tuple[int, ...] = tuple(_C.ATTENTION_HEAD_DIMS)
"""head_dim values the attention kernels are built for (sparse_prefill, sparse_decode, keys4)."""
MAX_SKETCH_HEAD_DIM: int = _C.MAX_SKETCH_HEAD_DIM
"""Largest head_dim the sketch takes (next_pow2(head_dim) <= this)."""
MAX_GRID_YZ: int = _C.MAX_GRID_YZ
"""Most batch rows (sequences, head slices) a CUDA launch takes in its grid's y or z."""
MAX_SAMPLED_ROWS: int = _C.MAX_SAMPLED_ROWS
"""Most sampled query rows per 64-query block and head of score_blocks_sampled_rows."""
