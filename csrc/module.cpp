// The Python extension module sketchwalk._C. It holds no Python functions: importing it
// runs the TORCH_LIBRARY registrations (registration.cpp), after which the ops are
// reachable as torch.ops.sketchwalk.*. Import torch first: the
// extension links against libtorch's symbols, which only `import torch` loads.
// It also carries the kernels' fixed sizes, defined once in include/ (python/sketchwalk/limits.py
// reads them).
#include <Python.h>

#include "sketchwalk/block_index.h"
#include "sketchwalk/common.h"
#include "sketchwalk/sampled_rows.h"

static struct PyModuleDef sketchwalk_module = {PyModuleDef_HEAD_INIT, "_C",
                                               "sketchwalk ops (registered into torch.ops.sketchwalk)",
                                               -1, nullptr};

// With hidden visibility the init symbol must be exported explicitly, or
// Python cannot find PyInit__C.
PyMODINIT_FUNC PyInit__C(void) {
  PyObject* m = PyModule_Create(&sketchwalk_module);
  if (m == nullptr) return nullptr;
  PyObject* head_dims = Py_BuildValue("(ii)", sketchwalk::kAttentionHeadDimSmall,
                                      sketchwalk::kAttentionHeadDimLarge);
  if (head_dims == nullptr) {
    Py_DECREF(m);
    return nullptr;
  }
  if (PyModule_AddObject(m, "ATTENTION_HEAD_DIMS", head_dims) != 0) {  // steals only on success
    Py_DECREF(head_dims);
    Py_DECREF(m);
    return nullptr;
  }
  if (PyModule_AddIntConstant(m, "BLOCK_SIZE", sketchwalk::kIndexBlockSize) != 0 ||
      PyModule_AddIntConstant(m, "MAX_SKETCH_HEAD_DIM", sketchwalk::kMaxSketchHeadDim) != 0 ||
      PyModule_AddIntConstant(m, "MAX_GRID_YZ", sketchwalk::kMaxGridYZ) != 0 ||
      PyModule_AddIntConstant(m, "MAX_SAMPLED_ROWS", sketchwalk::kMaxSampledRows) != 0) {
    Py_DECREF(m);
    return nullptr;
  }
  return m;
}
