/* The uncontended hot path of threadtrace.Lock and threadtrace.RLock, in C.
 *
 * A pure-Python wrapper pays two interpreted frames per `with lock:`
 * (__enter__ and __exit__), which on its own costs more than the 1.6x budget
 * threadtrace allows itself.  This module moves exactly the hot path into C:
 *
 *   acquire: a non-blocking try of the real lock, the owner's ident, a
 *            countdown to the next sampled acquisition (and the depth, for
 *            an RLock);
 *   release: one flag test and the real release.
 *
 * Everything else (a try that failed, a sampled acquisition, a release that
 * has waiters or a measured hold, any unusual argument) calls back into the
 * Python methods of threadtrace._primitives.locks by name, so the semantics
 * live in one place.  pycore.py holds the same hot path in pure Python; it is
 * used when this extension is not built, and the test suite runs against both.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include "pythread.h"

typedef struct {
    PyObject_HEAD
    PyObject *raw;           /* the real _thread.lock / _thread.RLock */
    PyObject *try_;          /* raw.acquire */
    PyObject *rel;           /* raw.release */
    unsigned long owner;     /* valid while `owned` */
    char owned;
    char hot;                /* a release must call _release_slow() */
    char reentrant;
    Py_ssize_t left;         /* acquisitions until the next sampled one */
    Py_ssize_t depth;        /* RLock recursion depth, as threadtrace tracks it */
} CoreObject;

static PyObject *str_acquire_slow, *str_acquire_with, *str_sampled, *str_release_slow;

static int
core_traverse(CoreObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->raw);
    Py_VISIT(self->try_);
    Py_VISIT(self->rel);
    return 0;
}

static int
core_clear(CoreObject *self)
{
    Py_CLEAR(self->raw);
    Py_CLEAR(self->try_);
    Py_CLEAR(self->rel);
    return 0;
}

static void
core_dealloc(CoreObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    core_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* The try succeeded: note the owner and count down to the next sample. */
static PyObject *
core_acquired(CoreObject *self)
{
    self->owner = PyThread_get_thread_ident();
    self->owned = 1;
    if (self->reentrant) {
        self->depth++;
    }
    if (--self->left <= 0) {
        PyObject *measure = (self->reentrant && self->depth != 1) ? Py_False : Py_True;
        PyObject *r = PyObject_CallMethodOneArg((PyObject *)self, str_sampled, measure);
        if (r == NULL) {
            /* The lock is held now: an error in bookkeeping must not turn
             * a successful acquire into an exception that leaks it. */
            PyErr_WriteUnraisable((PyObject *)self);
        }
        Py_XDECREF(r);
    }
    Py_RETURN_TRUE;
}

static PyObject *
core_fast_acquire(CoreObject *self)
{
    if (self->try_ == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "threadtrace lock used before initialisation");
        return NULL;
    }
    PyObject *r = PyObject_CallOneArg(self->try_, Py_False);
    if (r == NULL) {
        return NULL;
    }
    int got = (r == Py_True);
    Py_DECREF(r);
    if (got) {
        return core_acquired(self);
    }
    PyObject *minus_one = PyLong_FromLong(-1);
    if (minus_one == NULL) {
        return NULL;
    }
    r = PyObject_CallMethodOneArg((PyObject *)self, str_acquire_slow, minus_one);
    Py_DECREF(minus_one);
    return r;
}

static PyObject *
core_enter(CoreObject *self, PyObject *Py_UNUSED(ignored))
{
    return core_fast_acquire(self);
}

static PyObject *
core_acquire(CoreObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs == 0 && kwnames == NULL) {
        return core_fast_acquire(self);
    }
    /* Parse (blocking=True, timeout=-1) by hand: PyArg_ParseTupleAndKeywords
     * would cost more than the whole fast path. */
    PyObject *blocking = NULL, *timeout = NULL;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs > 2) {
        goto let_the_real_lock_raise;
    }
    if (nargs > 0) {
        blocking = args[0];
    }
    if (nargs > 1) {
        timeout = args[1];
    }
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i);
        PyObject **slot = NULL;
        if (PyUnicode_CompareWithASCIIString(key, "blocking") == 0) {
            slot = &blocking;
        }
        else if (PyUnicode_CompareWithASCIIString(key, "timeout") == 0) {
            slot = &timeout;
        }
        /* else: an unknown keyword */
        if (slot == NULL || *slot != NULL) {
            goto let_the_real_lock_raise;
        }
        *slot = args[nargs + i];
    }
    int default_timeout = (timeout == NULL);
    if (!default_timeout && PyLong_CheckExact(timeout)) {
        int overflow = 0;
        long value = PyLong_AsLongAndOverflow(timeout, &overflow);
        default_timeout = (!overflow && value == -1);
    }
    if ((blocking == NULL || blocking == Py_True) && default_timeout) {
        return core_fast_acquire(self);
    }
    /* Anything else takes the Python path, which matches threading exactly. */
    PyObject *r;
    PyObject *minus_one = NULL;
    if (timeout == NULL) {
        minus_one = PyLong_FromLong(-1);
        if (minus_one == NULL) {
            return NULL;
        }
    }
    r = PyObject_CallMethodObjArgs(
        (PyObject *)self, str_acquire_with,
        blocking ? blocking : Py_True,
        timeout ? timeout : minus_one,
        NULL);
    Py_XDECREF(minus_one);
    return r;

let_the_real_lock_raise:
    /* Arguments the real lock rejects before touching the lock: it raises
     * threading's exact TypeError.  (Should it ever accept them, the result
     * is still an acquisition, noted as one.) */
    r = PyObject_Vectorcall(self->try_, args, nargs, kwnames);
    if (r == Py_True) {
        Py_DECREF(r);
        return core_acquired(self);
    }
    return r;
}

static PyObject *
core_release(CoreObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->rel == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "threadtrace lock used before initialisation");
        return NULL;
    }
    if (self->reentrant) {
        if (!self->owned || self->owner != PyThread_get_thread_ident()) {
            /* Not ours: the real lock raises exactly as threading does. */
            return PyObject_CallNoArgs(self->rel);
        }
        if (--self->depth > 0) {
            return PyObject_CallNoArgs(self->rel);
        }
    }
    self->owned = 0;
    if (self->hot) {
        PyObject *r = PyObject_CallMethodNoArgs((PyObject *)self, str_release_slow);
        if (r == NULL) {
            /* Release the lock whatever happened in the bookkeeping. */
            PyErr_WriteUnraisable((PyObject *)self);
        }
        Py_XDECREF(r);
    }
    return PyObject_CallNoArgs(self->rel);
}

static PyObject *
core_exit(CoreObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return core_release(self, NULL);
}

static PyObject *
core_get_owner(CoreObject *self, void *Py_UNUSED(closure))
{
    if (!self->owned) {
        Py_RETURN_NONE;
    }
    return PyLong_FromUnsignedLong(self->owner);
}

static int
core_set_owner(CoreObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    if (value == NULL || value == Py_None) {
        self->owned = 0;
        return 0;
    }
    unsigned long owner = PyLong_AsUnsignedLong(value);
    if (owner == (unsigned long)-1 && PyErr_Occurred()) {
        return -1;
    }
    self->owner = owner;
    self->owned = 1;
    return 0;
}

static PyMethodDef core_methods[] = {
    {"__enter__", (PyCFunction)core_enter, METH_NOARGS, "Acquire the lock, blocking."},
    {"__exit__", (PyCFunction)(void (*)(void))core_exit, METH_FASTCALL, "Release the lock."},
    {"acquire", (PyCFunction)(void (*)(void))core_acquire, METH_FASTCALL | METH_KEYWORDS,
     "acquire(blocking=True, timeout=-1)\n--\n\n"
     "Acquire the lock, exactly as threading's lock does."},
    {"release", (PyCFunction)core_release, METH_NOARGS,
     "Release the lock, exactly as threading's lock does."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef core_members[] = {
    {"_raw", T_OBJECT_EX, offsetof(CoreObject, raw), 0, NULL},
    {"_try", T_OBJECT_EX, offsetof(CoreObject, try_), 0, NULL},
    {"_rel", T_OBJECT_EX, offsetof(CoreObject, rel), 0, NULL},
    {"_hot", T_BOOL, offsetof(CoreObject, hot), 0, NULL},
    {"_reentrant", T_BOOL, offsetof(CoreObject, reentrant), 0, NULL},
    {"_left", T_PYSSIZET, offsetof(CoreObject, left), 0, NULL},
    {"_depth", T_PYSSIZET, offsetof(CoreObject, depth), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef core_getset[] = {
    {"_owner", (getter)core_get_owner, (setter)core_set_owner,
     "Ident of the thread that last acquired the lock, or None after release.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot core_slots[] = {
    {Py_tp_doc, "The C hot path shared by threadtrace.Lock and threadtrace.RLock."},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, core_dealloc},
    {Py_tp_traverse, core_traverse},
    {Py_tp_clear, core_clear},
    {Py_tp_methods, core_methods},
    {Py_tp_members, core_members},
    {Py_tp_getset, core_getset},
    {0, NULL},
};

static PyType_Spec core_spec = {
    .name = "threadtrace._primitives._lockcore.LockCore",
    .basicsize = sizeof(CoreObject),
    .itemsize = 0,
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = core_slots,
};

static int
lockcore_exec(PyObject *module)
{
    str_acquire_slow = PyUnicode_InternFromString("_acquire_slow");
    str_acquire_with = PyUnicode_InternFromString("_acquire_with");
    str_sampled = PyUnicode_InternFromString("_sampled");
    str_release_slow = PyUnicode_InternFromString("_release_slow");
    if (!str_acquire_slow || !str_acquire_with || !str_sampled || !str_release_slow) {
        return -1;
    }
    PyObject *core = PyType_FromSpec(&core_spec);
    if (core == NULL) {
        return -1;
    }
    if (PyModule_AddObject(module, "LockCore", core) < 0) {
        Py_DECREF(core);
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot lockcore_slots[] = {
    {Py_mod_exec, lockcore_exec},
    {0, NULL},
};

static struct PyModuleDef lockcore_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "threadtrace._primitives._lockcore",
    .m_doc = "C hot path for threadtrace's locks (optional; pycore.py is the fallback).",
    .m_size = 0,
    .m_slots = lockcore_slots,
};

PyMODINIT_FUNC
PyInit__lockcore(void)
{
    return PyModuleDef_Init(&lockcore_module);
}
