// current_stream_is_capturing (checks.h): whether the current CUDA stream of a tensor's device is
// capturing a graph, so that value checks which would sync are skipped then.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "checks.h"
#include "cuda/host.h"
#include "cuda/launch.h"
#include "ops.h"

namespace sketchwalk {

bool current_stream_is_capturing(const at::Tensor& t) {
  if (!t.is_cuda()) return false;
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  const auto stream = c10::cuda::getCurrentCUDAStream(t.device().index());
  if (cudaStreamIsCapturing(stream.stream(), &status) != cudaSuccess) return false;
  return status != cudaStreamCaptureStatusNone;
}

}  // namespace sketchwalk
