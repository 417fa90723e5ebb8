/* The one thing `threadtrace run` cannot do from Python: end the process by
 * SIGINT after the interpreter has finalized.
 *
 * `threadtrace run` ends a program that raised KeyboardInterrupt as python
 * ends it: by SIGINT, after every atexit handler has run and the interpreter
 * has been finalized.  python decides that itself after Py_FinalizeEx
 * (Modules/main.c, exit_sigint), but its flag is cleared whenever code
 * compiled from a string runs in between (run_eval_code_obj resets it:
 * exec(), eval(), any import that makes a dataclass or a namedtuple), and the
 * exporters' flush at exit does run such code.  A low-level exit function
 * runs after all of that, the last thing before the process exits.
 *
 * Optional: without it (no compiler at install time) threadtrace run kills
 * the process at the end of its own atexit handler (threadtrace._cli.run).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#ifndef MS_WINDOWS
#include <signal.h>
#include <unistd.h>
#endif

#ifndef MS_WINDOWS
static void
die_of_sigint(void)
{
    fflush(NULL);
    signal(SIGINT, SIG_DFL);
    kill(getpid(), SIGINT);
    /* Still here (SIGINT blocked): the process exits with the status it had. */
}
#endif

static PyObject *
exit_die_of_sigint_at_exit(PyObject *module, PyObject *unused)
{
#ifdef MS_WINDOWS
    Py_RETURN_FALSE;
#else
    if (Py_AtExit(die_of_sigint) < 0) {
        Py_RETURN_FALSE;  /* the table of 32 is full */
    }
    Py_RETURN_TRUE;
#endif
}

static PyMethodDef exit_methods[] = {
    {"die_of_sigint_at_exit", exit_die_of_sigint_at_exit, METH_NOARGS,
     "After the interpreter has finalized, end the process by SIGINT.\n\n"
     "Returns False where that cannot be arranged (Windows, or no room left)."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot exit_slots[] = {
#ifdef Py_mod_gil
    /* Free-threaded builds (3.13t): not verified without the GIL, so importing
     * this module re-enables it, as for _lockcore (docs/limitations.md). */
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef exit_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "threadtrace._cli._exit",
    .m_doc = "The SIGINT exit of threadtrace run (optional; threadtrace._cli.run falls back).",
    .m_size = 0,
    .m_methods = exit_methods,
    .m_slots = exit_slots,
};

PyMODINIT_FUNC
PyInit__exit(void)
{
    return PyModuleDef_Init(&exit_module);
}
