// The op table on PyTorch's stable ABI: every torch.ops.sketchwalk.* schema (csrc/op_schemas.h,
// the list the C++-ABI table csrc/registration.cpp defines from too). The implementations
// register next to their code (csrc/stable/<op>.cpp, <op>_cuda.cpp).
#include <torch/csrc/stable/library.h>

#include "op_schemas.h"

STABLE_TORCH_LIBRARY(sketchwalk, m) {
  for (const char* schema : sketchwalk::kOpSchemas) m.def(schema);
}
