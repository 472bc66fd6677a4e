"""The kernels' fixed sizes: defined once in include/sketchwalk/ and read by Python
(sketchwalk.limits), the constants the tests use agree with them, and the C++ checks name them."""

import pytest
import torch

from utils import ATTN_HEAD_DIMS, B, assert_raises_naming, ops


def test_limits_come_from_the_extension(sw):
    assert sw.limits.BLOCK_SIZE == B == sw.SketchWalkConfig().block_size
    assert list(sw.limits.ATTENTION_HEAD_DIMS) == ATTN_HEAD_DIMS
    assert sw.limits.MAX_SKETCH_HEAD_DIM == 256 and sw.limits.MAX_GRID_YZ == 65535
    assert sw.limits.MAX_SAMPLED_ROWS == B  # at most every row of a 64-query block


@pytest.mark.parametrize("head_dim", [32, 96])
def test_unsupported_head_dim_message_lists_the_limits(sw, head_dim):
    q = torch.randn(1, 2, 64, head_dim)
    idx = torch.zeros(1, 1, 1, 1, dtype=torch.int32)
    cnt = torch.ones(1, 1, 1, dtype=torch.int32)
    with pytest.raises(RuntimeError) as err:
        ops().sparse_prefill(q, q, q, idx, cnt)
    dims = ", ".join(map(str, sw.limits.ATTENTION_HEAD_DIMS))
    assert f"{{{dims}}}" in str(err.value) and "'q'" in str(err.value)
    assert_raises_naming(lambda: ops().sparse_prefill(q, q, q, idx, cnt), "q")
