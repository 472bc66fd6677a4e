// select_blocks_keys4's CUDA side for either tensor type (the ATen wrapper
// csrc/cuda/select_blocks_keys4.cpp, the stable-ABI one csrc/stable/select_blocks_keys4_cuda.cpp):
// the grid limit the kernel adds to the op's checks, and the launch from checked tensors. The
// caller holds the device guard.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/launch.h"
#include "cuda/launch_common.h"
#include "sketchwalk/common.h"

namespace sketchwalk {

// One block per (batch, kv head) on the grid's y and z.
template <typename T>
void check_select_blocks_keys4_grid(const T& mass) {
  SW_CHECK_ARG(mass.size(0) <= kMaxGridYZ && mass.size(1) <= kMaxGridYZ, "select_blocks_keys4",
               "mass", "must have batch and num_kv_heads <= ", kMaxGridYZ,
               " on CUDA, got shape ", mass.sizes());
}

// block_index [batch, heads, 1, width] and num_selected [batch, heads, 1] int32, contiguous;
// seq_lens: the contiguous int32 lengths on the device, or nullptr. batch * heads and width > 0.
template <typename T>
void launch_select_blocks_keys4(const T& mass, const int* seq_lens, const T& block_index,
                                const T& num_selected, double keep_frac, double window_frac,
                                double sink_frac, cudaStream_t stream) {
  SelectKeys4Params p{};
  p.mass = mass.template const_data_ptr<float>();
  p.seq_lens = seq_lens;
  p.block_index = block_index.template mutable_data_ptr<int>();
  p.num_selected = num_selected.template mutable_data_ptr<int>();
  p.batch = static_cast<int>(mass.size(0));
  p.num_kv_heads = static_cast<int>(mass.size(1));
  p.width = static_cast<int>(mass.size(2));
  p.keep_frac = keep_frac;
  p.window_frac = window_frac;
  p.sink_frac = sink_frac;
  check_launch(run_select_blocks_keys4(p, stream), "select_blocks_keys4");
}

}  // namespace sketchwalk
