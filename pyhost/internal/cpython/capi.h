// The part of CPython's C API that pybridge uses, declared here (no Python headers are
// needed to build) and resolved at run time with dlsym from the libpython that
// pb_load opens. Everything listed is in CPython's stable ABI of 3.9 and later (or, as
// noted, exported by every 3.9+ library with this signature).
#ifndef PYBRIDGE_CAPI_H
#define PYBRIDGE_CAPI_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <wchar.h>

typedef ssize_t Py_ssize_t;

// The object header: the stable ABI fixes its layout (ob_refcnt, then ob_type) for
// every build with the GIL; free-threaded builds are refused before loading.
typedef struct pb_object {
	Py_ssize_t ob_refcnt;
	void *ob_type;
} PyObject;

typedef void PyThreadState;
typedef void PyInterpreterState;
typedef PyObject *(*PyCFunction)(PyObject *, PyObject *);

typedef struct PyMethodDef {
	const char *ml_name;
	PyCFunction ml_meth;
	int ml_flags;
	const char *ml_doc;
} PyMethodDef;

#define PB_METH_VARARGS 0x0001
#define PB_FILE_INPUT 257

// X(return type, name, (parameters), (arguments))
#define PB_FUNCS(X) \
	X(void, Py_InitializeEx, (int initsigs), (initsigs)) \
	X(int, Py_IsInitialized, (void), ()) \
	X(void, Py_SetProgramName, (const wchar_t *name), (name)) \
	X(wchar_t *, Py_DecodeLocale, (const char *arg, size_t *size), (arg, size)) \
	X(PyThreadState *, PyEval_SaveThread, (void), ()) \
	X(void, PyEval_RestoreThread, (PyThreadState *ts), (ts)) \
	X(int, PyGILState_Ensure, (void), ()) \
	X(void, PyGILState_Release, (int state), (state)) \
	X(PyThreadState *, PyGILState_GetThisThreadState, (void), ()) \
	X(int, PyThreadState_SetAsyncExc, (unsigned long id, PyObject *exc), (id, exc)) \
	X(unsigned long, PyThread_get_thread_ident, (void), ()) \
	X(void, Py_IncRef, (PyObject *o), (o)) \
	X(void, Py_DecRef, (PyObject *o), (o)) \
	X(PyObject *, PyLong_FromLongLong, (long long v), (v)) \
	X(PyObject *, PyLong_FromUnsignedLongLong, (unsigned long long v), (v)) \
	X(long long, PyLong_AsLongLongAndOverflow, (PyObject *o, int *overflow), (o, overflow)) \
	X(PyObject *, PyLong_FromString, (const char *s, char **end, int base), (s, end, base)) \
	X(PyObject *, PyFloat_FromDouble, (double v), (v)) \
	X(double, PyFloat_AsDouble, (PyObject *o), (o)) \
	X(PyObject *, PyComplex_FromDoubles, (double re, double im), (re, im)) \
	X(double, PyComplex_RealAsDouble, (PyObject *o), (o)) \
	X(double, PyComplex_ImagAsDouble, (PyObject *o), (o)) \
	X(PyObject *, PyUnicode_FromStringAndSize, (const char *s, Py_ssize_t n), (s, n)) \
	/* stable ABI from 3.10; exported with this signature by 3.9 */ \
	X(const char *, PyUnicode_AsUTF8AndSize, (PyObject *o, Py_ssize_t *n), (o, n)) \
	X(PyObject *, PyBytes_FromStringAndSize, (const char *s, Py_ssize_t n), (s, n)) \
	X(int, PyBytes_AsStringAndSize, (PyObject *o, char **s, Py_ssize_t *n), (o, s, n)) \
	X(PyObject *, PyTuple_New, (Py_ssize_t n), (n)) \
	X(int, PyTuple_SetItem, (PyObject *t, Py_ssize_t i, PyObject *v), (t, i, v)) \
	X(PyObject *, PyTuple_GetItem, (PyObject *t, Py_ssize_t i), (t, i)) \
	X(Py_ssize_t, PyTuple_Size, (PyObject *t), (t)) \
	X(PyObject *, PyList_New, (Py_ssize_t n), (n)) \
	X(int, PyList_SetItem, (PyObject *l, Py_ssize_t i, PyObject *v), (l, i, v)) \
	X(PyObject *, PyList_GetItem, (PyObject *l, Py_ssize_t i), (l, i)) \
	X(Py_ssize_t, PyList_Size, (PyObject *l), (l)) \
	X(PyObject *, PyDict_New, (void), ()) \
	X(int, PyDict_SetItem, (PyObject *d, PyObject *k, PyObject *v), (d, k, v)) \
	X(int, PyDict_Next, (PyObject *d, Py_ssize_t *pos, PyObject **k, PyObject **v), (d, pos, k, v)) \
	X(Py_ssize_t, PyDict_Size, (PyObject *d), (d)) \
	X(PyObject *, PyDict_GetItemWithError, (PyObject *d, PyObject *k), (d, k)) \
	X(PyObject *, PyFrozenSet_New, (PyObject *iterable), (iterable)) \
	X(PyObject *, PySlice_New, (PyObject *start, PyObject *stop, PyObject *step), (start, stop, step)) \
	X(PyObject *, PyObject_GetAttr, (PyObject *o, PyObject *name), (o, name)) \
	X(PyObject *, PyObject_GetAttrString, (PyObject *o, const char *name), (o, name)) \
	X(int, PyObject_SetAttr, (PyObject *o, PyObject *name, PyObject *v), (o, name, v)) \
	X(PyObject *, PyObject_Call, (PyObject *f, PyObject *args, PyObject *kwargs), (f, args, kwargs)) \
	X(PyObject *, PyObject_Repr, (PyObject *o), (o)) \
	X(PyObject *, PyObject_Str, (PyObject *o), (o)) \
	X(PyObject *, PyObject_Dir, (PyObject *o), (o)) \
	X(Py_ssize_t, PyObject_Size, (PyObject *o), (o)) \
	X(PyObject *, PyObject_GetItem, (PyObject *o, PyObject *k), (o, k)) \
	X(int, PyObject_SetItem, (PyObject *o, PyObject *k, PyObject *v), (o, k, v)) \
	X(PyObject *, PyObject_GetIter, (PyObject *o), (o)) \
	X(PyObject *, PyIter_Next, (PyObject *o), (o)) \
	X(int, PyType_IsSubtype, (void *a, void *b), (a, b)) \
	X(PyObject *, PyImport_ImportModule, (const char *name), (name)) \
	X(PyObject *, PyErr_Occurred, (void), ()) \
	X(void, PyErr_Fetch, (PyObject **t, PyObject **v, PyObject **tb), (t, v, tb)) \
	X(void, PyErr_NormalizeException, (PyObject **t, PyObject **v, PyObject **tb), (t, v, tb)) \
	X(void, PyErr_Restore, (PyObject *t, PyObject *v, PyObject *tb), (t, v, tb)) \
	X(void, PyErr_Clear, (void), ()) \
	X(void, PyErr_SetString, (PyObject *t, const char *msg), (t, msg)) \
	X(void, PyErr_SetObject, (PyObject *t, PyObject *v), (t, v)) \
	X(int, PyException_SetTraceback, (PyObject *e, PyObject *tb), (e, tb)) \
	X(PyObject *, PyCapsule_New, (void *p, const char *name, void (*destructor)(PyObject *)), (p, name, destructor)) \
	X(void *, PyCapsule_GetPointer, (PyObject *c, const char *name), (c, name)) \
	X(PyObject *, PyCFunction_NewEx, (PyMethodDef *def, PyObject *self, PyObject *module), (def, self, module)) \
	X(PyObject *, Py_CompileString, (const char *src, const char *file, int start), (src, file, start)) \
	X(PyObject *, PyEval_EvalCode, (PyObject *code, PyObject *globals, PyObject *locals), (code, globals, locals))

#define PB_DECLARE(ret, name, params, args) \
	extern ret(*pb_p_##name) params; \
	static inline ret name params { return pb_p_##name args; }
PB_FUNCS(PB_DECLARE)
#undef PB_DECLARE

// Objects and types the library exports as data.
extern PyObject *pb_None, *pb_True, *pb_False, *pb_Ellipsis, *pb_NotImplemented;
extern void *pb_LongType, *pb_FloatType, *pb_UnicodeType, *pb_BytesType, *pb_TupleType,
	*pb_ListType, *pb_DictType, *pb_BoolType, *pb_ComplexType, *pb_FrozenSetType,
	*pb_SetType, *pb_SliceType;
extern PyObject *pb_ExcEOFError, *pb_ExcTypeError, *pb_ExcValueError, *pb_ExcRuntimeError,
	*pb_ExcOverflowError, *pb_ExcStopIteration, *pb_ExcKeyboardInterrupt, *pb_ExcSystemExit;

// pb_load opens the library and resolves every symbol above. It returns NULL, or a
// message in static storage saying what failed.
const char *pb_load(const char *path);
// pb_resolve_exceptions reads the exception classes once the interpreter is up.
void pb_resolve_exceptions(void);

// Thread states. pb_enter takes the GIL on the calling OS thread, creating the thread's
// Python thread state the first time and keeping it for the thread's life; pb_leave
// releases the GIL. The caller pins the goroutine to its OS thread in between.
void pb_enter(void);
void pb_leave(void);

// pb_start_gil_prober starts a thread of its own (not Go's) with a Python thread state
// that, for each byte it reads from fd in, takes the GIL, gives it back and writes the
// byte to fd out: whether Python's threads can still be scheduled, asked without a call
// from Go that could wait for the GIL. 0, or an errno.
int pb_start_gil_prober(int in, int out);

// Helpers that save round trips from Go. Each returns a new reference or NULL with a
// Python exception set.
PyObject *pb_tuple_from(Py_ssize_t n, PyObject **items);      // steals items
PyObject *pb_list_from(Py_ssize_t n, PyObject **items);       // steals items
Py_ssize_t pb_tuple_items(PyObject *t, PyObject **out, Py_ssize_t max); // borrowed
PyObject *pb_call(PyObject *f, Py_ssize_t n, PyObject **args, PyObject *kwargs); // borrows
PyObject *pb_new_ref(PyObject *o);
// pb_seconds_arg reads args (seconds,), an int or a float: -1 for anything else (None).
double pb_seconds_arg(PyObject *args);
// A builtin function object that calls the exported Go function pbGoCall with handle h
// (a runtime/cgo.Handle); pbGoRelease(h) runs when the function object is freed.
PyObject *pb_go_func(uintptr_t h);

static inline void *pb_type(PyObject *o) { return o->ob_type; }

// The GIL released and taken back with the thread state as an integer: Go passes no
// pointer, so cgo checks none (twice per message on a connection's thread).
static inline uintptr_t pb_save_thread(void) { return (uintptr_t)PyEval_SaveThread(); }
static inline void pb_restore_thread(uintptr_t ts) { PyEval_RestoreThread((PyThreadState *)ts); }

// Brine (brine.c). Limits are package brine's.
typedef struct pb_limits {
	int max_depth;
	long long max_items;
	int max_int_digits;
} pb_limits;
// A growing byte buffer in C memory; kind and seq are the header of the message
// pb_brine_dump_message dumped last.
typedef struct pb_buf {
	unsigned char *p;
	size_t len, cap;
	long long kind, seq;
	size_t max; // the most it may hold (a dump past it fails); 0: no bound
} pb_buf;
// Nesting a value loaded or dumped may have (as the Go Decoder's MaxDepth), whatever
// the limits say: the C stack.
#define PB_BRINE_MAX_DEPTH 1024
// pb_brine_load decodes the one brine value filling p[0:n]: a new reference, or NULL
// (no exception left set) for input malformed or over lim.
PyObject *pb_brine_load(const unsigned char *p, size_t n, pb_limits lim);
// pb_brine_message is the tuple (kind, seq, body); it steals body.
PyObject *pb_brine_message(long long kind, long long seq, PyObject *body);
// pb_brine_dump appends o's brine to b: 0, or -1 (b unchanged, no exception left set)
// when o holds anything but brine's exact value types.
int pb_brine_dump(PyObject *o, pb_buf *b);
// pb_brine_dump_message reads args (kind, seq, body), appends body's brine to b and
// sets b->kind and b->seq.
int pb_brine_dump_message(PyObject *args, pb_buf *b);
// pb_brine_dump_frame makes b the frame (header, payload, '\n') of args (msg, seq,
// body) in a message layout: 5 (rpyc 5.x: the brine of (msg, seq, body)) or 6 (rpyc
// 6.x and rpyc-ng: msg as one byte, then the brine of (seq, body)), uncompressed, and
// sets b->kind and b->seq. -1 (b empty, no exception left set): msg is not 1, 2 or 3,
// args not such a tuple of brine values, or the frame would pass b->max.
int pb_brine_dump_frame(PyObject *args, pb_buf *b, int layout);
void pb_buf_free(pb_buf *b);

// The C channel (channel.c): see channel.go.
typedef struct pb_channel pb_channel;
pb_channel *pb_channel_new(int fd, int32_t *awaiting, int32_t *serving, PyObject *go_send_recv, PyObject *go_recv);
PyObject *pb_channel_func(pb_channel *ch);
void pb_channel_observe(pb_channel *ch, uintptr_t observer);
void pb_channel_set(pb_channel *ch, int layout, long long threshold, long long max_frame, pb_limits lim);
int pb_channel_give(pb_channel *ch, const unsigned char *p, size_t n);
size_t pb_channel_buffered(pb_channel *ch, const unsigned char **p);
void pb_channel_drop_buffered(pb_channel *ch);
void pb_channel_lock(pb_channel *ch);
void pb_channel_unlock(pb_channel *ch);
void pb_channel_release(pb_channel *ch);
PyObject *pb_channel_load_message(int layout, const unsigned char *p, size_t n, pb_limits lim);
// pb_channel_serve_in_c_func is the function serve_in_c of ch (a new reference):
// serve_in_c(state) has send_recv serve requests in C (serve.c) with state, a tuple
// Python makes (pybridge.protocol.Connection._serve_in_c); serve_in_c(None) stops it.
PyObject *pb_channel_serve_in_c_func(pb_channel *ch);

// Requests served in C (serve.c). The kinds of the messages for Python that stand for
// a request C served, each returned with the connection's receive lock let go: its
// result (that C could not send itself), the exception it raised, its reply (that C
// could not send, the lock being another thread's).
#define PB_SERVED_RESULT (-1)
#define PB_SERVED_RAISED (-2)
#define PB_SERVED_REPLY (-3)
// pb_serve_state_ok: state has the shape serve_in_c needs.
int pb_serve_state_ok(PyObject *state);
// A request C serves: its handler, seq, object, and the handler's other arguments.
typedef struct pb_request {
	int handler;
	PyObject *seq, *obj, *name, *args, *kw;
} pb_request;
// pb_serve_prepare: whether C serves the request msg (kind, seq, body) with state;
// then req holds what it needs (pb_serve_run or pb_request_clear lets go). Nothing of
// the connection's objects runs.
int pb_serve_prepare(PyObject *state, PyObject *msg, pb_request *req);
// pb_serve_run runs the request: its result, or NULL with the exception it raised set.
PyObject *pb_serve_run(pb_request *req);
void pb_request_clear(pb_request *req);
// pb_serve_plain: result goes by value (pybridge.boxing.box) and brine.c dumps it.
int pb_serve_plain(PyObject *result);
// pb_serve_reply is the reply (MSG_REPLY, seq, (LABEL_VALUE, result)) (stealing result).
PyObject *pb_serve_reply(PyObject *seq, PyObject *result);
// pb_served is the message (kind, seq, value) for Python (stealing value);
// pb_served_raised the message of the exception set (cleared); pb_served_result and
// pb_served_reply the messages for a reply pb_serve_reply made (stealing it).
PyObject *pb_served(long long kind, PyObject *seq, PyObject *value);
PyObject *pb_served_raised(PyObject *seq);
PyObject *pb_served_result(PyObject *reply);
PyObject *pb_served_reply(PyObject *reply);
// The connection's receive lock, as Connection._receive_locked takes turns with it:
// pb_serve_let_go releases it and wakes the threads waiting to read (0, or -1 with an
// exception set); pb_serve_take_back takes it back if it is free and no DEL waits (1),
// or not (0); pb_serve_wait_back waits for it (0, or -1 with an exception set).
int pb_serve_let_go(PyObject *state);
int pb_serve_take_back(PyObject *state);
int pb_serve_wait_back(PyObject *state);
// pb_serve_for_test serves msg as the channel would, less the lock: 0 (not served), or
// 1 with *out the reply or the message for Python (NULL: out of memory).
int pb_serve_for_test(PyObject *state, PyObject *msg, PyObject **out);

#endif
