#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *total(PyObject *self, PyObject *args) {
    PyObject *seq;
    if (!PyArg_ParseTuple(args, "O", &seq)) return NULL;
    PyObject *iter = PyObject_GetIter(seq);
    if (!iter) return NULL;
    long long sum = 0;
    PyObject *item;
    while ((item = PyIter_Next(iter))) {
        sum += PyLong_AsLongLong(item);
        Py_DECREF(item);
        if (PyErr_Occurred()) { Py_DECREF(iter); return NULL; }
    }
    Py_DECREF(iter);
    if (PyErr_Occurred()) return NULL;
    return PyLong_FromLongLong(sum);
}

static PyMethodDef methods[] = {
    {"total", total, METH_VARARGS, "Sum an iterable of integers."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_speedups", NULL, -1, methods};

PyMODINIT_FUNC PyInit__speedups(void) { return PyModule_Create(&module); }
