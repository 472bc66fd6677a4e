// current_stream_is_capturing for the stable tensor (csrc/stable/common.h's read_values): whether
// the current CUDA stream of the tensor's device is capturing a graph, so that the value checks,
// which would sync, are skipped then (as csrc/cuda/stream_capture.cpp does for at::Tensor).
#include <cuda_runtime.h>

#include "stable/common.h"
#include "stable/cuda.h"

namespace sketchwalk {

bool current_stream_is_capturing(const torch::stable::Tensor& t) {
  if (!t.is_cuda()) return false;
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stable::current_cuda_stream(t), &status) != cudaSuccess) return false;
  return status != cudaStreamCaptureStatusNone;
}

}  // namespace sketchwalk
