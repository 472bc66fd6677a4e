// Shared pieces of the nvbench benches in bench/cpp: device buffers, random device inputs,
// host-built block indices (block_index.h format) and the FLOP-rate summaries that nvbench
// does not compute itself. Torch-free; each bench_<op>.cu includes this once. Inputs are
// random, never zeros, so no kernel takes a data-dependent shortcut.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <nvbench/nvbench.cuh>

#include <algorithm>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "sketchwalk/block_index.h"
#include "sketchwalk/common.h"

namespace sketchwalk::bench {

// Throws (nvbench reports the exception and goes on with the next state) naming the call.
inline void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorName(status) + " (" +
                             cudaGetErrorString(status) + ")");
  }
}

// Owning device allocation of `count` elements (plain cudaMalloc, never managed memory).
template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t count) : count_(count) {
    check_cuda(cudaMalloc(&ptr_, std::max<size_t>(count, 1) * sizeof(T)), "cudaMalloc");
  }
  ~DeviceBuffer() { cudaFree(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const { return ptr_; }
  size_t size() const { return count_; }
  size_t bytes() const { return count_ * sizeof(T); }
  void copy_from_host(const std::vector<T>& host) {
    check_cuda(cudaMemcpy(ptr_, host.data(), std::min(host.size(), count_) * sizeof(T),
                          cudaMemcpyHostToDevice),
               "cudaMemcpy H2D");
  }

 private:
  T* ptr_ = nullptr;
  size_t count_ = 0;
};

template <typename T>
SW_DEVICE T from_float(float x) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return __float2bfloat16(x);
  } else if constexpr (std::is_same_v<T, __half>) {
    return __float2half(x);
  } else {
    return static_cast<T>(x);
  }
}

// Uniform in [lo, hi) from a 64-bit mix of (seed, i): reproducible, no curand dependency.
template <typename T>
__global__ void fill_uniform_kernel(T* __restrict__ out, size_t n, uint64_t seed, float lo,
                                    float hi) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    uint64_t z = (i + 1) * 0x9E3779B97F4A7C15ull ^ seed;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const float u = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);  // 24 bits -> [0, 1)
    out[i] = from_float<T>(lo + (hi - lo) * u);
  }
}

template <typename T>
void fill_uniform(DeviceBuffer<T>& buf, uint64_t seed, float lo = -1.f, float hi = 1.f) {
  fill_uniform_kernel<T><<<1024, 256>>>(buf.get(), buf.size(), seed, lo, hi);
  check_cuda(cudaGetLastError(), "fill_uniform_kernel");
  check_cuda(cudaDeviceSynchronize(), "fill_uniform_kernel sync");
}

// A host-built block index (block_index.h): one shared selection (index_heads = 1) per batch
// row, each row keeping its causal-limit ("diagonal") block plus every earlier block with
// probability `density` (1.0 keeps every causal block), strictly increasing, padded with -1.
struct HostBlockIndex {
  std::vector<int> block_index;   // [batch, 1, num_rows, max_selected]
  std::vector<int> num_selected;  // [batch, 1, num_rows]
  int max_selected = 0;
  int64_t total_selected = 0;     // sum of num_selected
  int64_t kept_causal_pairs = 0;  // (query, key) pairs inside kept blocks that causality keeps
};

// `num_queries` queries end at the last of `num_keys` keys (block_index.h); counts the causal
// pairs exactly, partial blocks included.
inline HostBlockIndex build_block_index(int batch, int num_queries, int num_keys, int block_size,
                                        double density, uint64_t seed) {
  const int num_rows = ceil_div(num_queries, block_size);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> coin(0.0, 1.0);
  std::vector<std::vector<int>> rows(static_cast<size_t>(batch) * num_rows);
  HostBlockIndex out;
  for (int b = 0; b < batch; ++b) {
    for (int i = 0; i < num_rows; ++i) {
      const int lim = causal_limit_block(i, num_queries, num_keys, block_size);
      auto& row = rows[static_cast<size_t>(b) * num_rows + i];
      for (int j = 0; j < lim; ++j) {
        if (density >= 1.0 || coin(rng) < density) row.push_back(j);
      }
      row.push_back(lim);
      out.max_selected = std::max(out.max_selected, static_cast<int>(row.size()));
      out.total_selected += static_cast<int64_t>(row.size());
      const int q_begin = i * block_size, q_end = std::min(q_begin + block_size, num_queries);
      for (int j : row) {
        const int k_begin = j * block_size, k_end = std::min(k_begin + block_size, num_keys);
        if (k_end - 1 <= query_position(q_begin, num_queries, num_keys)) {  // fully visible
          out.kept_causal_pairs += static_cast<int64_t>(q_end - q_begin) * (k_end - k_begin);
          continue;
        }
        for (int t = q_begin; t < q_end; ++t) {  // keys visible to query t inside block j
          const int last = std::min(k_end - 1, query_position(t, num_queries, num_keys));
          if (last >= k_begin) out.kept_causal_pairs += last - k_begin + 1;
        }
      }
    }
  }
  out.block_index.assign(rows.size() * out.max_selected, kBlockIndexPad);
  out.num_selected.resize(rows.size());
  for (size_t r = 0; r < rows.size(); ++r) {
    std::copy(rows[r].begin(), rows[r].end(), out.block_index.begin() + r * out.max_selected);
    out.num_selected[r] = static_cast<int>(rows[r].size());
  }
  return out;
}

// Arithmetic unit a kernel's FLOPs run on, for the "% of peak FLOP" column.
enum class FlopUnit { kTensorBF16, kCudaCoreFP32 };

// Dense peak FLOP per clock per SM; 0 where this table has no entry (no % column then).
// sm_80 (A100): 1024 bf16 FMA/clk/SM tensor, 64 fp32 FMA/clk/SM; sm_90 (H100/H200): 2048 and 128.
inline double peak_flop_per_clock_per_sm(int sm_version, FlopUnit unit) {
  const bool tensor = unit == FlopUnit::kTensorBF16;
  switch (sm_version) {
    case 800: return tensor ? 2048.0 : 128.0;
    case 900: return tensor ? 4096.0 : 256.0;
    default: return 0.0;
  }
}

// Adds "TFLOP/s" (from the cold mean GPU time) and "%PeakFLOP" (against SMs x default SM clock
// x the table above). Call after state.exec(); does nothing for a state that did not run.
inline void add_flop_summaries(nvbench::state& state, double flops, FlopUnit unit) {
  const nvbench::summary* time = nullptr;
  for (const auto& s : state.get_summaries()) {
    if (s.get_tag() == "nv/cold/time/gpu/mean") time = &s;
  }
  if (time == nullptr) return;
  const double seconds = time->get_float64("value");
  if (!(seconds > 0.0)) return;
  const double rate = flops / seconds;
  {
    auto& s = state.add_summary("sketchwalk/flop_rate");
    s.set_string("name", "TFLOP/s");
    s.set_string("description", "FLOPs declared by the bench / cold mean GPU time, in 1e12/s");
    s.set_float64("value", rate * 1e-12);
  }
  const auto& device = state.get_device();
  if (!device) return;
  const double per_clock = peak_flop_per_clock_per_sm(device->get_sm_version(), unit);
  if (per_clock == 0.0) return;
  const double peak = per_clock * device->get_number_of_sms() *
                      static_cast<double>(device->get_sm_default_clock_rate());
  auto& s = state.add_summary("sketchwalk/flop_peak");
  s.set_string("name", "%PeakFLOP");
  s.set_string("hint", "percentage");
  s.set_string("description", "TFLOP/s over dense peak at the default SM clock");
  s.set_float64("value", rate / peak);
}

}  // namespace sketchwalk::bench
