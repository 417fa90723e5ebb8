/* A signal threadtrace handles reaches the main thread, whichever thread the
 * kernel handed it to.
 *
 * python runs a signal handler on the main thread only: the low-level handler
 * it installs, run by whichever thread the kernel picked, just notes the
 * signal for the main thread's next bytecode.  A main thread asleep in a C wait
 * (a multiprocessing queue's lock, a bare lock's acquire) wakes only for a
 * signal delivered to it; one another thread took leaves it asleep.  With the
 * default action, SIGTERM ends the process whichever thread takes it; with
 * the handler threadtrace installs to flush first (threadtrace._control.exit),
 * such a process would not end at all: Pool.terminate() then waited forever
 * for a worker.
 *
 * route_to_main_thread() puts a low-level handler in front of python's: on the
 * main thread it calls python's; on any other thread it sends the signal on to
 * the main thread (tgkill: async-signal-safe), which the signal then
 * wakes from its wait as the default action would have ended it.
 *
 * Even on the main thread, a signal can come just before a C wait goes back to
 * sleep (glibc's sem_wait, woken by a sem_post another waiter won, loops
 * inside the C library): python's handler notes it, and the wait sleeps on.
 * So on Linux a timer sends the signal again every 100 ms until python's
 * handler has begun (handled()); after 3 s of that it ends the process as the
 * default action would have at once, without the flush.
 *
 * Optional: without it (no compiler at install time) threadtrace's own threads
 * still block the signal (threadtrace._support.originals), so only a thread of
 * the program can take it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#ifndef MS_WINDOWS
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#endif
#ifdef __linux__
#include <sys/syscall.h>
#include <unistd.h>
#endif

#ifndef MS_WINDOWS
#ifdef __linux__
/* The main thread's kernel id: the raw tgkill and gettid calls keep the
 * extension off glibc 2.34's pthread_kill, so that wheels install on older
 * systems (manylinux). */
static pid_t main_tid;
#define REMEMBER_MAIN_THREAD() (main_tid = (pid_t)syscall(SYS_gettid))
#define ON_MAIN_THREAD() ((pid_t)syscall(SYS_gettid) == main_tid)
#define SEND_TO_MAIN_THREAD(signum) syscall(SYS_tgkill, getpid(), main_tid, (signum))
#else
static pthread_t main_thread;
#define REMEMBER_MAIN_THREAD() (main_thread = pthread_self())
#define ON_MAIN_THREAD() pthread_equal(pthread_self(), main_thread)
#define SEND_TO_MAIN_THREAD(signum) pthread_kill(main_thread, (signum))
#endif
/* The signal routed (one at most) and python's low-level handler for it. */
static volatile sig_atomic_t routed = 0;
static void (*python_handler)(int);

#ifdef __linux__
/* The kernel's POSIX timer, made with the raw system calls (timer_create is
 * in librt before glibc 2.34); -1 until made, and in a forked child until
 * now_main_thread() makes its own (timers do not survive a fork). */
static int kick_timer = -1;
#define KICK_NS 100000000L /* 100 ms */
#define KICKS_BEFORE_DEFAULT 30
/* -1: no signal waits for python's handler; else the kicks sent so far. */
static volatile sig_atomic_t kicks = -1;

static void
set_kick_timer(long interval_ns)
{
    struct itimerspec spec;
    memset(&spec, 0, sizeof spec);
    spec.it_value.tv_nsec = interval_ns;
    spec.it_interval.tv_nsec = interval_ns;
    if (kick_timer >= 0) {
        syscall(SYS_timer_settime, kick_timer, 0, &spec, NULL);
    }
}

static void
make_kick_timer(int signum)
{
    struct sigevent event;
    int timer;
    memset(&event, 0, sizeof event);
    event.sigev_notify = SIGEV_SIGNAL;
    event.sigev_signo = signum;
    kicks = -1;
    kick_timer = syscall(SYS_timer_create, CLOCK_MONOTONIC, &event, &timer) == 0 ? timer : -1;
}
#endif

static void
route(int signum)
{
    int saved_errno = errno;
    if (!ON_MAIN_THREAD()) {
        SEND_TO_MAIN_THREAD(signum);
        errno = saved_errno;
        return;
    }
#ifdef __linux__
    if (kicks >= KICKS_BEFORE_DEFAULT) {
        /* python never began its handler: end as the default action would
         * have (delivered once this handler returns). */
        set_kick_timer(0);
        signal(signum, SIG_DFL);
        raise(signum);
        errno = saved_errno;
        return;
    }
#endif
    if (python_handler != NULL) {
        python_handler(signum);
    }
#ifdef __linux__
    if (kicks < 0) {
        kicks = 0;
        set_kick_timer(KICK_NS);
    }
    else {
        kicks++;
    }
#endif
    errno = saved_errno;
}
#endif

static PyObject *
signals_route_to_main_thread(PyObject *module, PyObject *arg)
{
#ifdef MS_WINDOWS
    Py_RETURN_FALSE;
#else
    long signum = PyLong_AsLong(arg);
    if (signum == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (signum < 1 || signum >= NSIG) {
        PyErr_Format(PyExc_ValueError, "signal number out of range: %ld", signum);
        return NULL;
    }
    if (routed != 0 && routed != signum) {
        Py_RETURN_FALSE; /* one signal at most */
    }
    struct sigaction current, replaced;
    if (sigaction((int)signum, NULL, &current) != 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    REMEMBER_MAIN_THREAD();
    if (current.sa_handler == route) {
        Py_RETURN_TRUE;
    }
    if ((current.sa_flags & SA_SIGINFO) || current.sa_handler == SIG_DFL
        || current.sa_handler == SIG_IGN) {
        Py_RETURN_FALSE; /* not python's handler: left alone */
    }
    python_handler = current.sa_handler;
    routed = (sig_atomic_t)signum;
#ifdef __linux__
    if (kick_timer < 0) {
        make_kick_timer((int)signum);
    }
#endif
    replaced = current;
    replaced.sa_handler = route;
    if (sigaction((int)signum, &replaced, NULL) != 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_TRUE;
#endif
}

static PyObject *
signals_handled(PyObject *module, PyObject *unused)
{
#ifdef __linux__
    kicks = -1;
    set_kick_timer(0);
#endif
    Py_RETURN_NONE;
}

static PyObject *
signals_now_main_thread(PyObject *module, PyObject *unused)
{
#ifndef MS_WINDOWS
    REMEMBER_MAIN_THREAD();
#ifdef __linux__
    if (routed != 0) {
        make_kick_timer(routed);
    }
#endif
#endif
    Py_RETURN_NONE;
}

static PyMethodDef signals_methods[] = {
    {"route_to_main_thread", signals_route_to_main_thread, METH_O,
     "route_to_main_thread(signum, /)\n--\n\n"
     "Deliver ``signum`` to this thread (the main one) whichever thread takes it.\n\n"
     "Call it on the main thread, right after signal.signal() installed python's\n"
     "handler.  Returns False, changing nothing, where the handler in place is not\n"
     "python's, or it routes another signal already (or on Windows).  A later\n"
     "signal.signal() replaces the routing."},
    {"handled", signals_handled, METH_NOARGS,
     "handled()\n--\n\n"
     "python's handler has begun: no more sending the signal again."},
    {"now_main_thread", signals_now_main_thread, METH_NOARGS,
     "now_main_thread()\n--\n\n"
     "Route to this thread from now on: the forking thread, in a forked child\n"
     "(which also gets a timer of its own)."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot signals_slots[] = {
#ifdef Py_mod_gil
    /* Free-threaded builds (3.13t): not verified without the GIL, so importing
     * this module re-enables it, as for _lockcore (docs/limitations.md). */
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef signals_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "threadtrace._support._signals",
    .m_doc = "Signals threadtrace handles reach the main thread (optional; "
             "threadtrace._control.exit does without).",
    .m_size = 0,
    .m_methods = signals_methods,
    .m_slots = signals_slots,
};

PyMODINIT_FUNC
PyInit__signals(void)
{
    return PyModuleDef_Init(&signals_module);
}
