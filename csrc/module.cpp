// The Python extension module sketchwalk._C. It holds no Python functions: importing it
// runs the TORCH_LIBRARY registrations (registration.cpp), after which the ops are
// reachable as torch.ops.sketchwalk.*. Import torch first: the
// extension links against libtorch's symbols, which only `import torch` loads.
#include <Python.h>

static struct PyModuleDef sketchwalk_module = {PyModuleDef_HEAD_INIT, "_C",
                                               "sketchwalk ops (registered into torch.ops.sketchwalk)",
                                               -1, nullptr};

// With hidden visibility the init symbol must be exported explicitly, or
// Python cannot find PyInit__C.
PyMODINIT_FUNC PyInit__C(void) { return PyModule_Create(&sketchwalk_module); }
