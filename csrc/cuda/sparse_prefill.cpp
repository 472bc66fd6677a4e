// Compiles csrc/cuda/attention_host.h (csrc/cuda/sparse_attention.cpp renamed, unchanged) until
// the per-op split of the CUDA host wrappers.
#include "cuda/attention_host.h"
