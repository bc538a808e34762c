/* An empty Python module around the C library, so that `pip install` can build it as an
 * extension (setup.py); flashswap/store/c_engine.py loads it through ctypes, by path. */
#include <Python.h>

static struct PyModuleDef fsw_module = {
    PyModuleDef_HEAD_INIT, "_flashswap_c", "flashswap C library (used through ctypes)", -1,
    NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__flashswap_c(void)
{
    return PyModule_Create(&fsw_module);
}
