/* The hot path of threadtrace.Lock and threadtrace.RLock, in C.
 *
 * A traced lock must cost about what threading's costs when nobody waits,
 * and must still know, whenever somebody does wait, who holds it and where
 * that holder took it.  This module keeps everything on that path in C:
 *
 *   the lock itself     its own OS lock (PyThread_type_lock), as
 *                       _thread.lock and _thread.RLock keep theirs, so
 *                       an uncontended acquire is one try-lock, with no
 *                       call through another object's method;
 *   who holds it        the owner's ident and, for an RLock, the depth;
 *   the counts          acquisitions, contentions, waits, measured holds:
 *                       exact, in C fields the metrics read;
 *   where               the program's acquire site: the caller's code
 *                       object and instruction offset, read from the
 *                       interpreter's own frame (no frame object is made,
 *                       no line is computed), walking past the modules
 *                       that take locks on the program's behalf (queue,
 *                       threading, concurrent.futures).  The site of every
 *                       acquisition is kept, so a report can always say
 *                       where a held lock was taken;
 *   hold times          sampled (one acquisition in sample_every, and every
 *                       one for a while after a contention), timed here
 *                       with the monotonic clock, and finished on release;
 *   the registry        a list of live locks, for the metrics, the
 *                       watchdog and fork;
 *   construction        Lock() from the program's own code is made here,
 *                       named after its site, without a Python call.
 *
 * Everything else calls the Python methods of threadtrace._primitives.locks
 * by name: a try that failed (_acquire_slow, which waits, times the wait
 * and notes the holder), a release that wakes waiters (_release_slow), a
 * measured hold long enough for a span (_held, called after the release:
 * nothing here lengthens the time the lock is held by a Python call), any
 * unusual argument, and whatever an injected clock (tests) must answer.
 * pycore.py holds the same logic in pure Python, for when this extension is
 * not built; the test suite runs against both.
 *
 * Frames: from 3.11 the interpreter's frames are _PyInterpreterFrame
 * structs, and a frame *object* exists only once somebody asks for one.
 * PyEval_GetFrame() would make one on every acquisition.  Instead the
 * leading fields of _PyInterpreterFrame are declared here for each
 * supported version (they are stable within a minor version; the
 * profilers that read stacks do the same) and read directly.  3.9 and 3.10
 * keep PyFrameObjects, read through their public struct.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <frameobject.h>
#include "pythread.h"

#if PY_VERSION_HEX < 0x03090000 || PY_VERSION_HEX >= 0x030E0000
#error "threadtrace's lock core supports CPython 3.9 to 3.13"
#endif

/* -- the interpreter's frames, per version ------------------------------------------ */

#if PY_VERSION_HEX >= 0x030B0000
#define TT_FRAMES_311 1
typedef uint16_t tt_codeunit;
#if PY_VERSION_HEX >= 0x030D0000
typedef struct tt_frame {
    PyObject *f_executable;
    struct tt_frame *previous;
    PyObject *f_funcobj;
    PyObject *f_globals;
    PyObject *f_builtins;
    PyObject *f_locals;
    PyFrameObject *frame_obj;
    tt_codeunit *instr;
    int stacktop;
    uint16_t return_offset;
    char owner;
} tt_frame;
#define TT_CODE(f) (PyCode_Check((f)->f_executable) ? (PyCodeObject *)(f)->f_executable : NULL)
#define TT_CURRENT(ts) ((tt_frame *)(ts)->current_frame)
#elif PY_VERSION_HEX >= 0x030C0000
typedef struct tt_frame {
    PyCodeObject *f_code;
    struct tt_frame *previous;
    PyObject *f_funcobj;
    PyObject *f_globals;
    PyObject *f_builtins;
    PyObject *f_locals;
    PyFrameObject *frame_obj;
    tt_codeunit *instr;
    int stacktop;
    uint16_t return_offset;
    char owner;
} tt_frame;
#define TT_CODE(f) ((f)->f_code)
#define TT_CURRENT(ts) ((tt_frame *)(ts)->cframe->current_frame)
#else
typedef struct tt_frame {
    PyFunctionObject *f_func;
    PyObject *f_globals;
    PyObject *f_builtins;
    PyObject *f_locals;
    PyCodeObject *f_code;
    PyFrameObject *frame_obj;
    struct tt_frame *previous;
    tt_codeunit *instr;
    int stacktop;
    char is_entry;
    char owner;
} tt_frame;
#define TT_CODE(f) ((f)->f_code)
#define TT_CURRENT(ts) ((tt_frame *)(ts)->cframe->current_frame)
#endif
#define TT_OWNED_BY_CSTACK 3

/* The current Python frame of this thread, or NULL. */
static inline tt_frame *
frame_skip(tt_frame *f)
{
    while (f != NULL) {
        PyCodeObject *code = TT_CODE(f);
#if PY_VERSION_HEX >= 0x030C0000
        int of_c = f->owner == TT_OWNED_BY_CSTACK; /* an entry frame of C's */
#else
        int of_c = 0;
#endif
        /* An incomplete frame (one being set up) has not run its first
         * instruction; CPython's own walks skip it too (_PyFrame_IsIncomplete).
         * 3.13's shim under a specialised __init__ call (_Py_InitCleanup) is
         * one, and its f_globals is never set: reading it crashed. */
        if (!of_c && code != NULL && (f->owner == 1 ||
                f->instr >= (tt_codeunit *)code->co_code_adaptive + code->_co_firsttraceable)) {
            return f;
        }
        f = f->previous;
    }
    return NULL;
}
#define FRAME_TOP() frame_skip(TT_CURRENT(PyThreadState_Get()))
#define FRAME_BACK(f) frame_skip((f)->previous)
#define FRAME_CODE(f) TT_CODE(f)
#define FRAME_GLOBALS(f) ((f)->f_globals)
#define FRAME_OFFSET(f) \
    ((int)((char *)(f)->instr - (char *)TT_CODE(f)->co_code_adaptive))
#else
typedef PyFrameObject tt_frame;
#define FRAME_TOP() (PyThreadState_Get()->frame)
#define FRAME_BACK(f) ((f)->f_back)
#define FRAME_CODE(f) ((f)->f_code)
#define FRAME_GLOBALS(f) ((f)->f_globals)
#if PY_VERSION_HEX >= 0x030A0000
#define FRAME_OFFSET(f) ((f)->f_lasti * (int)sizeof(_Py_CODEUNIT))
#else
#define FRAME_OFFSET(f) ((f)->f_lasti)
#endif
#endif

#if PY_VERSION_HEX >= 0x030C0000
#define TT_REQUEST_EXTRA PyUnstable_Eval_RequestCodeExtraIndex
#define TT_GET_EXTRA PyUnstable_Code_GetExtra
#define TT_SET_EXTRA PyUnstable_Code_SetExtra
#else
#define TT_REQUEST_EXTRA _PyEval_RequestCodeExtraIndex
#define TT_GET_EXTRA _PyCode_GetExtra
#define TT_SET_EXTRA _PyCode_SetExtra
#endif

/* -- threadtrace's own work: a flag per thread --------------------------------------- */

/* Set while this thread records (the runtime's guard): primitives made then
 * are threading's own, so recording never traces itself. */
#if defined(_MSC_VER)
static __declspec(thread) int guard_busy;
#else
static __thread int guard_busy;
#endif

static PyObject *
module_get_guard(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(guard_busy);
}

static PyObject *
module_set_guard(PyObject *Py_UNUSED(module), PyObject *value)
{
    int previous = guard_busy;
    int v = PyObject_IsTrue(value);
    if (v < 0) {
        return NULL;
    }
    guard_busy = v;
    return PyBool_FromLong(previous);
}

/* -- what Python tells this module (configure()) ------------------------------------ */

/* Categories of a code object's module (threadtrace._support.sites). */
#define CAT_NORMAL 1   /* the program's own */
#define CAT_PASS 2     /* builds or takes primitives on the program's behalf */
#define CAT_EXCLUDED 3 /* telemetry plumbing */
#define CAT_COMPOSER 4 /* flag: threading or threadtrace (composes its own primitives) */

static struct {
    Py_ssize_t sample_period;     /* measure one acquisition in this many; 0: none */
    long long hold_threshold_ns;  /* a measured hold this long calls _held() */
    int profile_after;            /* acquisitions measured after a contention */
    PyObject *clock;              /* NULL: the monotonic clock; else a callable -> ns */
    PyObject *classify;           /* module name -> category (an int) */
    PyObject *site_factory;       /* (code, offset, line, via) -> a Site */
    PyObject *retire;             /* (kind, name, code, offset, counts) at dealloc */
    PyObject *modules;            /* the categories' source: a new one bumps generation */
    PyObject *internal_error;     /* (where, exception): the runtime counts it, logs the first */
    int ordering;                 /* lock order is tracked (order_taken(), order_released()) */
    long generation;              /* bumped when the categories change */
    Py_ssize_t extra_index;       /* the code objects' extra slot for our category */
    long long serials;            /* lock serials, never reused */
    PyObject *str_acquire_slow, *str_acquire_with, *str_release_slow, *str_ordered_nested;
    PyObject *str_own_prefix;      /* "threadtrace._" */
    PyObject *str_name, *str_kind, *str_original, *str_original_factory, *str_self;
    PyObject *str_site_kind;       /* "kind": Site.kind, a lock's kind for lock order */
    PyObject *str_active, *str_thread_name;  /* threading._active, a Thread's name */
    PyObject *str_thread_name_value;         /* "_name", what Thread.name returns */
    PyObject *name_property;                 /* Thread.name, threading's property */
    PyObject *threading_globals;  /* threading's namespace: its frames are never a "via" */
    PyObject *waker_var;          /* OpenTelemetry's context variable (otel_context()): a
                                     release with waiters notes the waker in C (note_waker),
                                     begin_wait() the waiter; NULL: another runtime context */
    PyObject *blocked_type;       /* the watchdog's entry for a wait (Blocked, below) */
    PyObject *str_notifies, *str_unheard, *str_acquisitions, *str_operations;
    PyObject *kind_condition, *kind_lock, *kind_semaphore, *kind_bounded_semaphore;
} G;

/* What site_for() and site_of() read besides their arguments (site_setup() sets it). */
static struct {
    PyObject *places;  /* runtime.site_cache.places: the cache, held from site_setup() on */
    PyObject *unknown; /* sites.UNKNOWN: the site of a named primitive made from nowhere */
    PyObject *walk;    /* base._walk(name, depth): what is not decided here */
    PyObject *str_site_cache, *str_places;
} SF;

static PyObject *cached_site(PyObject *sites, PyObject *code, int offset, int line,
                             PyObject *via_code);

/* The shared Site of a place (code, offset, line or -1): the site cache's
 * own, looked up here when it has it (no Python call: a holder's site is
 * read on every contended acquisition), else made by site_factory. */
static PyObject *
site_of(PyObject *code, int offset, int line, int made)
{
    PyObject *sites = SF.places;
    if (sites != NULL) { /* else the factory makes it, as before there was a cache to read */
        Py_INCREF(sites);
        PyObject *site = cached_site(sites, code, offset, line, Py_None);
        Py_DECREF(sites);
        if (site != NULL || PyErr_Occurred()) {
            return site;
        }
    }
    return PyObject_CallFunction(G.site_factory, "Oiii", code, offset, line, made);
}

/* An error in threadtrace's own bookkeeping: the runtime counts it and logs
 * the first one (from its own thread); the operation goes on as threading's
 * would.  Never an exception into the program, never a traceback on stderr. */
static void
report_error(const char *where)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (G.internal_error != NULL && value != NULL) {
        PyObject *r = PyObject_CallFunction(G.internal_error, "sO", where, value);
        if (r == NULL) {
            PyErr_Clear();
        }
        Py_XDECREF(r);
    }
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
}

static long long
now_ns(void)
{
    if (G.clock != NULL) {
        PyObject *r = PyObject_CallNoArgs(G.clock);
        if (r == NULL) {
            report_error("clock");
            return 1;
        }
        long long v = PyLong_AsLongLong(r);
        Py_DECREF(r);
        if (v == -1 && PyErr_Occurred()) {
            report_error("clock");
            return 1;
        }
        return v;
    }
#if PY_VERSION_HEX >= 0x030D0000
    PyTime_t t;
    if (PyTime_MonotonicRaw(&t) < 0) {
        return 1;
    }
    return (long long)t;
#else
    return (long long)_PyTime_GetMonotonicClock();
#endif
}

/* The category of a frame's module: cached on its code object, per generation. */
static int
frame_category(tt_frame *f)
{
    PyObject *code = (PyObject *)FRAME_CODE(f);
    if (code == NULL) {
        return CAT_PASS;
    }
    void *extra = NULL;
    if (G.extra_index >= 0 && TT_GET_EXTRA(code, G.extra_index, &extra) == 0 && extra != NULL) {
        intptr_t v = (intptr_t)extra;
        if ((v >> 3) == G.generation) {
            return (int)(v & 7);
        }
    }
    else {
        PyErr_Clear();
    }
    if (G.classify == NULL) {
        return CAT_NORMAL;
    }
    PyObject *globals = FRAME_GLOBALS(f);
    PyObject *name = globals != NULL ? PyDict_GetItemWithError(globals, G.str_name) : NULL;
    if (name == NULL) {
        PyErr_Clear();
        name = Py_None;
    }
    PyObject *r = PyObject_CallOneArg(G.classify, name);
    if (r == NULL) {
        report_error("module categories");
        return CAT_NORMAL;
    }
    int cat = (int)PyLong_AsLong(r);
    Py_DECREF(r);
    if (cat <= 0 || cat > 7) {
        PyErr_Clear();
        return CAT_NORMAL;
    }
    if (G.extra_index >= 0) {
        intptr_t v = (intptr_t)((G.generation << 3) | cat);
        if (TT_SET_EXTRA(code, G.extra_index, (void *)v) < 0) {
            PyErr_Clear();
        }
    }
    return cat;
}

/* -- the lock ------------------------------------------------------------------------ */

/* A registry of live locks: a list threaded through the locks themselves,
 * so registering one costs two pointer writes.  Each lock keeps its
 * registry alive; the runtime swaps the current one (testing.capture()). */
typedef struct Registry {
    PyObject_HEAD
    struct Core *first;
    Py_ssize_t count;
    PyObject *retired; /* collected locks' counters, summed (see retire_here) */
} Registry;

static Registry *current_registry = NULL;

typedef struct Core {
    PyObject_HEAD
    PyThread_type_lock lock;
    unsigned long owner;      /* the holder, valid while locked */
    char locked;              /* the OS lock is taken (set with it, under the GIL) */
    char reentrant;           /* an RLock */
    char hot;                 /* a release must call _release_slow() (waiters) */
    char measured;            /* the current hold is timed (t_acq) */
    Py_ssize_t depth;         /* RLock recursion depth */
    long long acquisitions;
    long long contended, timeouts, wait_total, wait_max, waiters;
    long long holds, hold_total, hold_max;
    Py_ssize_t left;          /* acquisitions until the next measured one */
    int profile;              /* acquisitions still measured after a contention */
    long long t_acq;          /* when the current hold began, if measured */
    PyObject *acq_code;       /* where the current holder took it: code (strong) */
    int acq_offset;           /* ... and instruction offset, or -1 */
    int acq_line;             /* ... or the line, when set from Python; -1 if not */
    PyObject *made_code;      /* where it was made (construction in C) */
    int made_offset;
    PyObject *site;           /* _tt_site: a Site, made from made_code on demand */
    PyObject *name;           /* _tt_name: name= or None */
    PyObject *waker;          /* _waker: the releaser who woke a waiter */
    long long serial;         /* _tt_serial */
    long long kind;           /* its site's Site.kind, read at its first nesting; 0: not yet,
                                 -1: none to be had (see core_kind) */
    struct Core *prev, *next; /* the registry's list */
    Registry *registry;       /* strong reference */
    PyObject *weakreflist;
} Core;

static void
core_register(Core *self)
{
    Registry *r = current_registry;
    if (r == NULL) {
        return;
    }
    Py_INCREF(r);
    self->registry = r;
    self->prev = NULL;
    self->next = r->first;
    if (r->first != NULL) {
        r->first->prev = self;
    }
    r->first = self;
    r->count++;
}

static void
core_unregister(Core *self)
{
    Registry *r = self->registry;
    if (r == NULL) {
        return;
    }
    if (self->prev != NULL) {
        self->prev->next = self->next;
    }
    else {
        r->first = self->next;
    }
    if (self->next != NULL) {
        self->next->prev = self->prev;
    }
    self->next = self->prev = NULL;
    r->count--;
    self->registry = NULL;
    Py_DECREF(r);
}

/* Where the current acquisition happens: the first frame of the program's
 * own (not of a module that takes locks on its behalf) above this call, or
 * NULL.  Never fails. */
static tt_frame *
site_frame(void)
{
    tt_frame *f = FRAME_TOP();
    while (f != NULL && (frame_category(f) & 3) != CAT_NORMAL) {
        f = FRAME_BACK(f);
    }
    return f;
}

/* Note that frame (site_frame()'s) as the current holder's acquire site.
 * Keeps a reference to its code; never fails. */
static void
note_site(Core *self, tt_frame *f)
{
    if (f == NULL) {
        self->acq_offset = -1;
        self->acq_line = -1;
        Py_CLEAR(self->acq_code);
        return;
    }
    PyObject *code = (PyObject *)FRAME_CODE(f);
    if (code != self->acq_code) {
        Py_INCREF(code);
        Py_XSETREF(self->acq_code, code);
    }
    self->acq_offset = FRAME_OFFSET(f);
    self->acq_line = -1;
}

/* -- lock order (lockdep's idea), in C ------------------------------------------------
 *
 * Each thread keeps the stack of locks it holds (outermost holds only), with
 * a strong reference to each.  Taking B while holding A makes a pair: a
 * pair seen before is one lookup in a set, and only a new one calls Python
 * (Lock._ordered_nested), which records the order and reports a cycle.
 * Locks of two kinds (the file and line they were made at) pair as their
 * kinds, (-A's kind, -B's kind), which stands for every lock made at each
 * place (lockdep's classes: the orders Python keeps between them); locks of
 * one kind, or with a name= of their own, as their serials (the orders kept
 * per instance).  A release just takes the lock off its stack.
 * A trylock or a Condition taking its lock back adds no order (neither can
 * deadlock). */

#define HELD_MAX 32
typedef struct {
    Core *locks[HELD_MAX];
    char blocking[HELD_MAX]; /* taken by a blocking acquire (not a try, a timed one or a
                                Condition taking it back): its own orders are recorded */
    int n;
} HeldStack;

#if defined(_MSC_VER)
static __declspec(thread) HeldStack held_stack;
#else
static __thread HeldStack held_stack;
#endif

typedef struct {
    long long first, second; /* serials, or kinds negated; first == 0: an empty slot */
} Pair;

#define PAIRS_MIN 1024
#define PAIRS_MAX 131072 /* slots: past 70 % of this the set starts afresh, as Python's graph does */
static Pair *pairs;
static size_t pairs_cap, pairs_len;

static inline size_t
pair_slot(long long first, long long second, size_t cap)
{
    unsigned long long h = (unsigned long long)first * 0x9E3779B97F4A7C15ULL
                           ^ (unsigned long long)second * 0xC2B2AE3D27D4EB4FULL;
    return (size_t)(h ^ (h >> 29)) & (cap - 1);
}

/* Whether the pair was new (then it is added); -1 when out of memory. */
static int
pair_add(long long first, long long second)
{
    if (pairs_len * 10 >= pairs_cap * 7) {
        size_t cap = pairs_cap ? pairs_cap * 2 : PAIRS_MIN;
        if (cap > PAIRS_MAX) {
            memset(pairs, 0, pairs_cap * sizeof(Pair)); /* afresh (see PAIRS_MAX) */
            pairs_len = 0;
        }
        else {
            Pair *grown = PyMem_Calloc(cap, sizeof(Pair));
            if (grown == NULL) {
                return -1;
            }
            for (size_t i = 0; i < pairs_cap; i++) {
                if (pairs[i].first != 0) {
                    size_t j = pair_slot(pairs[i].first, pairs[i].second, cap);
                    while (grown[j].first != 0) {
                        j = (j + 1) & (cap - 1);
                    }
                    grown[j] = pairs[i];
                }
            }
            PyMem_Free(pairs);
            pairs = grown;
            pairs_cap = cap;
        }
    }
    size_t i = pair_slot(first, second, pairs_cap);
    while (pairs[i].first != 0) {
        if (pairs[i].first == first && pairs[i].second == second) {
            return 0;
        }
        i = (i + 1) & (pairs_cap - 1);
    }
    pairs[i].first = first;
    pairs[i].second = second;
    pairs_len++;
    return 1;
}

/* forget_orders(): every pair unseen (the runtime's graph started afresh). */
static PyObject *
module_forget_orders(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    if (pairs != NULL) {
        memset(pairs, 0, pairs_cap * sizeof(Pair));
    }
    pairs_len = 0;
    Py_RETURN_NONE;
}

static PyObject *get_site(Core *self, void *c);

/* The lock's kind for lock order: its creation site's Site.kind (asked once,
 * at its first nesting), or 0 when the pair must be told by serials: it has
 * a name= of its own (Python's kind is the name then: see _kind_of()), or no
 * kind could be read (an error is reported, never raised). */
static long long
core_kind(Core *self)
{
    if (self->name != Py_None) {
        return 0;
    }
    if (self->kind == 0) {
        self->kind = -1;
        PyObject *site = get_site(self, NULL);
        PyObject *kind = site == NULL || site == Py_None ? NULL
                                                        : PyObject_GetAttr(site, G.str_site_kind);
        Py_XDECREF(site);
        if (kind != NULL) {
            long long number = PyLong_AsLongLong(kind);
            Py_DECREF(kind);
            if (number > 0) {
                self->kind = number;
            }
        }
        if (PyErr_Occurred()) {
            report_error("lock order");
        }
    }
    return self->kind > 0 ? self->kind : 0;
}

/* This thread took ``self`` (its outermost hold): check the new pairs, then push it.
 *
 * As lockdep does (check_prevs_add), the pairs are those of the held locks
 * from the top of the stack down to the first one taken by a blocking
 * acquire, that one included.  The locks below it are ordered before it
 * already (its own acquisition recorded that, or a lock's above it did): the
 * orders they would add here are implied.  So a thread that takes a hundred
 * locks one inside another (concurrent.futures.wait() takes its futures'
 * locks in id order) makes 99 pairs, not one per lock held (some 2,600 with
 * 32 held at most).  A try, a timed acquire or a Condition taking its lock
 * back recorded no order of its own: the walk goes on past it. */
static void
order_taken(Core *self, int blocking)
{
    HeldStack *held = &held_stack;
    unsigned long me = PyThread_get_thread_ident();
    int kept = 0;
    Core *gone[HELD_MAX]; /* let go of once the stack is whole again (a dealloc runs Python) */
    int gones = 0;
    for (int i = 0; i < held->n; i++) {
        Core *first = held->locks[i];
        if (!first->locked || first->owner != me) {
            /* Released by another thread (a Lock may be): not held by us any more. */
            gone[gones++] = first;
            continue;
        }
        held->blocking[kept] = held->blocking[i];
        held->locks[kept++] = first;
    }
    held->n = kept;
    for (int i = 0; i < gones; i++) {
        Py_DECREF(gone[i]);
    }
    /* Copied (and held) first: reading a kind may run Python (a site made, a
     * collection and some __del__ that takes a lock), which may push onto or
     * pop off this very stack. */
    Core *firsts[HELD_MAX]; /* innermost first */
    int count = 0;
    for (int i = held->n - 1; blocking && i >= 0; i--) {
        Core *first = held->locks[i];
        if (first == self) {
            continue;
        }
        Py_INCREF(first);
        firsts[count++] = first;
        if (held->blocking[i]) {
            break;
        }
    }
    int fresh = 0;
    long long kind = count ? core_kind(self) : 0;
    for (int i = 0; i < count; i++) {
        long long first_kind = kind ? core_kind(firsts[i]) : 0;
        int added = first_kind && first_kind != kind ? pair_add(-first_kind, -kind)
                                                     : pair_add(firsts[i]->serial, self->serial);
        if (added != 0) {
            fresh = 1; /* new, or no memory to tell: let Python look */
        }
    }
    if (fresh) {
        PyObject *stack = PyTuple_New(count); /* oldest first */
        if (stack != NULL) {
            for (int i = 0; i < count; i++) {
                Py_INCREF(firsts[i]);
                PyTuple_SET_ITEM(stack, count - 1 - i, (PyObject *)firsts[i]);
            }
            PyObject *r = PyObject_CallMethodOneArg((PyObject *)self, G.str_ordered_nested, stack);
            Py_DECREF(stack);
            Py_XDECREF(r);
        }
        if (PyErr_Occurred()) {
            /* The lock is held now: an error in bookkeeping must not turn a
             * successful acquire into an exception that leaks it. */
            report_error("lock order");
        }
    }
    for (int i = 0; i < count; i++) {
        Py_DECREF(firsts[i]);
    }
    if (held->n < HELD_MAX) {
        Py_INCREF(self);
        held->blocking[held->n] = (char)blocking;
        held->locks[held->n++] = self;
    }
}

/* This thread let go of ``self``: off its stack (usually the top). */
static void
order_released(Core *self)
{
    HeldStack *held = &held_stack;
    for (int i = held->n - 1; i >= 0; i--) {
        if (held->locks[i] == self) {
            for (int j = i; j < held->n - 1; j++) {
                held->locks[j] = held->locks[j + 1];
                held->blocking[j] = held->blocking[j + 1];
            }
            held->n--;
            Py_DECREF(self);
            return;
        }
    }
}

/* held_locks(): the locks this thread holds, oldest first (lock order's view). */
static PyObject *
module_held_locks(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    HeldStack *held = &held_stack;
    unsigned long me = PyThread_get_thread_ident();
    PyObject *list = PyList_New(0);
    if (list == NULL) {
        return NULL;
    }
    for (int i = 0; i < held->n; i++) {
        Core *lock = held->locks[i];
        if (lock->locked && lock->owner == me && PyList_Append(list, (PyObject *)lock) < 0) {
            Py_DECREF(list);
            return NULL;
        }
    }
    return list;
}

/* The OS lock was just taken by this thread. */
static inline void
mark_locked(Core *self)
{
    self->owner = PyThread_get_thread_ident();
    self->locked = 1;
    self->depth = 1;
}

/* An outermost acquisition: count it, note its site (``site``, found by
 * site_frame()), time its hold when due. */
static void
taken_at(Core *self, tt_frame *site, int blocking, int measure, long long t_acq)
{
    self->acquisitions++;
    note_site(self, site);
    if (measure) {
        self->t_acq = t_acq ? t_acq : now_ns();
        self->measured = 1;
    }
    else if (self->profile > 0 || --self->left <= 0) {
        if (self->profile > 0) {
            self->profile--;
        }
        else {
            self->left = G.sample_period > 0 ? G.sample_period : PY_SSIZE_T_MAX;
        }
        self->t_acq = now_ns();
        self->measured = 1;
    }
    if (G.ordering) {
        order_taken(self, blocking);
    }
}

/* Try to take it without blocking; re-entering an RLock counts too.
 *
 * The acquire site is found before the try, so that the walk is not part
 * of the hold: the held stretch of an uncontended acquisition must be as
 * short as the stdlib's.  Nanoseconds matter there: with the walk inside
 * it, 100 threads hammering one lock with a 20 us switch interval fell
 * into a convoy (a hand-off per acquisition, 50x slower) in 22 runs of
 * 200; with it outside, in none of 200 (docs/performance.md).
 *
 * Unless another thread holds it: then the try almost surely fails, and the
 * walk would be wasted (every contended acquisition's first try, and every
 * ``Condition._is_owned()`` on a plain Lock, which tries it while it is held).
 * If it was let go meanwhile, the site is found with the lock taken. */
static inline int
try_take(Core *self, int blocking)
{
    if (self->reentrant && self->locked && self->owner == PyThread_get_thread_ident()) {
        self->depth++;
        self->acquisitions++;
        return 1;
    }
    int held = self->locked;
    tt_frame *site = held ? NULL : site_frame();
    if (PyThread_acquire_lock_timed(self->lock, 0, 0) == PY_LOCK_ACQUIRED) {
        if (held) {
            site = site_frame();
        }
        mark_locked(self);
        taken_at(self, site, blocking, 0, 0);
        return 1;
    }
    return 0;
}

static PyObject *
core_fast_acquire(Core *self)
{
    if (try_take(self, 1)) {
        Py_RETURN_TRUE;
    }
    PyObject *minus_one = PyLong_FromLong(-1);
    if (minus_one == NULL) {
        return NULL;
    }
    PyObject *r = PyObject_CallMethodOneArg((PyObject *)self, G.str_acquire_slow, minus_one);
    Py_DECREF(minus_one);
    return r;
}

static PyObject *
core_enter(Core *self, PyObject *Py_UNUSED(ignored))
{
    return core_fast_acquire(self);
}

static PyObject *
core_acquire(Core *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs == 0 && kwnames == NULL) {
        return core_fast_acquire(self);
    }
    /* Parse (blocking=True, timeout=-1) by hand: the usual parser would cost
     * more than the whole fast path.  The common forms are served here;
     * anything else goes to _acquire_with(), which checks the arguments
     * exactly as threading does. */
    PyObject *blocking = NULL, *timeout = NULL;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs > 2) {
        goto python;
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
        if (slot == NULL || *slot != NULL) {
            goto python;
        }
        *slot = args[nargs + i];
    }
    int default_timeout = (timeout == NULL);
    if (!default_timeout && PyLong_CheckExact(timeout)) {
        int overflow = 0;
        long value = PyLong_AsLongAndOverflow(timeout, &overflow);
        default_timeout = (!overflow && value == -1);
    }
    if (default_timeout && (blocking == NULL || blocking == Py_True)) {
        return core_fast_acquire(self);
    }
    if (default_timeout && blocking == Py_False) {
        /* A try: threading's, plus the bookkeeping; a try adds no lock order. */
        return PyBool_FromLong(try_take(self, 0));
    }
python:;
    /* Everything else takes the Python path, which matches threading exactly. */
    PyObject *pos = PyTuple_New(nargs);
    if (pos == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        Py_INCREF(args[i]);
        PyTuple_SET_ITEM(pos, i, args[i]);
    }
    PyObject *kw = PyDict_New();
    if (kw == NULL) {
        Py_DECREF(pos);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nkw; i++) {
        if (PyDict_SetItem(kw, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0) {
            Py_DECREF(pos);
            Py_DECREF(kw);
            return NULL;
        }
    }
    PyObject *r = PyObject_CallMethodObjArgs((PyObject *)self, G.str_acquire_with, pos, kw, NULL);
    Py_DECREF(pos);
    Py_DECREF(kw);
    return r;
}

/* Finish a measured hold; returns 1 when it is long enough for _held(). */
static int
finish_hold(Core *self, long long *start, long long *end)
{
    if (!self->measured) {
        return 0;
    }
    self->measured = 0;
    long long t1 = now_ns();
    long long hold = t1 - self->t_acq;
    if (hold < 0) {
        hold = 0;
    }
    self->holds++;
    self->hold_total += hold;
    if (hold > self->hold_max) {
        self->hold_max = hold;
    }
    *start = self->t_acq;
    *end = t1;
    self->t_acq = 0;
    return hold >= G.hold_threshold_ns;
}

/* A measured hold long enough for a span: told after the release, so that
 * the Python call never lengthens the time the lock is held.  Where the hold
 * began is read before the release (code, a strong reference this call
 * consumes; offset; line): the next holder notes its own site as it takes
 * the lock. */
static void
call_held(Core *self, long long start, long long end, PyObject *code, int offset, int line)
{
    PyObject *site = NULL;
    if (code != NULL && G.site_factory != NULL) {
        site = site_of(code, offset, line, 0);
    }
    Py_XDECREF(code);
    if (site == NULL) {
        PyErr_Clear();
        Py_INCREF(Py_None);
        site = Py_None;
    }
    PyObject *r = PyObject_CallMethod((PyObject *)self, "_held", "LLO", start, end, site);
    Py_DECREF(site);
    if (r == NULL) {
        report_error("Lock._held");
    }
    Py_XDECREF(r);
}

/* originals.thread_name(ident): threading._active's thread's name, else
 * thread-<ident>; ``ident`` any key (a finished thread's stand-in is a
 * negative int). */
static PyObject *
thread_name_of(PyObject *ident)
{
    PyObject *active = PyDict_GetItemWithError(G.threading_globals, G.str_active);
    PyObject *thread = NULL;
    if (active != NULL && PyDict_Check(active)) {
        thread = PyDict_GetItemWithError(active, ident); /* borrowed */
    }
    if (thread == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        return PyUnicode_FromFormat("thread-%S", ident);
    }
    /* Thread.name is a property that returns self._name: that attribute is
     * read (a dict lookup) rather than the property called (a Python frame,
     * on every short wait summed), unless the thread's class has a name of
     * its own. */
    if (G.name_property != NULL
        && _PyType_Lookup(Py_TYPE(thread), G.str_thread_name) == G.name_property) {
        PyObject *name = PyObject_GetAttr(thread, G.str_thread_name_value);
        if (name != NULL || !PyErr_ExceptionMatches(PyExc_AttributeError)) {
            return name;
        }
        PyErr_Clear();
    }
    return PyObject_GetAttr(thread, G.str_thread_name);
}

static PyObject *
current_thread_name(unsigned long ident)
{
    PyObject *key = PyLong_FromUnsignedLong(ident);
    if (key == NULL) {
        return NULL;
    }
    PyObject *name = thread_name_of(key);
    Py_DECREF(key);
    return name;
}

/* thread_name([ident]): the current thread's name, or thread ``ident``'s, as
 * originals.current_thread_name() and originals.thread_name() give them
 * (which core.py replaces with this): one C call instead of two or three
 * Python frames, on every short wait summed in place, every waker noted
 * and every contended acquisition's holder named. */
static PyObject *
module_thread_name(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs == 0) {
        return current_thread_name(PyThread_get_thread_ident());
    }
    if (nargs == 1) {
        return thread_name_of(args[0]);
    }
    PyErr_SetString(PyExc_TypeError, "thread_name() takes at most one argument (an ident)");
    return NULL;
}

/* OpenTelemetry's current context (a new reference), read from its context
 * variable: the variable's value, or its default.  With neither, or with
 * another runtime context (no variable), get_current() is called when given,
 * else None (a release may not call Python while it holds the lock).  NULL
 * with an error set when reading fails. */
static PyObject *
otel_context(PyObject *get_current)
{
    PyObject *context = NULL;
    if (G.waker_var != NULL && PyContextVar_Get(G.waker_var, NULL, &context) < 0) {
        return NULL;
    }
    if (context != NULL) {
        return context;
    }
    if (get_current != NULL) {
        return PyObject_CallNoArgs(get_current);
    }
    Py_INCREF(Py_None);
    return Py_None;
}

/* A release with waiters, lock order or not (the core keeps the held
 * stacks itself): note who wakes them, for their waits' spans, and whether
 * the next release must look again.  What _release_slow() does, but in C,
 * before the OS release: every instruction here lengthens the hold, and a
 * Python call here (3-4 us) lengthened the holds of a busy lock until its
 * waiters formed a convoy (8 pool threads on one RLock: 44% of its
 * acquisitions contended).  The waker is (ident, name, context, (code,
 * offset, line) or None): the woken thread makes the Site of where it took
 * the lock if it needs it (locks._noted_holder).  The name is read here: by
 * the time the woken thread runs, the waker may have ended.  Nothing is
 * noted while this thread records, as in Python. */
static void
note_waker(Core *self)
{
    if (self->waiters > 0 && !guard_busy) {
        unsigned long ident = PyThread_get_thread_ident();
        PyObject *name = current_thread_name(ident);
        if (name == NULL) {
            report_error("Lock.release");
            Py_CLEAR(self->waker);
            self->hot = self->waiters > 0;
            return;
        }
        PyObject *context = otel_context(NULL);
        if (context == NULL) {
            report_error("Lock.release");
            Py_INCREF(Py_None);
            context = Py_None;
        }
        PyObject *site;
        if (self->acq_code != NULL) {
            site = Py_BuildValue("(Oii)", self->acq_code, self->acq_offset, self->acq_line);
        }
        else {
            Py_INCREF(Py_None);
            site = Py_None;
        }
        PyObject *waker = NULL;
        if (site != NULL) {
            waker = Py_BuildValue("(kNNN)", ident, name, context, site);
        }
        else {
            Py_DECREF(name);
            Py_DECREF(context);
        }
        if (waker == NULL) {
            report_error("Lock.release");
            Py_CLEAR(self->waker);
        }
        else {
            Py_XSETREF(self->waker, waker);
        }
    }
    self->hot = self->waiters > 0;
}

/* Let go of the OS lock, with the bookkeeping of an outermost release. */
static void
let_go(Core *self)
{
    long long start = 0, end = 0;
    int held = finish_hold(self, &start, &end);
    PyObject *held_code = NULL; /* the hold's site, read while it is still this holder's */
    int held_offset = -1, held_line = -1;
    if (held) {
        held_code = self->acq_code;
        Py_XINCREF(held_code);
        held_offset = self->acq_offset;
        held_line = self->acq_line;
    }
    if (G.ordering) {
        order_released(self);
    }
    if (self->hot && G.waker_var != NULL) {
        note_waker(self);
    }
    else if (self->hot) {
        PyObject *r = PyObject_CallMethodNoArgs((PyObject *)self, G.str_release_slow);
        if (r == NULL) {
            /* Release the lock whatever happened in the bookkeeping. */
            report_error("Lock._release_slow");
        }
        Py_XDECREF(r);
    }
    self->locked = 0;
    self->depth = 0;
    PyThread_release_lock(self->lock);
    if (held) {
        call_held(self, start, end, held_code, held_offset, held_line);
    }
}

static PyObject *
core_release(Core *self, PyObject *Py_UNUSED(ignored))
{
    if (self->reentrant) {
        if (!self->locked || self->owner != PyThread_get_thread_ident()) {
            PyErr_SetString(PyExc_RuntimeError, "cannot release un-acquired lock");
            return NULL;
        }
        if (--self->depth > 0) {
            Py_RETURN_NONE;
        }
    }
    else if (!self->locked) {
        PyErr_SetString(PyExc_RuntimeError, "release unlocked lock");
        return NULL;
    }
    let_go(self);
    if (PyErr_Occurred()) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
core_exit(Core *self, PyObject *const *args, Py_ssize_t nargs)
{
    return core_release(self, NULL);
}

/* The slow path's wait: take the OS lock, blocking with the GIL released,
 * running signal handlers when interrupted (an exception they raise ends
 * the wait), as threading's acquire does.  timeout < 0: forever.  On
 * success the lock is this thread's (owner, depth 1), not yet counted:
 * _taken() follows. */
static PyObject *
core_block(Core *self, PyObject *arg)
{
    double timeout = PyFloat_AsDouble(arg);
    if (timeout == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    PY_TIMEOUT_T microseconds = timeout < 0 ? -1 : (PY_TIMEOUT_T)(timeout * 1e6);
    long long deadline = timeout > 0 ? now_ns() + (long long)(timeout * 1e9) : 0;
    PyLockStatus r;
    for (;;) {
        r = PyThread_acquire_lock_timed(self->lock, 0, 0);
        if (r == PY_LOCK_FAILURE && microseconds != 0) {
            Py_BEGIN_ALLOW_THREADS
            r = PyThread_acquire_lock_timed(self->lock, microseconds, 1);
            Py_END_ALLOW_THREADS
        }
        if (r != PY_LOCK_INTR) {
            break;
        }
        if (Py_MakePendingCalls() < 0) {
            return NULL;
        }
        if (timeout > 0) {
            long long left = deadline - now_ns();
            if (left <= 0) {
                r = PY_LOCK_FAILURE;
                break;
            }
            microseconds = (PY_TIMEOUT_T)(left / 1000);
        }
    }
    if (r == PY_LOCK_ACQUIRED) {
        mark_locked(self);
        Py_RETURN_TRUE;
    }
    Py_RETURN_FALSE;
}

/* The slow path took the lock (_block): count it, note its site, and time
 * the hold from ``t_acq`` (the end of the wait) when ``measure``. */
static PyObject *
core_taken(Core *self, PyObject *args)
{
    int blocking = 1, measure = 0;
    long long t_acq = 0;
    if (!PyArg_ParseTuple(args, "|ppL", &blocking, &measure, &t_acq)) {
        return NULL;
    }
    taken_at(self, site_frame(), blocking, measure, t_acq);
    if (measure) {
        self->profile = G.profile_after;
    }
    Py_RETURN_NONE;
}

/* The slow path's count of waiters: +1 as a thread starts waiting (the next
 * release then takes the slow path, to note who woke it), -1 as it stops.
 * One C call, so atomic under the GIL without runtime.book. */
static PyObject *
core_waiting(Core *self, PyObject *arg)
{
    long long delta = PyLong_AsLongLong(arg);
    if (delta == -1 && PyErr_Occurred()) {
        return NULL;
    }
    self->waiters += delta;
    if (delta > 0) {
        self->hot = 1;
    }
    Py_RETURN_NONE;
}

/* A slow release (_release_slow): the next one is slow too while threads wait. */
static PyObject *
core_settle_hot(Core *self, PyObject *Py_UNUSED(ignored))
{
    self->hot = self->waiters > 0;
    Py_RETURN_NONE;
}

/* RLock, for threading.Condition: let go whatever the depth; -> (depth, owner). */
static PyObject *
core_release_save(Core *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->locked || self->owner != PyThread_get_thread_ident()) {
        PyErr_SetString(PyExc_RuntimeError, "cannot release un-acquired lock");
        return NULL;
    }
    Py_ssize_t depth = self->depth;
    unsigned long owner = self->owner;
    let_go(self);
    if (PyErr_Occurred()) {
        return NULL;
    }
    return Py_BuildValue("(nk)", depth, owner);
}

/* RLock, for threading.Condition: set the depth after _block() took it back. */
static PyObject *
core_restore(Core *self, PyObject *arg)
{
    Py_ssize_t depth = PyLong_AsSsize_t(arg);
    if (depth == -1 && PyErr_Occurred()) {
        return NULL;
    }
    self->depth = depth;
    if (G.ordering) {
        order_taken(self, 0); /* held again, adding no order */
    }
    Py_RETURN_NONE;
}

static PyObject *
core_locked(Core *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->locked);
}

/* RLock, for threading.Condition (called on every notify): held by this thread? */
static PyObject *
core_is_owned(Core *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->locked && self->owner == PyThread_get_thread_ident());
}

static PyObject *
core_recursion_count(Core *self, PyObject *Py_UNUSED(ignored))
{
    int mine = self->locked && self->owner == PyThread_get_thread_ident();
    return PyLong_FromSsize_t(mine ? self->depth : 0);
}

static PyObject *
core_at_fork_reinit(Core *self, PyObject *Py_UNUSED(ignored))
{
    PyThread_type_lock fresh = PyThread_allocate_lock();
    if (fresh == NULL) {
        PyErr_SetString(PyExc_MemoryError, "cannot allocate lock");
        return NULL;
    }
    /* The old one may be held by a thread that does not exist here. */
    self->lock = fresh;
    self->locked = 0;
    self->depth = 0;
    self->waiters = 0;
    self->hot = 0;
    self->measured = 0;
    self->t_acq = 0;
    Py_RETURN_NONE;
}

/* -- construction and destruction --------------------------------------------------- */

static Core *
core_alloc(PyTypeObject *type, int reentrant)
{
    Core *self = (Core *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->lock = PyThread_allocate_lock();
    if (self->lock == NULL) {
        Py_DECREF(self);
        PyErr_SetString(PyExc_MemoryError, "cannot allocate lock");
        return NULL;
    }
    self->reentrant = (char)reentrant;
    self->left = 1; /* the first acquisition is measured */
    self->acq_offset = self->acq_line = self->made_offset = -1;
    self->serial = ++G.serials;
    Py_INCREF(Py_None);
    self->name = Py_None;
    Py_INCREF(Py_None);
    self->waker = Py_None;
    return self;
}

/* Whether instances of ``type`` are reentrant (its _tt_reentrant), cached. */
static int
type_reentrant(PyTypeObject *type)
{
    static PyTypeObject *cached_type[4];
    static char cached_value[4];
    static int next;
    for (int i = 0; i < 4; i++) {
        if (cached_type[i] == type) {
            return cached_value[i];
        }
    }
    PyObject *v = PyObject_GetAttrString((PyObject *)type, "_tt_reentrant");
    if (v == NULL) {
        PyErr_Clear();
        return 0;
    }
    int r = PyObject_IsTrue(v);
    Py_DECREF(v);
    if (r < 0) {
        PyErr_Clear();
        r = 0;
    }
    /* Types live as long as the program here (their instances hold them). */
    cached_type[next] = type;
    cached_value[next] = (char)r;
    next = (next + 1) % 4;
    return r;
}

/* Whether ``type`` is threadtrace's Lock or RLock itself (not a subclass of the
 * program's, whose own __init__ may take arguments). */
static int
type_is_threadtraces(PyTypeObject *type)
{
    PyObject *dict = type->tp_dict;
    if (dict == NULL) {
        return 0;
    }
    PyObject *original = PyDict_GetItemWithError(dict, G.str_original);
    if (original == NULL) {
        PyErr_Clear();
        return 0;
    }
    return original != Py_None;
}

/* tp_new: Lock() made by the program's own code is made here, named after
 * the line that made it; anything else (name=, arguments, made through a
 * library class or by plumbing) goes to the Python classmethod
 * _tt_new(args, kwargs), which decides (and may hand out threading's own
 * lock). */
static PyObject *
core_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    if ((args == NULL || PyTuple_GET_SIZE(args) == 0)
        && (kwargs == NULL || PyDict_GET_SIZE(kwargs) == 0) && G.classify != NULL && !guard_busy) {
        tt_frame *f = FRAME_TOP();
        int category = f != NULL ? frame_category(f) : 0;
        if (category == CAT_NORMAL) {
            Core *self = core_alloc(type, type_reentrant(type));
            if (self == NULL) {
                return NULL;
            }
            PyObject *code = (PyObject *)FRAME_CODE(f);
            Py_INCREF(code);
            self->made_code = code;
            self->made_offset = FRAME_OFFSET(f);
            core_register(self);
            return (PyObject *)self;
        }
        if ((category & CAT_COMPOSER) && type_is_threadtraces(type)) {
            /* threading composing its own primitives (an Event's Condition's
             * Lock): threading's own lock, as _tt_new would decide, without
             * the walk in Python. */
            return PyObject_CallMethodNoArgs((PyObject *)type, G.str_original_factory);
        }
    }
    PyObject *slow = PyObject_GetAttrString((PyObject *)type, "_tt_new");
    if (slow == NULL) {
        return NULL;
    }
    PyObject *r = PyObject_CallFunctionObjArgs(
        slow, args != NULL ? args : Py_None, kwargs != NULL ? kwargs : Py_None, NULL);
    Py_DECREF(slow);
    return r;
}

/* The Python slow path's constructor: make(type, site, name) -> a traced lock. */
static PyObject *
module_make(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyTypeObject *type;
    PyObject *site, *name;
    if (!PyArg_ParseTuple(args, "O!OO", &PyType_Type, &type, &site, &name)) {
        return NULL;
    }
    Core *self = core_alloc(type, type_reentrant(type));
    if (self == NULL) {
        return NULL;
    }
    Py_INCREF(site);
    self->site = site;
    Py_INCREF(name);
    Py_SETREF(self->name, name);
    core_register(self);
    return (PyObject *)self;
}

static int
core_traverse(Core *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->acq_code);
    Py_VISIT(self->made_code);
    Py_VISIT(self->site);
    Py_VISIT(self->name);
    Py_VISIT(self->waker);
    return 0;
}

static int
core_clear(Core *self)
{
    Py_CLEAR(self->acq_code);
    Py_CLEAR(self->made_code);
    Py_CLEAR(self->site);
    Py_CLEAR(self->name);
    Py_CLEAR(self->waker);
    return 0;
}

/* -- collected locks' counters ---------------------------------------------------------
 *
 * A lock that is collected keeps its counts in its series' totals.  Every
 * Future's lock is one, used a few times: a Python call per collected lock
 * (its name worked out, queued, folded) cost more than all its uses.  So the
 * counts are summed here, one row per (type, name, site, made code, made
 * offset), keyed by those pointers (no code object is hashed); the row holds
 * its objects, so that no pointer of a key can be reused while the key is in
 * the table.  The table is the current registry's (the runtime's records:
 * testing.capture() starts afresh with a registry of its own);
 * Registry.take_retired() hands the rows to the runtime's fold, which names
 * them.  Past RETIRED_ROWS rows, a collected lock takes the Python path. */

#define RETIRED_ROWS 4096
#define RETIRED_COUNTS 6 /* acquisitions, contended, wait, hold total, holds, hold max */

/* Sum ``self``'s counters into its row; 0 when it must take the Python path. */
static int
retire_here(Core *self)
{
    PyObject *table = current_registry != NULL ? current_registry->retired : NULL;
    if (table == NULL) {
        return 0;
    }
    PyObject *name = self->name != NULL ? self->name : Py_None;
    PyObject *site = self->site != NULL ? self->site : Py_None;
    PyObject *code = self->made_code != NULL ? self->made_code : Py_None;
    struct {
        void *type, *name, *site, *code;
        long long offset;
    } k;
    memset(&k, 0, sizeof k);
    k.type = Py_TYPE(self);
    k.name = name;
    k.site = site;
    k.code = code;
    k.offset = self->made_offset;
    long long counts[RETIRED_COUNTS] = {self->acquisitions, self->contended, self->wait_total,
                                        self->hold_total, self->holds, self->hold_max};
    PyObject *key = PyBytes_FromStringAndSize((const char *)&k, sizeof k);
    if (key == NULL) {
        PyErr_Clear();
        return 0;
    }
    PyObject *row = PyDict_GetItemWithError(table, key); /* borrowed */
    if (row == NULL && !PyErr_Occurred()) {
        if (PyDict_GET_SIZE(table) >= RETIRED_ROWS) {
            Py_DECREF(key);
            return 0;
        }
        PyObject *fresh = Py_BuildValue("[OOOOiLLLLLL]", (PyObject *)Py_TYPE(self), name, site, code,
                                        self->made_offset, counts[0], counts[1], counts[2],
                                        counts[3], counts[4], counts[5]);
        /* Making it may have run a collection, and a lock collected then may
         * have made this very row: look again. */
        row = fresh != NULL ? PyDict_GetItemWithError(table, key) : NULL;
        if (fresh != NULL && row == NULL && !PyErr_Occurred()) {
            int failed = PyDict_SetItem(table, key, fresh);
            Py_DECREF(fresh);
            Py_DECREF(key);
            if (failed) {
                PyErr_Clear();
                return 0;
            }
            return 1;
        }
        Py_XDECREF(fresh);
    }
    Py_DECREF(key);
    if (row == NULL || !PyList_Check(row) || PyList_GET_SIZE(row) != 5 + RETIRED_COUNTS) {
        PyErr_Clear();
        return 0;
    }
    for (int i = 0; i < RETIRED_COUNTS; i++) {
        long long before = PyLong_AsLongLong(PyList_GET_ITEM(row, 5 + i));
        if (before == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            before = 0;
        }
        long long after = i == RETIRED_COUNTS - 1 ? (before >= counts[i] ? before : counts[i])
                                                  : before + counts[i];
        PyObject *value = PyLong_FromLongLong(after);
        if (value == NULL) {
            PyErr_Clear();
            continue; /* that count is lost; the others are kept */
        }
        PyList_SetItem(row, 5 + i, value); /* steals value, drops the old one */
    }
    return 1;
}

/* What a collected lock did still counts (the metrics' retired totals). */
static void
core_retire(Core *self)
{
    if (G.retire == NULL || (self->acquisitions == 0 && self->timeouts == 0)) {
        return;
    }
    if (retire_here(self)) {
        return;
    }
    PyObject *kind = PyObject_GetAttr((PyObject *)Py_TYPE(self), G.str_kind);
    if (kind == NULL) {
        PyErr_Clear();
        return;
    }
    PyObject *r = PyObject_CallFunction(
        G.retire, "OOOOi(LLLLLL)", kind, self->name ? self->name : Py_None,
        self->site ? self->site : Py_None, self->made_code ? self->made_code : Py_None,
        self->made_offset, self->acquisitions, self->contended, self->wait_total,
        self->hold_total, self->holds, self->hold_max);
    if (r == NULL) {
        report_error("retire");
    }
    Py_XDECREF(r);
    Py_DECREF(kind);
}

static void
core_dealloc(Core *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    core_unregister(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    core_retire(self);
    PyErr_Restore(type, value, tb);
    core_clear(self);
    if (self->lock != NULL) {
        if (self->locked) {
            PyThread_release_lock(self->lock); /* freed while held, as _thread's locks do */
        }
        PyThread_free_lock(self->lock);
        self->lock = NULL;
    }
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* -- the fields Python reads and writes ---------------------------------------------- */

static PyObject *
get_owner(Core *self, void *Py_UNUSED(c))
{
    if (!self->locked) {
        Py_RETURN_NONE;
    }
    return PyLong_FromUnsignedLong(self->owner);
}

/* The current holder's acquire site, as a Site (None when not known). */
static PyObject *
get_site_acq(Core *self, void *Py_UNUSED(c))
{
    if (self->acq_code == NULL || G.site_factory == NULL) {
        Py_RETURN_NONE;
    }
    return site_of(self->acq_code, self->acq_offset, self->acq_line, 0);
}

/* Where it was made: a Site, built on first use from the code and offset. */
static PyObject *
get_site(Core *self, void *Py_UNUSED(c))
{
    if (self->site == NULL) {
        if (self->made_code == NULL || G.site_factory == NULL) {
            Py_RETURN_NONE;
        }
        self->site = site_of(self->made_code, self->made_offset, -1, 1);
        if (self->site == NULL) {
            return NULL;
        }
    }
    Py_INCREF(self->site);
    return self->site;
}

static int
set_site(Core *self, PyObject *value, void *Py_UNUSED(c))
{
    Py_XINCREF(value);
    Py_XSETREF(self->site, value);
    self->kind = 0; /* the new site's, when next asked */
    return 0;
}

static PyObject *
get_t_acq(Core *self, void *Py_UNUSED(c))
{
    return PyLong_FromLongLong(self->measured ? self->t_acq : 0);
}

static PyMethodDef core_methods[] = {
    {"__enter__", (PyCFunction)core_enter, METH_NOARGS, "Acquire the lock, blocking."},
    {"__exit__", (PyCFunction)(void (*)(void))core_exit, METH_FASTCALL, "Release the lock."},
    {"acquire", (PyCFunction)(void (*)(void))core_acquire, METH_FASTCALL | METH_KEYWORDS,
     "acquire(blocking=True, timeout=-1)\n--\n\n"
     "Acquire the lock, exactly as threading's lock does."},
    {"release", (PyCFunction)core_release, METH_NOARGS,
     "Release the lock, exactly as threading's lock does."},
    {"_block", (PyCFunction)core_block, METH_O, NULL},
    {"_taken", (PyCFunction)core_taken, METH_VARARGS, NULL},
    {"_waiting", (PyCFunction)core_waiting, METH_O, NULL},
    {"_settle_hot", (PyCFunction)core_settle_hot, METH_NOARGS, NULL},
    {"_core_release_save", (PyCFunction)core_release_save, METH_NOARGS, NULL},
    {"_core_restore", (PyCFunction)core_restore, METH_O, NULL},
    {"_locked_now", (PyCFunction)core_locked, METH_NOARGS, NULL},
    {"_core_is_owned", (PyCFunction)core_is_owned, METH_NOARGS, NULL},
    {"_core_recursion_count", (PyCFunction)core_recursion_count, METH_NOARGS, NULL},
    {"_at_fork_reinit", (PyCFunction)core_at_fork_reinit, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef core_members[] = {
    {"_hot", T_BOOL, offsetof(Core, hot), 0, NULL},
    {"_reentrant", T_BOOL, offsetof(Core, reentrant), READONLY, NULL},
    {"_depth", T_PYSSIZET, offsetof(Core, depth), READONLY, NULL},
    {"_acquisitions", T_LONGLONG, offsetof(Core, acquisitions), 0, NULL},
    {"_contended", T_LONGLONG, offsetof(Core, contended), 0, NULL},
    {"_timeouts", T_LONGLONG, offsetof(Core, timeouts), 0, NULL},
    {"_wait_total", T_LONGLONG, offsetof(Core, wait_total), 0, NULL},
    {"_wait_max", T_LONGLONG, offsetof(Core, wait_max), 0, NULL},
    {"_waiters", T_LONGLONG, offsetof(Core, waiters), 0, NULL},
    {"_holds", T_LONGLONG, offsetof(Core, holds), 0, NULL},
    {"_hold_total", T_LONGLONG, offsetof(Core, hold_total), 0, NULL},
    {"_hold_max", T_LONGLONG, offsetof(Core, hold_max), 0, NULL},
    {"_left", T_PYSSIZET, offsetof(Core, left), 0, NULL},
    {"_profile", T_INT, offsetof(Core, profile), 0, NULL},
    {"_tt_name", T_OBJECT, offsetof(Core, name), 0, NULL},
    {"_waker", T_OBJECT, offsetof(Core, waker), 0, NULL},
    {"_tt_serial", T_LONGLONG, offsetof(Core, serial), READONLY, NULL},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(Core, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef core_getset[] = {
    {"_owner", (getter)get_owner, NULL, "Ident of the thread that holds the lock, or None.", NULL},
    {"_site_acq", (getter)get_site_acq, NULL,
     "Where the current holder acquired it (a Site), or None.", NULL},
    {"_tt_site", (getter)get_site, (setter)set_site, "Where the lock was made (a Site).", NULL},
    {"_t_acq", (getter)get_t_acq, NULL,
     "When the current (measured) hold began, in ns; 0 when not measured.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot core_slots[] = {
    {Py_tp_doc, "The C core shared by threadtrace.Lock and threadtrace.RLock."},
    {Py_tp_new, core_new},
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
    .basicsize = sizeof(Core),
    .itemsize = 0,
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = core_slots,
};

/* -- the registry type --------------------------------------------------------------- */

static PyObject *
registry_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    Registry *self = (Registry *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->retired = PyDict_New();
    if (self->retired == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void
registry_dealloc(Registry *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    if (current_registry == self) {
        current_registry = NULL;
    }
    Py_CLEAR(self->retired);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* take_retired(): the rows summed since the last call, [type, name, site, code,
 * offset, *counts] each; the table starts afresh. */
static PyObject *
registry_take_retired(Registry *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *fresh = PyDict_New();
    if (fresh == NULL) {
        return NULL;
    }
    PyObject *taken = self->retired;
    self->retired = fresh; /* before anything below can collect a lock */
    if (taken == NULL) {
        return PyList_New(0);
    }
    PyObject *rows = PyDict_Values(taken);
    Py_DECREF(taken);
    return rows;
}

/* Every live lock in it (a new list). */
static PyObject *
registry_list(Registry *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *list = PyList_New(0);
    if (list == NULL) {
        return NULL;
    }
    for (Core *c = self->first; c != NULL; c = c->next) {
        if (Py_REFCNT(c) <= 0) {
            continue; /* being deallocated */
        }
        if (PyList_Append(list, (PyObject *)c) < 0) {
            Py_DECREF(list);
            return NULL;
        }
    }
    return list;
}

static Py_ssize_t
registry_len(Registry *self)
{
    return self->count;
}

static PyMethodDef registry_methods[] = {
    {"list", (PyCFunction)registry_list, METH_NOARGS, "Every live lock registered here."},
    {"take_retired", (PyCFunction)registry_take_retired, METH_NOARGS,
     "The collected locks' counters summed since the last call."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot registry_slots[] = {
    {Py_tp_doc, "A registry of live traced locks (threadtrace's runtime keeps the current one)."},
    {Py_tp_new, registry_new},
    {Py_tp_dealloc, registry_dealloc},
    {Py_tp_methods, registry_methods},
    {Py_sq_length, registry_len},
    {0, NULL},
};

static PyType_Spec registry_spec = {
    .name = "threadtrace._primitives._lockcore.Registry",
    .basicsize = sizeof(Registry),
    .itemsize = 0,
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = registry_slots,
};

/* -- module functions ------------------------------------------------------------------- */

/* The line of an instruction offset in a code object. */
static PyObject *
module_line_of(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *code;
    int offset;
    if (!PyArg_ParseTuple(args, "O!i", &PyCode_Type, &code, &offset)) {
        return NULL;
    }
    return PyLong_FromLong(PyCode_Addr2Line((PyCodeObject *)code, offset));
}

static void
set_global(PyObject **slot, PyObject *value)
{
    if (value == Py_None) {
        value = NULL;
    }
    Py_XINCREF(value);
    Py_XSETREF(*slot, value);
}

/* configure(sample_period, hold_threshold_ns, profile_after, clock, classify,
 *           site_factory, retire, ordering, modules, registry, internal_error) */
static PyObject *
module_configure(PyObject *module, PyObject *args)
{
    Py_ssize_t period;
    long long hold;
    int profile, ordering;
    PyObject *clock, *classify, *factory, *retire, *modules, *registry, *internal_error;
    if (!PyArg_ParseTuple(args, "nLiOOOOpOOO", &period, &hold, &profile, &clock, &classify,
                          &factory, &retire, &ordering, &modules, &registry,
                          &internal_error)) {
        return NULL;
    }
    PyObject *registry_type = PyObject_GetAttrString(module, "Registry");
    if (registry_type == NULL) {
        return NULL;
    }
    int ok = PyObject_TypeCheck(registry, (PyTypeObject *)registry_type);
    Py_DECREF(registry_type);
    if (!ok) {
        PyErr_SetString(PyExc_TypeError, "registry must be a Registry");
        return NULL;
    }
    /* The runtime holds it: a borrowed pointer, cleared if it ever dies first. */
    current_registry = (Registry *)registry;
    G.sample_period = period;
    G.hold_threshold_ns = hold;
    G.profile_after = profile;
    set_global(&G.clock, clock);
    set_global(&G.classify, classify);
    set_global(&G.site_factory, factory);
    set_global(&G.retire, retire);
    set_global(&G.internal_error, internal_error);
    G.ordering = ordering;
    if (modules != G.modules) {
        /* The exclusions changed: every category cached on a code object is stale. */
        set_global(&G.modules, modules);
        G.generation++;
    }
    Py_RETURN_NONE;
}

/* waker_context(var): the context variable whose value a release with
 * waiters notes as the waker's context (OpenTelemetry's, when its runtime
 * context is the contextvars one); None: leave the release to
 * _release_slow(), in Python. */
static PyObject *
module_waker_context(PyObject *Py_UNUSED(module), PyObject *var)
{
    if (var != Py_None && !PyContextVar_CheckExact(var)) {
        PyErr_SetString(PyExc_TypeError, "waker_context() takes a ContextVar or None");
        return NULL;
    }
    set_global(&G.waker_var, var);
    Py_RETURN_NONE;
}

/* caller(): (code, byte offset) of the first frame of the program's own above
 * this call, or None (what a semaphore notes per permit: cheaper than a walk
 * in Python). */
static PyObject *
module_caller(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    tt_frame *f = site_frame();
    if (f == NULL) {
        Py_RETURN_NONE;
    }
    return Py_BuildValue("(Oi)", (PyObject *)FRAME_CODE(f), FRAME_OFFSET(f));
}

/* The Site runtime.site_cache keeps for a place, looked up in its dict
 * ``sites`` (SiteCache.places) under SiteCache's key: (id(code), offset,
 * line or -1, id(via code or None)).  A new reference; NULL with no error
 * set when it has none, or an entry not shaped as SiteCache keeps it (only
 * SiteCache.get() makes a Site). */
static PyObject *
cached_site(PyObject *sites, PyObject *code, int offset, int line, PyObject *via_code)
{
    /* The key SiteCache.get makes (sites.place_key): one int, its bytes the
     * code's address, the offset, the line + 1 and the via code's address,
     * least significant first.  A tuple of four ints cost five allocations,
     * five hashes and four comparisons on every primitive made and every
     * wait that blocks. */
    unsigned char bytes[24];
    uint64_t words[3] = {
        (uint64_t)(uintptr_t)code,
        (uint64_t)(uint32_t)offset | ((uint64_t)(uint32_t)(line + 1) << 32),
        (uint64_t)(uintptr_t)via_code,
    };
    for (int w = 0; w < 3; w++) {
        for (int b = 0; b < 8; b++) {
            bytes[w * 8 + b] = (unsigned char)(words[w] >> (8 * b));
        }
    }
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *key = PyLong_FromUnsignedNativeBytes(bytes, sizeof(bytes), Py_ASNATIVEBYTES_LITTLE_ENDIAN);
#else
    PyObject *key = _PyLong_FromByteArray(bytes, sizeof(bytes), 1, 0);
#endif
    if (key == NULL) {
        return NULL;
    }
    PyObject *entry = PyDict_GetItemWithError(sites, key); /* borrowed */
    Py_DECREF(key);
    if (entry == NULL || !PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) < 1) {
        return NULL;
    }
    PyObject *site = PyTuple_GET_ITEM(entry, 0);
    Py_INCREF(site);
    return site;
}

/* wait_site(sites, with_line): where the program waits, as a blocking
 * operation notes it before it blocks: the first frame of the program's own
 * (site_frame()), as runtime.site_cache keys it, (id(code), offset, line or
 * -1, id(None)).  Its Site if ``sites`` (SiteCache.places) has it, else
 * (code, offset, line) for SiteCache.get() to make it; None: no such frame.
 * The walk and the lookup of ModuleFilter.user_frame() and SiteCache.get()
 * in Python, four calls on every blocked wait. */
static PyObject *
module_wait_site(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyDict_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "wait_site() takes a dict and a flag");
        return NULL;
    }
    PyObject *sites = args[0];
    int with_line = PyObject_IsTrue(args[1]);
    if (with_line < 0) {
        return NULL;
    }
    tt_frame *f = site_frame();
    if (f == NULL) {
        Py_RETURN_NONE;
    }
    PyCodeObject *code = FRAME_CODE(f);
    int offset = FRAME_OFFSET(f);
    int line = with_line ? PyCode_Addr2Line(code, offset) : -1;
    PyObject *site = cached_site(sites, (PyObject *)code, offset, line, Py_None);
    if (site != NULL || PyErr_Occurred()) {
        return site;
    }
    return Py_BuildValue("(Oii)", (PyObject *)code, offset, line);
}

/* Whether ``code`` takes ``self`` first (sites.py's _is_method). */
static int
is_method(PyCodeObject *code)
{
    if (code->co_argcount <= 0) {
        return 0;
    }
#if PY_VERSION_HEX >= 0x030B0000
    PyObject *names = code->co_localsplusnames; /* the arguments first */
#else
    PyObject *names = code->co_varnames;
#endif
    if (names == NULL || !PyTuple_Check(names) || PyTuple_GET_SIZE(names) == 0) {
        return 0;
    }
    PyObject *first = PyTuple_GET_ITEM(names, 0);
    return first == G.str_self
        || (PyUnicode_Check(first) && PyUnicode_Compare(first, G.str_self) == 0);
}

/* creation(depth): where the program makes a primitive, as base.site_for
 * asks (the walk of ModuleFilter.creation_site, in C).
 * The frame ``depth`` frames above the caller is the constructor's caller;
 * the walk goes past the modules that make primitives on the program's
 * behalf (queue, concurrent.futures...) to the program's frame.
 *
 * Returns None when the primitive stays untraced: made by threading or
 * threadtrace themselves, past the libraries by telemetry plumbing, or
 * while this thread records.  (code, offset, via) for the program's frame,
 * ``via`` being the code of the innermost library method passed through
 * (None: none), as runtime.site_cache keys a place.  Ellipsis when it is
 * not decided here (no such frame, no program frame above, no categories
 * yet): the walk in Python decides.
 *
 * creation(depth, sites), ``sites`` being the SiteCache's dict: the Site
 * of that place if the cache has it, instead of (code, offset, via), and
 * Ellipsis if it has not (only the walk in Python makes one). */
static PyObject *
creation_walk(Py_ssize_t depth, PyObject *sites)
{
    if (guard_busy) {
        Py_RETURN_NONE;
    }
    tt_frame *f = G.classify != NULL ? FRAME_TOP() : NULL;
    for (Py_ssize_t i = 0; i < depth && f != NULL; i++) {
        f = FRAME_BACK(f);
    }
    if (f == NULL) {
        Py_INCREF(Py_Ellipsis);
        return Py_Ellipsis;
    }
    int category = frame_category(f);
    if (category & CAT_COMPOSER) {
        Py_RETURN_NONE;
    }
    tt_frame *via = NULL;
    while ((category & 3) == CAT_PASS) {
        if (via == NULL && FRAME_GLOBALS(f) != G.threading_globals && is_method(FRAME_CODE(f))) {
            via = f;
        }
        f = FRAME_BACK(f);
        if (f == NULL) {
            Py_INCREF(Py_Ellipsis);
            return Py_Ellipsis;
        }
        category = frame_category(f);
    }
    if ((category & 3) == CAT_EXCLUDED) {
        Py_RETURN_NONE;
    }
    PyObject *via_code = via != NULL ? (PyObject *)FRAME_CODE(via) : Py_None;
    if (sites == NULL) {
        return Py_BuildValue("(OiO)", (PyObject *)FRAME_CODE(f), FRAME_OFFSET(f), via_code);
    }
    PyObject *site = cached_site(sites, (PyObject *)FRAME_CODE(f), FRAME_OFFSET(f), -1, via_code);
    if (site != NULL || PyErr_Occurred()) {
        return site;
    }
    Py_INCREF(Py_Ellipsis); /* not cached: the walk in Python makes its Site */
    return Py_Ellipsis;
}

static PyObject *
module_creation(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_ssize_t depth;
    PyObject *sites = NULL;
    if (!PyArg_ParseTuple(args, "n|O!:creation", &depth, &PyDict_Type, &sites)) {
        return NULL;
    }
    return creation_walk(depth, sites);
}

/* site_setup(runtime, unknown, walk): what site_for() reads. */
static PyObject *
module_site_setup(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *rt, *unknown, *walk;
    if (!PyArg_ParseTuple(args, "OOO:site_setup", &rt, &unknown, &walk)) {
        return NULL;
    }
    if (SF.str_site_cache == NULL) {
        SF.str_site_cache = PyUnicode_InternFromString("site_cache");
        SF.str_places = PyUnicode_InternFromString("places");
        if (SF.str_site_cache == NULL || SF.str_places == NULL) {
            return NULL;
        }
    }
    /* The site cache's dict, read once: the cache and its dict live as long
     * as the runtime (a full cache is cleared in place, never replaced), and
     * two attribute reads on every primitive made and every holder's site
     * asked for cost more than the lookup they lead to. */
    PyObject *cache = PyObject_GetAttr(rt, SF.str_site_cache);
    if (cache == NULL) {
        return NULL;
    }
    PyObject *places = PyObject_GetAttr(cache, SF.str_places);
    Py_DECREF(cache);
    if (places == NULL) {
        return NULL;
    }
    if (!PyDict_Check(places)) {
        Py_DECREF(places);
        PyErr_SetString(PyExc_TypeError, "site_cache.places must be a dict");
        return NULL;
    }
    Py_XSETREF(SF.places, places);
    set_global(&SF.unknown, unknown);
    set_global(&SF.walk, walk);
    Py_RETURN_NONE;
}

/* site_for(name, depth): base.site_for in C, called by a constructor: the
 * creation site of the primitive made by the frame ``depth`` frames above
 * the caller, or None when it stays untraced (a named one is always
 * traced: UNKNOWN).  The walk of creation() and its cache's lookup; what
 * they leave undecided (a place not cached yet...) goes to base._walk(),
 * whose frame then stands where site_for's would: the same depth.  A
 * Python frame fewer on every primitive made, two on every Thread. */
static PyObject *
module_site_for(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "site_for() takes a name and a depth");
        return NULL;
    }
    if (SF.walk == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "site_for() before site_setup()");
        return NULL;
    }
    PyObject *name = args[0];
    Py_ssize_t depth = PyLong_AsSsize_t(args[1]);
    if (depth == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *sites = SF.places; /* set before walk, by site_setup() */
    Py_INCREF(sites);
    PyObject *found = creation_walk(depth, sites);
    Py_DECREF(sites);
    if (found == Py_None && name != Py_None) {
        Py_DECREF(found);
        Py_INCREF(SF.unknown);
        return SF.unknown;
    }
    if (found != Py_Ellipsis) {
        return found; /* None, a Site, or NULL with an error */
    }
    Py_DECREF(found);
    return PyObject_Vectorcall(SF.walk, args, 2, NULL);
}

/* starts(depth): whether a thread started from the frame ``depth`` frames
 * above the caller is the program's, to be traced (Runtime.starts_traced:
 * ModuleFilter.starts_traced's walk, in C).  False while this thread
 * records, past the pass-through modules from telemetry plumbing, or from
 * threadtrace's own modules (one it starts for itself); True from the
 * program, or with no frame there or above.  Ellipsis when it is not
 * decided here (no categories yet): the walk in Python decides. */
static PyObject *
module_starts(PyObject *Py_UNUSED(module), PyObject *arg)
{
    Py_ssize_t depth = PyLong_AsSsize_t(arg);
    if (depth == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (guard_busy) {
        Py_RETURN_FALSE;
    }
    if (G.classify == NULL) {
        Py_INCREF(Py_Ellipsis);
        return Py_Ellipsis;
    }
    tt_frame *f = FRAME_TOP();
    for (Py_ssize_t i = 0; i < depth && f != NULL; i++) {
        f = FRAME_BACK(f);
    }
    while (f != NULL) {
        int category = frame_category(f);
        if ((category & 3) != CAT_PASS) {
            return PyBool_FromLong((category & 3) != CAT_EXCLUDED);
        }
        PyObject *globals = FRAME_GLOBALS(f);
        if ((category & CAT_COMPOSER) && globals != G.threading_globals && globals != NULL) {
            /* threadtrace's own, passed through: "threadtrace._..." starts its own threads */
            PyObject *name = PyDict_GetItemWithError(globals, G.str_name); /* borrowed */
            if (name == NULL && PyErr_Occurred()) {
                return NULL;
            }
            if (name != NULL && PyUnicode_Check(name)) {
                Py_ssize_t own = PyUnicode_Tailmatch(name, G.str_own_prefix, 0, PY_SSIZE_T_MAX, -1);
                if (own < 0) {
                    return NULL;
                }
                if (own) {
                    Py_RETURN_FALSE;
                }
            }
        }
        f = FRAME_BACK(f);
    }
    Py_RETURN_TRUE;
}

/* -- the watchdog's entry for a wait ------------------------------------------------- */

/* threadtrace._detect.state.Blocked, in C: one thread, blocked in one
 * operation on one primitive.  The same attributes, read and written by the
 * watchdog as it reads and writes the Python class's; begin_wait() makes one
 * and puts it on top of the thread's in the watchdog's table, which
 * hooks.begin() did in Python for every wait that blocks. */
typedef struct {
    PyObject_HEAD
    PyObject *primitive, *operation, *since, *timeout, *previous, *context;
    PyObject *notifies, *unheard, *taken, *doomed;
    char recorded, woken;
} Blocked;

static int
blocked_traverse(Blocked *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->primitive);
    Py_VISIT(self->operation);
    Py_VISIT(self->since);
    Py_VISIT(self->timeout);
    Py_VISIT(self->previous);
    Py_VISIT(self->context);
    Py_VISIT(self->notifies);
    Py_VISIT(self->unheard);
    Py_VISIT(self->taken);
    Py_VISIT(self->doomed);
    return 0;
}

static int
blocked_clear(Blocked *self)
{
    Py_CLEAR(self->primitive);
    Py_CLEAR(self->operation);
    Py_CLEAR(self->since);
    Py_CLEAR(self->timeout);
    Py_CLEAR(self->previous);
    Py_CLEAR(self->context);
    Py_CLEAR(self->notifies);
    Py_CLEAR(self->unheard);
    Py_CLEAR(self->taken);
    Py_CLEAR(self->doomed);
    return 0;
}

static void
blocked_dealloc(Blocked *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    blocked_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* An attribute of the primitive as an int (int(getattr(primitive, name))). */
static PyObject *
int_attr(PyObject *primitive, PyObject *name)
{
    PyObject *value = PyObject_GetAttr(primitive, name);
    if (value == NULL) {
        return NULL;
    }
    PyObject *number = PyNumber_Long(value);
    Py_DECREF(value);
    return number;
}

/* Whether ``kind`` (a primitive's _tt_kind) is ``name``, an interned string:
 * the kinds are literals in class bodies, interned too, so one pointer
 * comparison mostly answers (two interned strings that differ are unequal). */
static int
kind_is(PyObject *kind, PyObject *name)
{
    if (kind == name) {
        return 1;
    }
    if (!PyUnicode_Check(kind) || PyUnicode_CHECK_INTERNED(kind)) {
        return 0;
    }
    return PyUnicode_Compare(kind, name) == 0;
}

/* Blocked(primitive, operation, since, timeout, previous, context=None), as in Python:
 * a condition's notify() counts so far, and the acquisitions of a lock or a
 * semaphore so far (state.acquisitions), read as the wait begins. */
static PyObject *
make_blocked(PyTypeObject *type, PyObject *primitive, PyObject *operation, PyObject *since,
             PyObject *timeout, PyObject *previous, PyObject *context)
{
    PyObject *kind = PyObject_GetAttr(primitive, G.str_kind);
    if (kind == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            return NULL;
        }
        PyErr_Clear();
        kind = PyUnicode_FromString("");
        if (kind == NULL) {
            return NULL;
        }
    }
    Blocked *self = (Blocked *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(kind);
        return NULL;
    }
    Py_INCREF(primitive);
    self->primitive = primitive;
    Py_INCREF(operation);
    self->operation = operation;
    Py_INCREF(since);
    self->since = since;
    Py_INCREF(timeout);
    self->timeout = timeout;
    Py_INCREF(previous);
    self->previous = previous;
    Py_INCREF(context);
    self->context = context;
    Py_INCREF(Py_None);
    self->doomed = Py_None;
    if (kind_is(kind, G.kind_condition)) {
        self->notifies = PyObject_GetAttr(primitive, G.str_notifies);
        self->unheard = self->notifies ? PyObject_GetAttr(primitive, G.str_unheard) : NULL;
    }
    else {
        self->notifies = PyLong_FromLong(0);
        self->unheard = PyLong_FromLong(0);
    }
    if (self->unheard != NULL) {
        if (kind_is(kind, G.kind_lock)) {
            self->taken = int_attr(primitive, G.str_acquisitions);
        }
        else if (kind_is(kind, G.kind_semaphore) || kind_is(kind, G.kind_bounded_semaphore)) {
            self->taken = int_attr(primitive, G.str_operations);
        }
        else {
            /* An RLock counts its re-entries too, which overtake nobody: left out. */
            self->taken = PyLong_FromLong(0);
        }
    }
    Py_DECREF(kind);
    if (self->taken == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static PyObject *
blocked_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"primitive", "operation", "since", "timeout", "previous",
                               "context", NULL};
    PyObject *primitive, *operation, *since, *timeout, *previous, *context = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOO|O:Blocked", keywords, &primitive,
                                     &operation, &since, &timeout, &previous, &context)) {
        return NULL;
    }
    return make_blocked(type, primitive, operation, since, timeout, previous, context);
}

static PyObject *
blocked_timed(Blocked *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->timeout != NULL && self->timeout != Py_None);
}

static PyMemberDef blocked_members[] = {
    {"primitive", T_OBJECT, offsetof(Blocked, primitive), 0, NULL},
    {"operation", T_OBJECT, offsetof(Blocked, operation), 0, NULL},
    {"since", T_OBJECT, offsetof(Blocked, since), 0, NULL},
    {"timeout", T_OBJECT, offsetof(Blocked, timeout), 0, NULL},
    {"previous", T_OBJECT, offsetof(Blocked, previous), 0,
     "A wait this one interrupts (a Condition re-taking its lock)."},
    {"context", T_OBJECT, offsetof(Blocked, context), 0,
     "The OpenTelemetry context of the waiting thread."},
    {"notifies", T_OBJECT, offsetof(Blocked, notifies), 0,
     "A condition's notify() calls so far, as the wait began."},
    {"unheard", T_OBJECT, offsetof(Blocked, unheard), 0,
     "A condition's notify() calls that found no waiter, so far."},
    {"taken", T_OBJECT, offsetof(Blocked, taken), 0,
     "How many times the lock or semaphore had been acquired as the wait began."},
    {"doomed", T_OBJECT, offsetof(Blocked, doomed), 0,
     "The report of the deadlock this wait must end with (on_deadlock='raise')."},
    {"recorded", T_BOOL, offsetof(Blocked, recorded), 0, "Recorded as unfinished, at exit."},
    {"woken", T_BOOL, offsetof(Blocked, woken), 0,
     "Woken, and on its way back: no longer waiting for anybody."},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef blocked_getset[] = {
    {"timed", (getter)blocked_timed, NULL, "Whether the wait has a timeout.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot blocked_slots[] = {
    {Py_tp_doc, "One thread, blocked in one operation on one primitive (state.Blocked, in C)."},
    {Py_tp_new, blocked_new},
    {Py_tp_dealloc, blocked_dealloc},
    {Py_tp_traverse, blocked_traverse},
    {Py_tp_clear, blocked_clear},
    {Py_tp_members, blocked_members},
    {Py_tp_getset, blocked_getset},
    {0, NULL},
};

static PyType_Spec blocked_spec = {
    .name = "threadtrace._primitives._lockcore.Blocked",
    .basicsize = sizeof(Blocked),
    .itemsize = 0,
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = blocked_slots,
};

/* begin_wait(primitive, operation, timeout, blocked, get_current): hooks.begin's
 * entry, made and put on top of this thread's in ``blocked`` (ident -> entry):
 * since now (the clock the runtime reads: an injected one too), on top of the
 * wait it interrupts, in OpenTelemetry's current context (read from its
 * context variable, or get_current() for another runtime context). */
static PyObject *
module_begin_wait(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "begin_wait() takes 5 positional arguments");
        return NULL;
    }
    PyObject *blocked = args[3];
    if (!PyDict_Check(blocked)) {
        PyErr_SetString(PyExc_TypeError, "begin_wait(): blocked must be a dict");
        return NULL;
    }
    PyObject *since = PyLong_FromLongLong(now_ns());
    if (since == NULL) {
        return NULL;
    }
    PyObject *key = PyLong_FromUnsignedLong(PyThread_get_thread_ident());
    if (key == NULL) {
        Py_DECREF(since);
        return NULL;
    }
    /* Held, not borrowed: get_current() and the primitive's attributes may run Python. */
    PyObject *previous = PyDict_GetItemWithError(blocked, key);
    if (previous == NULL && PyErr_Occurred()) {
        Py_DECREF(key);
        Py_DECREF(since);
        return NULL;
    }
    previous = previous != NULL ? previous : Py_None;
    Py_INCREF(previous);
    PyObject *entry = NULL;
    PyObject *context = otel_context(args[4]);
    if (context != NULL) {
        entry = make_blocked((PyTypeObject *)G.blocked_type, args[0], args[1], since, args[2],
                             previous, context);
        Py_DECREF(context);
    }
    if (entry != NULL && PyDict_SetItem(blocked, key, entry) < 0) {
        Py_CLEAR(entry);
    }
    Py_DECREF(previous);
    Py_DECREF(key);
    Py_DECREF(since);
    return entry;
}

/* list[index] (an int) given ``value``: how 0 adds it, 1 keeps the larger,
 * -1 keeps the smaller.  -1 with an error set when that fails. */
static int
add_to_item(PyObject *list, Py_ssize_t index, long long value, int how)
{
    long long now = PyLong_AsLongLong(PyList_GET_ITEM(list, index));
    if (now == -1 && PyErr_Occurred()) {
        return -1;
    }
    long long fresh = how == 0 ? now + value : how > 0 ? (value > now ? value : now)
                                                         : (value < now ? value : now);
    if (fresh == now && how != 0) {
        return 0;
    }
    PyObject *item = PyLong_FromLongLong(fresh);
    if (item == NULL) {
        return -1;
    }
    PyList_SetItem(list, index, item); /* steals item, drops the old one */
    return 0;
}

/* Recorder.sum_short's work (recorder.py; the caller holds the sums' lock):
 * add a wait of wait_ns, shorter than wait_threshold, to the row of its place
 * (kind, name, ok, this thread's name, site, holder, holder's name, holder's
 * site) in ``sums``: [count, total, longest, shortest, bucket counts], the
 * bucket as bisect_left(buckets, wait_ns / 1e9) finds it.  False: a new place
 * and ``sums`` already has max_places (the wait is queued as a record). */
static PyObject *
sum_short(PyObject *sums, Py_ssize_t max_places, PyObject *buckets, PyObject *const *where,
          long long wait)
{
    /* where: kind, name, ok, site, holder, holder_name, holder_site */
    if (!PyDict_Check(sums) || !PyTuple_Check(buckets)) {
        PyErr_SetString(PyExc_TypeError, "sum_short(): sums must be a dict, buckets a tuple");
        return NULL;
    }
    if (wait < 0) {
        wait = 0;
    }
    Py_ssize_t nbuckets = PyTuple_GET_SIZE(buckets);
    PyObject *thread_name = current_thread_name(PyThread_get_thread_ident());
    if (thread_name == NULL) {
        return NULL;
    }
    PyObject *place = PyTuple_Pack(8, where[0], where[1], where[2], thread_name, where[3],
                                   where[4], where[5], where[6]);
    Py_DECREF(thread_name);
    if (place == NULL) {
        return NULL;
    }
    PyObject *row = PyDict_GetItemWithError(sums, place);
    if (row != NULL) {
        Py_INCREF(row);
    }
    else if (PyErr_Occurred()) {
        Py_DECREF(place);
        return NULL;
    }
    else if (PyDict_GET_SIZE(sums) >= max_places) {
        Py_DECREF(place);
        Py_RETURN_FALSE;
    }
    else {
        PyObject *counts = PyList_New(nbuckets + 1);
        if (counts == NULL) {
            Py_DECREF(place);
            return NULL;
        }
        for (Py_ssize_t i = 0; i <= nbuckets; i++) {
            PyList_SET_ITEM(counts, i, PyLong_FromLong(0)); /* a small int: never fails */
        }
        row = Py_BuildValue("[iiiLN]", 0, 0, 0, wait, counts);
        if (row == NULL || PyDict_SetItem(sums, place, row) < 0) {
            Py_XDECREF(row);
            Py_DECREF(place);
            return NULL;
        }
    }
    Py_DECREF(place);
    PyObject *counts = PyList_Check(row) && PyList_GET_SIZE(row) == 5 ? PyList_GET_ITEM(row, 4) : NULL;
    if (counts == NULL || !PyList_Check(counts) || PyList_GET_SIZE(counts) != nbuckets + 1) {
        PyErr_SetString(PyExc_TypeError, "sum_short(): a malformed row");
        Py_DECREF(row);
        return NULL;
    }
    /* bisect_left(buckets, wait / 1e9): the first bound not below it */
    double seconds = (double)wait / 1e9;
    Py_ssize_t lo = 0, hi = nbuckets;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        double bound = PyFloat_AsDouble(PyTuple_GET_ITEM(buckets, mid));
        if (bound == -1.0 && PyErr_Occurred()) {
            Py_DECREF(row);
            return NULL;
        }
        if (bound < seconds) {
            lo = mid + 1;
        }
        else {
            hi = mid;
        }
    }
    int failed = add_to_item(row, 0, 1, 0) < 0 || add_to_item(row, 1, wait, 0) < 0
                 || add_to_item(row, 2, wait, 1) < 0 || add_to_item(row, 3, wait, -1) < 0
                 || add_to_item(counts, lo, 1, 0) < 0;
    Py_DECREF(row);
    if (failed) {
        return NULL;
    }
    Py_RETURN_TRUE;
}

static PyObject *
module_sum_short(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 11) {
        PyErr_SetString(PyExc_TypeError, "sum_short() takes 11 positional arguments");
        return NULL;
    }
    Py_ssize_t max_places = PyLong_AsSsize_t(args[1]);
    long long wait = PyLong_AsLongLong(args[10]);
    if ((max_places == -1 || wait == -1) && PyErr_Occurred()) {
        return NULL;
    }
    return sum_short(args[0], max_places, args[2], args + 3, wait);
}

/* What count_short() reads besides its arguments (short_waits() sets it). */
static struct {
    PyObject *runtime;        /* threadtrace's runtime: its config's wait_threshold */
    PyObject *config;         /* the config the threshold below was read from */
    double threshold_ns;      /* config.wait_threshold in ns */
    PyObject *suppress_keys;  /* a tuple: OpenTelemetry's suppress keys, either set suppresses */
    Py_ssize_t max_places;
    PyObject *buckets;
    PyObject *str_counts, *str_config, *str_threshold, *str_lock, *str_sums;
    PyObject *str_acquire, *str_release, *str_get;
} S;

/* short_waits(runtime, suppress_keys, max_places, buckets): what count_short() reads. */
static PyObject *
module_short_waits(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *runtime, *keys, *buckets;
    Py_ssize_t max_places;
    if (!PyArg_ParseTuple(args, "OO!nO!:short_waits", &runtime, &PyTuple_Type, &keys,
                          &max_places, &PyTuple_Type, &buckets)) {
        return NULL;
    }
    set_global(&S.runtime, runtime);
    set_global(&S.suppress_keys, keys);
    set_global(&S.buckets, buckets);
    Py_CLEAR(S.config); /* read the threshold afresh */
    S.max_places = max_places;
    Py_RETURN_NONE;
}

/* Whether instrumentation is suppressed in ``context`` (an OpenTelemetry
 * Context, a dict): one of the suppress keys set to a true value.  -1 with
 * an error set when reading fails. */
static int
suppressed_in(PyObject *context)
{
    if (context == Py_None) {
        return 0;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(S.suppress_keys);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *key = PyTuple_GET_ITEM(S.suppress_keys, i);
        PyObject *value;
        if (PyDict_CheckExact(context)
            || (PyDict_Check(context)
                && _PyType_Lookup(Py_TYPE(context), S.str_get)
                       == _PyType_Lookup(&PyDict_Type, S.str_get))) {
            value = PyDict_GetItemWithError(context, key); /* borrowed */
            if (value == NULL && PyErr_Occurred()) {
                return -1;
            }
            Py_XINCREF(value);
        }
        else { /* not a plain dict: its own get() */
            value = PyObject_CallMethodOneArg(context, S.str_get, key);
            if (value == NULL) {
                return -1;
            }
        }
        int truth = value == NULL ? 0 : PyObject_IsTrue(value);
        Py_XDECREF(value);
        if (truth != 0) {
            return truth;
        }
    }
    return 0;
}

static PyObject *
new_false(void)
{
    Py_INCREF(Py_False);
    return Py_False;
}

/* The sum's lock (Recorder._short_lock) tried, never waited for: 1 taken,
 * 0 busy, -1 with an error set. */
static int
try_lock(PyObject *lock)
{
    PyObject *r = PyObject_CallMethodOneArg(lock, S.str_acquire, Py_False);
    if (r == NULL) {
        return -1;
    }
    int taken = PyObject_IsTrue(r);
    Py_DECREF(r);
    return taken;
}

/* count_short(recorder, kind, name, wait_ns, ok, site, context, holder=None,
 * holder_name=None, holder_site=None): Recorder.count_short (recorder.py) in
 * one C call, installed as that method.  The same tests in the same order,
 * then sum_short() under the sums' lock; on every short wait that blocked,
 * where the Python method cost two Python frames and a dozen calls. */
static PyObject *
module_count_short(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 7 || nargs > 10) {
        PyErr_SetString(PyExc_TypeError, "count_short() takes 7 to 10 positional arguments");
        return NULL;
    }
    if (S.runtime == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "count_short(): short_waits() was not called");
        return NULL;
    }
    PyObject *recorder = args[0], *context = args[6];
    PyObject *where[7] = {args[1], args[2], args[4], args[5], Py_None, Py_None, Py_None};
    for (Py_ssize_t i = 7; i < nargs; i++) {
        where[i - 3] = args[i];
    }
    PyObject *flag = PyObject_GetAttr(recorder, S.str_counts);
    if (flag == NULL) {
        return NULL;
    }
    int counts = PyObject_IsTrue(flag);
    Py_DECREF(flag);
    if (counts <= 0) {
        return counts < 0 ? NULL : new_false();
    }
    long long wait = PyLong_AsLongLong(args[3]);
    if (wait == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *config = PyObject_GetAttr(S.runtime, S.str_config);
    if (config == NULL) {
        return NULL;
    }
    if (config != S.config) { /* a config is frozen: its threshold read once */
        PyObject *threshold = PyObject_GetAttr(config, S.str_threshold);
        double seconds = threshold == NULL ? -1.0 : PyFloat_AsDouble(threshold);
        Py_XDECREF(threshold);
        if (seconds == -1.0 && PyErr_Occurred()) {
            Py_DECREF(config);
            return NULL;
        }
        S.threshold_ns = seconds * 1e9;
        Py_XSETREF(S.config, config); /* takes the reference */
    }
    else {
        Py_DECREF(config);
    }
    if ((double)wait >= S.threshold_ns || guard_busy) {
        Py_RETURN_FALSE;
    }
    int suppressed = suppressed_in(context);
    if (suppressed != 0) {
        return suppressed < 0 ? NULL : new_false();
    }
    PyObject *lock = PyObject_GetAttr(recorder, S.str_lock);
    if (lock == NULL) {
        return NULL;
    }
    int taken = try_lock(lock);
    if (taken <= 0) {
        Py_DECREF(lock);
        return taken < 0 ? NULL : new_false();
    }
    PyObject *sums = PyObject_GetAttr(recorder, S.str_sums);
    PyObject *result = sums == NULL ? NULL : sum_short(sums, S.max_places, S.buckets, where, wait);
    Py_XDECREF(sums);
    /* Released whatever happened, an error kept across the call. */
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyObject *r = PyObject_CallMethodNoArgs(lock, S.str_release);
    Py_DECREF(lock);
    if (r == NULL) {
        Py_XDECREF(result);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(traceback);
        return NULL;
    }
    Py_DECREF(r);
    PyErr_Restore(type, value, traceback);
    return result;
}

static PyMethodDef count_short_def = {
    "count_short", (PyCFunction)(void (*)(void))module_count_short, METH_FASTCALL,
    "count_short(recorder, kind, name, wait_ns, ok, site, context, holder=None, "
    "holder_name=None, holder_site=None): Recorder.count_short in one call (a method: "
    "installed on Recorder, it takes the recorder as self)."};

static PyMethodDef module_methods[] = {
    {"line_of", module_line_of, METH_VARARGS, "line_of(code, offset): the line of an instruction."},
    {"caller", module_caller, METH_NOARGS, "caller(): (code, offset) of the program's frame, or None."},
    {"creation", module_creation, METH_VARARGS,
     "creation(depth[, sites]): where the program makes a primitive ((code, offset, via), or its "
     "Site from the cache ``sites``), None, or ..."},
    {"site_setup", module_site_setup, METH_VARARGS,
     "site_setup(runtime, unknown, walk): what site_for() reads."},
    {"site_for", (PyCFunction)(void (*)(void))module_site_for, METH_FASTCALL,
     "site_for(name, depth): the creation site of a primitive the frame ``depth`` frames "
     "above the caller makes, or None (untraced)."},
    {"starts", module_starts, METH_O,
     "starts(depth): whether a thread started from the frame ``depth`` frames above the "
     "caller is traced: True, False, or ... (undecided: the walk in Python decides)."},
    {"wait_site", (PyCFunction)(void (*)(void))module_wait_site, METH_FASTCALL,
     "wait_site(sites, with_line): the Site where the program waits, (code, offset, line) "
     "if ``sites`` has none yet, or None."},
    {"forget_orders", module_forget_orders, METH_NOARGS, "Forget every lock-order pair seen."},
    {"held_locks", module_held_locks, METH_NOARGS, "The locks this thread holds, oldest first."},
    {"configure", module_configure, METH_VARARGS, "Set what the hot path needs from Python."},
    {"thread_name", (PyCFunction)(void (*)(void))module_thread_name, METH_FASTCALL,
     "thread_name([ident]): the current thread's name, or thread ``ident``'s (threading's), "
     "or thread-<ident>."},
    {"begin_wait", (PyCFunction)(void (*)(void))module_begin_wait, METH_FASTCALL,
     "begin_wait(primitive, operation, timeout, blocked, get_current): the watchdog's entry "
     "for a wait about to block, put on top of this thread's in ``blocked``."},
    {"sum_short", (PyCFunction)(void (*)(void))module_sum_short, METH_FASTCALL,
     "sum_short(sums, max_places, buckets, kind, name, ok, site, holder, holder_name, "
     "holder_site, wait_ns): add a short wait to its place's row; False: no room for a new place."},
    {"short_waits", module_short_waits, METH_VARARGS,
     "short_waits(runtime, suppress_keys, max_places, buckets): what count_short() reads."},
    {"waker_context", module_waker_context, METH_O,
     "waker_context(var): OpenTelemetry's ContextVar, which a release with waiters and "
     "begin_wait() read (None: another runtime context)."},
    {"make", module_make, METH_VARARGS, "make(type, site, name): a traced lock (the slow path's)."},
    {"get_guard", module_get_guard, METH_NOARGS, "Whether this thread is inside threadtrace's recording."},
    {"set_guard", module_set_guard, METH_O, "Set this thread's guard; returns what it was."},
    {NULL, NULL, 0, NULL},
};

static int
lockcore_exec(PyObject *module)
{
    G.str_acquire_slow = PyUnicode_InternFromString("_acquire_slow");
    G.str_acquire_with = PyUnicode_InternFromString("_acquire_with");
    G.str_release_slow = PyUnicode_InternFromString("_release_slow");
    G.str_ordered_nested = PyUnicode_InternFromString("_ordered_nested");
    G.str_name = PyUnicode_InternFromString("__name__");
    G.str_own_prefix = PyUnicode_InternFromString("threadtrace._");
    G.str_kind = PyUnicode_InternFromString("_tt_kind");
    G.str_site_kind = PyUnicode_InternFromString("kind");
    G.str_original = PyUnicode_InternFromString("_tt_original");
    G.str_original_factory = PyUnicode_InternFromString("_tt_original_factory");
    G.str_self = PyUnicode_InternFromString("self");
    G.str_active = PyUnicode_InternFromString("_active");
    G.str_thread_name = PyUnicode_InternFromString("name");
    G.str_notifies = PyUnicode_InternFromString("_tt_notifies");
    G.str_unheard = PyUnicode_InternFromString("_tt_unheard");
    G.str_acquisitions = PyUnicode_InternFromString("_acquisitions");
    G.str_operations = PyUnicode_InternFromString("_tt_operations");
    G.kind_condition = PyUnicode_InternFromString("condition");
    G.kind_lock = PyUnicode_InternFromString("lock");
    G.kind_semaphore = PyUnicode_InternFromString("semaphore");
    G.kind_bounded_semaphore = PyUnicode_InternFromString("bounded_semaphore");
    if (!G.kind_condition || !G.kind_lock || !G.kind_semaphore || !G.kind_bounded_semaphore) {
        return -1;
    }
    if (!G.str_acquire_slow || !G.str_acquire_with || !G.str_release_slow || !G.str_ordered_nested
        || !G.str_name || !G.str_own_prefix || !G.str_kind || !G.str_site_kind || !G.str_original
        || !G.str_original_factory
        || !G.str_self || !G.str_active || !G.str_thread_name || !G.str_notifies
        || !G.str_unheard || !G.str_acquisitions || !G.str_operations) {
        return -1;
    }
    S.str_counts = PyUnicode_InternFromString("counts_short_waits");
    S.str_config = PyUnicode_InternFromString("config");
    S.str_threshold = PyUnicode_InternFromString("wait_threshold");
    S.str_lock = PyUnicode_InternFromString("_short_lock");
    S.str_sums = PyUnicode_InternFromString("_short");
    S.str_acquire = PyUnicode_InternFromString("acquire");
    S.str_release = PyUnicode_InternFromString("release");
    S.str_get = PyUnicode_InternFromString("get");
    if (!S.str_counts || !S.str_config || !S.str_threshold || !S.str_lock || !S.str_sums
        || !S.str_acquire || !S.str_release || !S.str_get) {
        return -1;
    }
    /* A method: Recorder.count_short, called on a recorder, gets it first. */
    PyObject *function = PyCFunction_NewEx(&count_short_def, NULL, NULL);
    if (function == NULL) {
        return -1;
    }
    PyObject *method = PyInstanceMethod_New(function);
    Py_DECREF(function);
    if (method == NULL || PyModule_AddObject(module, "count_short", method) < 0) {
        Py_XDECREF(method);
        return -1;
    }
    PyObject *threading = PyImport_ImportModule("threading");
    if (threading == NULL) {
        return -1;
    }
    G.threading_globals = PyModule_GetDict(threading); /* threading lives as long as we do */
    Py_INCREF(G.threading_globals);
    Py_DECREF(threading);
    G.str_thread_name_value = PyUnicode_InternFromString("_name");
    if (G.str_thread_name_value == NULL) {
        return -1;
    }
    PyObject *thread_type = PyDict_GetItemString(G.threading_globals, "Thread"); /* borrowed */
    if (thread_type != NULL && PyType_Check(thread_type)) {
        G.name_property = _PyType_Lookup((PyTypeObject *)thread_type, G.str_thread_name);
        Py_XINCREF(G.name_property);
    }

    G.sample_period = 100;
    G.hold_threshold_ns = 10000000;
    G.profile_after = 16;
    G.generation = 1;
    G.extra_index = TT_REQUEST_EXTRA(NULL);
    if (G.extra_index < 0) {
        PyErr_Clear();
    }
    PyObject *core = PyType_FromSpec(&core_spec);
    if (core == NULL) {
        return -1;
    }
    if (PyModule_AddObject(module, "LockCore", core) < 0) {
        Py_DECREF(core);
        return -1;
    }
    G.blocked_type = PyType_FromSpec(&blocked_spec);
    if (G.blocked_type == NULL) {
        return -1;
    }
    Py_INCREF(G.blocked_type); /* ours, and the module's */
    if (PyModule_AddObject(module, "Blocked", G.blocked_type) < 0) {
        Py_DECREF(G.blocked_type);
        return -1;
    }
    PyObject *registry = PyType_FromSpec(&registry_spec);
    if (registry == NULL) {
        return -1;
    }
    if (PyModule_AddObject(module, "Registry", registry) < 0) {
        Py_DECREF(registry);
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot lockcore_slots[] = {
    {Py_mod_exec, lockcore_exec},
#ifdef Py_mod_gil
    /* Free-threaded 3.13t: the counters and the per-thread guard assume the
     * GIL, so importing this module turns it back on (docs/limitations.md). */
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef lockcore_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "threadtrace._primitives._lockcore",
    .m_doc = "C hot path for threadtrace's locks (optional; pycore.py is the fallback).",
    .m_size = 0,
    .m_methods = module_methods,
    .m_slots = lockcore_slots,
};

PyMODINIT_FUNC
PyInit__lockcore(void)
{
    return PyModuleDef_Init(&lockcore_module);
}
