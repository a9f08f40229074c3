/* mpext.c - a tiny CPython extension for run_py.py's py_cext case, compiled at test time for
 * each interpreter with that interpreter's own headers.
 *
 * mpext.leak_malloc(n) and mpext.leak_raw(n) allocate n bytes with malloc() and
 * PyMem_RawMalloc() and never free them; each returns the block's address. The C functions keep
 * their names (no inlining at -O0), so a native stack names them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>

static void *volatile mpext_sink;

static PyObject *
mpext_leak_malloc(PyObject *self, PyObject *arg) {
    (void)self;
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n < 0 && PyErr_Occurred()) return NULL;
    void *p = malloc((size_t)n);
    if (!p) return PyErr_NoMemory();
    memset(p, 1, (size_t)n);
    mpext_sink = p;
    return PyLong_FromVoidPtr(p);
}

static PyObject *
mpext_leak_raw(PyObject *self, PyObject *arg) {
    (void)self;
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n < 0 && PyErr_Occurred()) return NULL;
    void *p = PyMem_RawMalloc((size_t)n);
    if (!p) return PyErr_NoMemory();
    memset(p, 2, (size_t)n);
    mpext_sink = p;
    return PyLong_FromVoidPtr(p);
}

static PyMethodDef mpext_methods[] = {
    {"leak_malloc", mpext_leak_malloc, METH_O, "malloc(n), never freed"},
    {"leak_raw", mpext_leak_raw, METH_O, "PyMem_RawMalloc(n), never freed"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef mpext_module = {
    PyModuleDef_HEAD_INIT,
    "mpext",
    "memprof e2e test extension",
    -1,
    mpext_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit_mpext(void) {
    return PyModule_Create(&mpext_module);
}
