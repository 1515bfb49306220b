// Requests served in C: a connection's most frequent requests — GETATTR, CALL and
// CALLATTR on an object of its object table, with plain values for arguments — served
// by the C channel (channel.c) as the Python peer's handlers would serve them, without
// its request path (pybridge.protocol): the same lookups, the same access policy, the
// same call, and a result that is a brine value goes back without Python running at
// all. Anything else, or anything unusual, is left to Python before anything is run:
// another handler, a reference of the client among the arguments, a name that is not a
// str, an access policy other than "every attribute" (rpyc's classic mode), an object
// whose class overrides access (_rpyc_getattr) or whose class Python has not looked at
// yet. Once the object's code has run, what C cannot send itself (a result that goes by
// reference, an exception) goes to Python as a message of its own (pb_served_*), for
// the reply that Python's handler would have made of it.

#include "capi.h"

enum {
	MSG_REPLY = 2,
	LABEL_VALUE = 1,
	LABEL_TUPLE = 2,
	LABEL_LOCAL_REF = 3,
	HANDLE_GETATTR = 4,
	HANDLE_CALL = 7,
	HANDLE_CALLATTR = 8,
};

// What Python hands the channel (pybridge.protocol.Connection._serve_in_c): the
// connection, its object table's slots (id_pack -> [obj, count]), the cache of access
// overrides ((class, "_rpyc_getattr") -> override or None), the str objects of the
// names looked up, and what the receive lock needs: its release and acquire (with the
// arguments (False,), made once), the queue of DELs, the connection's count of threads
// waiting to read, and its method that wakes them.
enum {
	FAST_CONN,
	FAST_SLOTS,
	FAST_OVERRIDES,
	FAST_CONFIG,        // "_config"
	FAST_ALLOW_GETATTR, // "allow_getattr"
	FAST_ALLOW_ALL,     // "allow_all_attrs"
	FAST_ALLOW_EXPOSED, // "allow_exposed_attrs"
	FAST_GETATTR_HOOK,  // "_rpyc_getattr"
	FAST_WAITERS,       // "_waiters"
	FAST_LOCK_RELEASE,  // _recvlock.release
	FAST_LOCK_ACQUIRE,  // _recvlock.acquire
	FAST_NO_WAIT,       // (False,): acquire's arguments to take it only if free
	FAST_DELS,          // _dels
	FAST_NOTIFY,        // _notify_waiters
	FAST_ITEMS
};

int pb_serve_state_ok(PyObject *fast) {
	if (pb_type(fast) != pb_TupleType || PyTuple_Size(fast) != FAST_ITEMS) return 0;
	if (pb_type(PyTuple_GetItem(fast, FAST_SLOTS)) != pb_DictType) return 0;
	if (pb_type(PyTuple_GetItem(fast, FAST_OVERRIDES)) != pb_DictType) return 0;
	for (int i = FAST_CONFIG; i <= FAST_WAITERS; i++) {
		if (pb_type(PyTuple_GetItem(fast, i)) != pb_UnicodeType) return 0;
	}
	return pb_type(PyTuple_GetItem(fast, FAST_NO_WAIT)) == pb_TupleType;
}

// int_is: o is an int equal to want.
static int int_is(PyObject *o, long long want) {
	if (pb_type(o) != pb_LongType) return 0;
	int overflow;
	long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
	if (overflow || (v == -1 && PyErr_Occurred() != NULL)) {
		PyErr_Clear();
		return 0;
	}
	return v == want;
}

// unboxed is the value of item (label, value) when its label is want (borrowed), else NULL.
static PyObject *unboxed(PyObject *item, long long want) {
	if (pb_type(item) != pb_TupleType || PyTuple_Size(item) != 2) return NULL;
	return int_is(PyTuple_GetItem(item, 0), want) ? PyTuple_GetItem(item, 1) : NULL;
}

// dict_item is d[key] (borrowed), NULL when missing or when looking raised (cleared).
static PyObject *dict_item(PyObject *d, PyObject *key) {
	PyObject *v = PyDict_GetItemWithError(d, key);
	if (v == NULL) PyErr_Clear();
	return v;
}

// local_object is the object the table holds under id_pack (a new reference), as
// ObjectTable.get finds it; NULL for anything that is not plainly there.
static PyObject *local_object(PyObject *fast, PyObject *id_pack) {
	if (id_pack == NULL || pb_type(id_pack) != pb_TupleType || PyTuple_Size(id_pack) != 3) return NULL;
	PyObject *slot = dict_item(PyTuple_GetItem(fast, FAST_SLOTS), id_pack);
	if (slot == NULL || pb_type(slot) != pb_ListType || PyList_Size(slot) < 1) return NULL;
	return pb_new_ref(PyList_GetItem(slot, 0));
}

// any_attribute: the access policy lets GETATTR get any attribute of obj by its own
// name (Handlers._access_attr with rpyc's classic settings: allow_getattr and
// allow_all_attrs True, allow_exposed_attrs False, no _rpyc_getattr in obj's class).
// The connection's _config is read each time: hosted code may change it.
static int any_attribute(PyObject *fast, PyObject *obj) {
	PyObject *config = PyObject_GetAttr(PyTuple_GetItem(fast, FAST_CONN), PyTuple_GetItem(fast, FAST_CONFIG));
	if (config == NULL) {
		PyErr_Clear();
		return 0;
	}
	int ok = pb_type(config) == pb_DictType &&
		dict_item(config, PyTuple_GetItem(fast, FAST_ALLOW_GETATTR)) == pb_True &&
		dict_item(config, PyTuple_GetItem(fast, FAST_ALLOW_ALL)) == pb_True &&
		dict_item(config, PyTuple_GetItem(fast, FAST_ALLOW_EXPOSED)) == pb_False;
	Py_DecRef(config);
	if (!ok) return 0;
	PyObject *items[2] = {pb_new_ref(pb_type(obj)), pb_new_ref(PyTuple_GetItem(fast, FAST_GETATTR_HOOK))};
	PyObject *key = pb_tuple_from(2, items);
	if (key == NULL) {
		PyErr_Clear();
		return 0;
	}
	ok = dict_item(PyTuple_GetItem(fast, FAST_OVERRIDES), key) == pb_None;
	Py_DecRef(key);
	return ok;
}

// kwargs_dict is dict(kwargs) for a tuple of (str, value) pairs (a new reference; NULL
// with nothing to do for an empty tuple); *ok is 0 for anything else.
static PyObject *kwargs_dict(PyObject *kwargs, int *ok) {
	*ok = 0;
	if (kwargs == NULL || pb_type(kwargs) != pb_TupleType) return NULL;
	Py_ssize_t n = PyTuple_Size(kwargs);
	*ok = 1;
	if (n == 0) return NULL;
	PyObject *d = PyDict_New();
	if (d == NULL) {
		PyErr_Clear();
		*ok = 0;
		return NULL;
	}
	for (Py_ssize_t i = 0; i < n; i++) {
		PyObject *pair = PyTuple_GetItem(kwargs, i);
		if (pb_type(pair) != pb_TupleType || PyTuple_Size(pair) != 2 ||
		    pb_type(PyTuple_GetItem(pair, 0)) != pb_UnicodeType ||
		    PyDict_SetItem(d, PyTuple_GetItem(pair, 0), PyTuple_GetItem(pair, 1)) < 0) {
			PyErr_Clear();
			Py_DecRef(d);
			*ok = 0;
			return NULL;
		}
	}
	return d;
}

PyObject *pb_served(long long kind, PyObject *seq, PyObject *value) {
	PyObject *items[3] = {PyLong_FromLongLong(kind), pb_new_ref(seq), value};
	if (items[0] == NULL) {
		Py_DecRef(items[1]);
		Py_DecRef(items[2]);
		return NULL;
	}
	return pb_tuple_from(3, items);
}

PyObject *pb_served_raised(PyObject *seq) {
	PyObject *t, *v, *tb;
	PyErr_Fetch(&t, &v, &tb);
	PyErr_NormalizeException(&t, &v, &tb);
	if (v == NULL) { // cannot be: an exception without a value
		PyErr_Restore(t, v, tb);
		return NULL;
	}
	if (tb != NULL) PyException_SetTraceback(v, tb);
	if (t != NULL) Py_DecRef(t);
	if (tb != NULL) Py_DecRef(tb);
	return pb_served(PB_SERVED_RAISED, seq, v);
}

void pb_request_clear(pb_request *req) {
	PyObject **refs[] = {&req->seq, &req->obj, &req->name, &req->args, &req->kw};
	for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) {
		if (*refs[i] != NULL) Py_DecRef(*refs[i]);
		*refs[i] = NULL;
	}
	req->handler = 0;
}

int pb_serve_prepare(PyObject *fast, PyObject *msg, pb_request *req) {
	*req = (pb_request){0};
	if (pb_type(msg) != pb_TupleType || PyTuple_Size(msg) != 3) return 0;
	PyObject *seq = PyTuple_GetItem(msg, 1), *body = PyTuple_GetItem(msg, 2);
	if (pb_type(body) != pb_TupleType || PyTuple_Size(body) != 2) return 0;
	PyObject *h = PyTuple_GetItem(body, 0);
	int handler = int_is(h, HANDLE_GETATTR) ? HANDLE_GETATTR
		: int_is(h, HANDLE_CALL)            ? HANDLE_CALL
		: int_is(h, HANDLE_CALLATTR)        ? HANDLE_CALLATTR
		                                    : 0;
	PyObject *items = unboxed(PyTuple_GetItem(body, 1), LABEL_TUPLE);
	if (handler == 0 || items == NULL || pb_type(items) != pb_TupleType) return 0;
	// the handler's parameters: (obj, name), (obj, args, kwargs=()), (obj, name, args, kwargs=())
	Py_ssize_t n = PyTuple_Size(items), want = handler == HANDLE_GETATTR ? 2 : handler == HANDLE_CALL ? 3 : 4;
	if (n != want && !(handler != HANDLE_GETATTR && n == want - 1)) return 0;
	PyObject *values[4] = {NULL, NULL, NULL, NULL};
	for (Py_ssize_t i = 1; i < n; i++) {
		values[i] = unboxed(PyTuple_GetItem(items, i), LABEL_VALUE);
		if (values[i] == NULL) return 0;
	}
	PyObject *name = handler == HANDLE_CALL ? NULL : values[1];
	PyObject *args = handler == HANDLE_CALL ? values[1] : values[2];
	PyObject *kwargs = handler == HANDLE_CALL ? values[2] : values[3];
	if (name != NULL && pb_type(name) != pb_UnicodeType) return 0;
	if (args != NULL && pb_type(args) != pb_TupleType) return 0;
	PyObject *obj = local_object(fast, unboxed(PyTuple_GetItem(items, 0), LABEL_LOCAL_REF));
	if (obj == NULL) return 0;
	if (name != NULL && !any_attribute(fast, obj)) {
		Py_DecRef(obj);
		return 0;
	}
	PyObject *kw = NULL;
	if (handler != HANDLE_GETATTR && n == want) {
		int ok;
		kw = kwargs_dict(kwargs, &ok);
		if (!ok) {
			Py_DecRef(obj);
			return 0;
		}
	}
	req->handler = handler;
	req->seq = pb_new_ref(seq);
	req->obj = obj;
	req->name = name != NULL ? pb_new_ref(name) : NULL;
	req->args = args != NULL ? pb_new_ref(args) : NULL;
	req->kw = kw;
	return 1;
}

PyObject *pb_serve_run(pb_request *req) {
	PyObject *result = pb_new_ref(req->obj);
	if (req->name != NULL) {
		PyObject *attr = PyObject_GetAttr(result, req->name);
		Py_DecRef(result);
		result = attr;
	}
	if (result != NULL && req->handler != HANDLE_GETATTR) {
		PyObject *f = result;
		PyObject *empty = req->args == NULL ? PyTuple_New(0) : NULL;
		PyObject *args = req->args != NULL ? req->args : empty;
		result = args == NULL ? NULL : PyObject_Call(f, args, req->kw);
		if (empty != NULL) Py_DecRef(empty);
		Py_DecRef(f);
	}
	return result;
}

// plain: o goes by value to an rpyc 5.x/6.x peer, as pybridge.boxing.box decides (a
// value of an exact simple type, or a tuple of such), and brine.c can dump it. Type
// objects are not (brine.c dumps some for rpyc-ng); frozensets and slices are left to
// Python, as are tuples nested deeper than a few levels.
static int plain(PyObject *o, int depth) {
	void *t = pb_type(o);
	if (t == pb_UnicodeType || t == pb_LongType || t == pb_FloatType || t == pb_BoolType || t == pb_BytesType ||
	    t == pb_ComplexType || o == pb_None || o == pb_Ellipsis || o == pb_NotImplemented) {
		return 1;
	}
	if (t != pb_TupleType || depth >= 8) return 0;
	Py_ssize_t n = PyTuple_Size(o);
	for (Py_ssize_t i = 0; i < n; i++) {
		if (!plain(PyTuple_GetItem(o, i), depth + 1)) return 0;
	}
	return 1;
}

int pb_serve_plain(PyObject *result) { return plain(result, 0); }

PyObject *pb_serve_reply(PyObject *seq, PyObject *result) {
	PyObject *boxed[2] = {PyLong_FromLongLong(LABEL_VALUE), result};
	if (boxed[0] == NULL) {
		Py_DecRef(result);
		return NULL;
	}
	PyObject *body = pb_tuple_from(2, boxed);
	return body == NULL ? NULL : pb_served(MSG_REPLY, seq, body);
}

PyObject *pb_served_result(PyObject *reply) {
	PyObject *body = PyTuple_GetItem(reply, 2);
	PyObject *out = pb_served(PB_SERVED_RESULT, PyTuple_GetItem(reply, 1), pb_new_ref(PyTuple_GetItem(body, 1)));
	Py_DecRef(reply);
	return out;
}

PyObject *pb_served_reply(PyObject *reply) {
	PyObject *out = pb_served(PB_SERVED_REPLY, PyTuple_GetItem(reply, 1), pb_new_ref(PyTuple_GetItem(reply, 2)));
	Py_DecRef(reply);
	return out;
}

// ---- the connection's receive lock (Connection._receive_locked's part of it)

// call0 calls f(): 0, or -1 with the exception set.
static int call0(PyObject *f) {
	PyObject *args = PyTuple_New(0);
	PyObject *r = args == NULL ? NULL : PyObject_Call(f, args, NULL);
	if (args != NULL) Py_DecRef(args);
	if (r == NULL) return -1;
	Py_DecRef(r);
	return 0;
}

int pb_serve_let_go(PyObject *fast) {
	if (call0(PyTuple_GetItem(fast, FAST_LOCK_RELEASE)) < 0) return -1;
	// threads waiting to read are woken, as the lock went (Connection._notify_waiters)
	PyObject *waiters = PyObject_GetAttr(PyTuple_GetItem(fast, FAST_CONN), PyTuple_GetItem(fast, FAST_WAITERS));
	int none = waiters != NULL && int_is(waiters, 0);
	if (waiters != NULL) Py_DecRef(waiters);
	PyErr_Clear();
	if (!none && call0(PyTuple_GetItem(fast, FAST_NOTIFY)) < 0) {
		PyErr_Clear(); // cannot be; the waiters wake at the next message
	}
	return 0;
}

int pb_serve_take_back(PyObject *fast) {
	// DELs waiting go out with the reply, sent by Python (serve_all)
	Py_ssize_t dels = PyObject_Size(PyTuple_GetItem(fast, FAST_DELS));
	if (dels != 0) {
		PyErr_Clear();
		return 0;
	}
	PyObject *r = PyObject_Call(PyTuple_GetItem(fast, FAST_LOCK_ACQUIRE), PyTuple_GetItem(fast, FAST_NO_WAIT), NULL);
	if (r == NULL) {
		PyErr_Clear();
		return 0;
	}
	int taken = r == pb_True;
	Py_DecRef(r);
	return taken;
}

int pb_serve_wait_back(PyObject *fast) { return call0(PyTuple_GetItem(fast, FAST_LOCK_ACQUIRE)); }

int pb_serve_for_test(PyObject *state, PyObject *msg, PyObject **out) {
	pb_request req;
	*out = NULL;
	if (!pb_serve_prepare(state, msg, &req)) return 0;
	PyObject *seq = pb_new_ref(req.seq);
	PyObject *result = pb_serve_run(&req);
	pb_request_clear(&req);
	if (result == NULL) {
		*out = pb_served_raised(seq);
	} else if (!pb_serve_plain(result)) {
		*out = pb_served(PB_SERVED_RESULT, seq, result);
	} else {
		*out = pb_serve_reply(seq, result);
	}
	Py_DecRef(seq);
	return 1;
}
