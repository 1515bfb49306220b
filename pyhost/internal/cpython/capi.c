#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "capi.h"

#define PB_DEFINE(ret, name, params, args) ret(*pb_p_##name) params;
PB_FUNCS(PB_DEFINE)
#undef PB_DEFINE

PyObject *pb_None, *pb_True, *pb_False, *pb_Ellipsis, *pb_NotImplemented;
void *pb_LongType, *pb_FloatType, *pb_UnicodeType, *pb_BytesType, *pb_TupleType, *pb_ListType,
	*pb_DictType, *pb_BoolType, *pb_ComplexType, *pb_FrozenSetType, *pb_SetType, *pb_SliceType;
PyObject *pb_ExcEOFError, *pb_ExcTypeError, *pb_ExcValueError, *pb_ExcRuntimeError,
	*pb_ExcOverflowError, *pb_ExcStopIteration, *pb_ExcKeyboardInterrupt, *pb_ExcSystemExit;

static char pb_err[512];

const char *pb_load(const char *path) {
	// RTLD_GLOBAL: C extension modules resolve their Py* symbols against this library
	void *h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
	if (h == NULL) {
		snprintf(pb_err, sizeof pb_err, "%s", dlerror());
		return pb_err;
	}
#define PB_RESOLVE(ret, name, params, args)                                          \
	pb_p_##name = (ret(*) params)dlsym(h, #name);                                    \
	if (pb_p_##name == NULL) {                                                       \
		snprintf(pb_err, sizeof pb_err, "%s: no symbol %s", path, #name);            \
		return pb_err;                                                               \
	}
	PB_FUNCS(PB_RESOLVE)
#undef PB_RESOLVE
#define PB_DATA(var, sym)                                                            \
	var = dlsym(h, sym);                                                             \
	if (var == NULL) {                                                               \
		snprintf(pb_err, sizeof pb_err, "%s: no symbol %s", path, sym);              \
		return pb_err;                                                               \
	}
	PB_DATA(pb_None, "_Py_NoneStruct")
	PB_DATA(pb_True, "_Py_TrueStruct")
	PB_DATA(pb_False, "_Py_FalseStruct")
	PB_DATA(pb_Ellipsis, "_Py_EllipsisObject")
	PB_DATA(pb_NotImplemented, "_Py_NotImplementedStruct")
	PB_DATA(pb_LongType, "PyLong_Type")
	PB_DATA(pb_FloatType, "PyFloat_Type")
	PB_DATA(pb_UnicodeType, "PyUnicode_Type")
	PB_DATA(pb_BytesType, "PyBytes_Type")
	PB_DATA(pb_TupleType, "PyTuple_Type")
	PB_DATA(pb_ListType, "PyList_Type")
	PB_DATA(pb_DictType, "PyDict_Type")
	PB_DATA(pb_BoolType, "PyBool_Type")
	PB_DATA(pb_ComplexType, "PyComplex_Type")
	PB_DATA(pb_FrozenSetType, "PyFrozenSet_Type")
	PB_DATA(pb_SetType, "PySet_Type")
	PB_DATA(pb_SliceType, "PySlice_Type")
#undef PB_DATA
	// exception classes are exported as variables holding the class
#define PB_EXC(var, sym)                                                             \
	{                                                                                \
		PyObject **p = dlsym(h, sym);                                                \
		if (p == NULL) {                                                             \
			snprintf(pb_err, sizeof pb_err, "%s: no symbol %s", path, sym);          \
			return pb_err;                                                           \
		}                                                                            \
		var = (PyObject *)p;                                                         \
	}
	PB_EXC(pb_ExcEOFError, "PyExc_EOFError")
	PB_EXC(pb_ExcTypeError, "PyExc_TypeError")
	PB_EXC(pb_ExcValueError, "PyExc_ValueError")
	PB_EXC(pb_ExcRuntimeError, "PyExc_RuntimeError")
	PB_EXC(pb_ExcOverflowError, "PyExc_OverflowError")
	PB_EXC(pb_ExcStopIteration, "PyExc_StopIteration")
	PB_EXC(pb_ExcKeyboardInterrupt, "PyExc_KeyboardInterrupt")
	PB_EXC(pb_ExcSystemExit, "PyExc_SystemExit")
#undef PB_EXC
	return NULL;
}

// The variables hold the address of the exported PyObject* variable until the
// interpreter is up; pb_resolve_exceptions reads them (the classes exist only then).
void pb_resolve_exceptions(void) {
	PyObject **vars[] = {&pb_ExcEOFError, &pb_ExcTypeError, &pb_ExcValueError, &pb_ExcRuntimeError,
	                     &pb_ExcOverflowError, &pb_ExcStopIteration, &pb_ExcKeyboardInterrupt,
	                     &pb_ExcSystemExit};
	for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
		*vars[i] = *(PyObject **)*vars[i];
	}
}

static __thread PyThreadState *pb_tstate;

void pb_enter(void) {
	if (pb_tstate == NULL) {
		pb_tstate = PyGILState_GetThisThreadState();
		if (pb_tstate == NULL) {
			// the thread's first time: create its thread state (and take the GIL) and keep
			// it, with the GILState counter left at one, for the life of the thread
			PyGILState_Ensure();
			pb_tstate = PyGILState_GetThisThreadState();
			return;
		}
	}
	PyEval_RestoreThread(pb_tstate);
}

void pb_leave(void) { PyEval_SaveThread(); }

struct pb_prober_fds {
	int in, out;
};

static void *pb_gil_prober(void *arg) {
	struct pb_prober_fds fds = *(struct pb_prober_fds *)arg;
	free(arg);
	PyThreadState *ts = NULL;
	for (;;) {
		unsigned char b;
		ssize_t n = read(fds.in, &b, 1);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			return NULL; // the Go end closed: the thread state is left, as at exit
		}
		if (ts == NULL) {
			// the first probe makes the thread state, which takes the GIL (waiting for
			// it here, in a thread Go's scheduler knows nothing of), and keeps it
			PyGILState_Ensure();
		} else {
			PyEval_RestoreThread(ts);
		}
		ts = PyEval_SaveThread();
		while (write(fds.out, &b, 1) < 0 && errno == EINTR) {
		}
	}
}

int pb_start_gil_prober(int in, int out) {
	struct pb_prober_fds *fds = malloc(sizeof *fds);
	if (fds == NULL) {
		return ENOMEM;
	}
	fds->in = in;
	fds->out = out;
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int err = pthread_create(&t, &attr, pb_gil_prober, fds);
	pthread_attr_destroy(&attr);
	if (err != 0) {
		free(fds);
	}
	return err;
}

PyObject *pb_tuple_from(Py_ssize_t n, PyObject **items) {
	PyObject *t = PyTuple_New(n);
	if (t == NULL) {
		for (Py_ssize_t i = 0; i < n; i++) Py_DecRef(items[i]);
		return NULL;
	}
	for (Py_ssize_t i = 0; i < n; i++) PyTuple_SetItem(t, i, items[i]);
	return t;
}

PyObject *pb_list_from(Py_ssize_t n, PyObject **items) {
	PyObject *l = PyList_New(n);
	if (l == NULL) {
		for (Py_ssize_t i = 0; i < n; i++) Py_DecRef(items[i]);
		return NULL;
	}
	for (Py_ssize_t i = 0; i < n; i++) PyList_SetItem(l, i, items[i]);
	return l;
}

Py_ssize_t pb_tuple_items(PyObject *t, PyObject **out, Py_ssize_t max) {
	Py_ssize_t n = PyTuple_Size(t);
	for (Py_ssize_t i = 0; i < n && i < max; i++) out[i] = PyTuple_GetItem(t, i);
	return n;
}

PyObject *pb_call(PyObject *f, Py_ssize_t n, PyObject **args, PyObject *kwargs) {
	PyObject *t = PyTuple_New(n);
	if (t == NULL) return NULL;
	for (Py_ssize_t i = 0; i < n; i++) {
		Py_IncRef(args[i]);
		PyTuple_SetItem(t, i, args[i]);
	}
	PyObject *r = PyObject_Call(f, t, kwargs);
	Py_DecRef(t);
	return r;
}

PyObject *pb_new_ref(PyObject *o) {
	Py_IncRef(o);
	return o;
}

#include "export.h"

static PyObject *pb_go_trampoline(PyObject *self, PyObject *args) {
	return pbGoCall((uintptr_t)PyCapsule_GetPointer(self, NULL), args);
}

static void pb_go_capsule_free(PyObject *capsule) {
	pbGoRelease((uintptr_t)PyCapsule_GetPointer(capsule, NULL));
}

static PyMethodDef pb_go_call_def = {"go_func", pb_go_trampoline, PB_METH_VARARGS, NULL};

PyObject *pb_go_func(uintptr_t h) {
	PyObject *self = PyCapsule_New((void *)h, NULL, pb_go_capsule_free);
	if (self == NULL) return NULL;
	PyObject *f = PyCFunction_NewEx(&pb_go_call_def, self, NULL);
	Py_DecRef(self);
	return f;
}

double pb_seconds_arg(PyObject *args) {
	if (pb_type(args) != pb_TupleType || PyTuple_Size(args) != 1) return -1;
	PyObject *v = PyTuple_GetItem(args, 0);
	if (pb_type(v) == pb_FloatType) return PyFloat_AsDouble(v);
	if (pb_type(v) == pb_LongType) {
		int overflow;
		long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
		if (overflow || (n == -1 && PyErr_Occurred() != NULL)) {
			PyErr_Clear();
			return -1;
		}
		return (double)n;
	}
	return -1;
}
