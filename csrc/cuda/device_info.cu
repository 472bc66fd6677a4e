// current_device_sm_count: the SM count the launch heuristics size their grids by (declared in
// launch.h). Kernel-free.
#include <cuda_runtime.h>

#include "launch.h"

namespace sketchwalk {

int current_device_sm_count() {
  int device = 0, sms = 132;  // 132: an H100 / H200, if the query fails
  if (cudaGetDevice(&device) == cudaSuccess)
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  return sms;
}

}  // namespace sketchwalk
