// Brine straight between bytes and Python objects, for the messages of a connection
// served in this process: one call per message instead of a Go value per item and a
// C call per object. The format and the limits are those of package brine (its
// decoder is the reference: whatever this code refuses, Go decodes again and decides).

#include <stdlib.h>
#include <string.h>

#include "capi.h"

enum {
	TAG_NONE = 0x00, TAG_EMPTY_BYTES = 0x01, TAG_EMPTY_TUPLE = 0x02, TAG_TRUE = 0x03,
	TAG_FALSE = 0x04, TAG_NOT_IMPLEMENTED = 0x05, TAG_ELLIPSIS = 0x06, TAG_STR = 0x08,
	TAG_BYTES1 = 0x0a, TAG_BYTES4 = 0x0d, TAG_BYTES_L1 = 0x0e, TAG_BYTES_L4 = 0x0f,
	TAG_TUPLE1 = 0x10, TAG_TUPLE4 = 0x13, TAG_TUPLE_L1 = 0x14, TAG_TUPLE_L4 = 0x15,
	TAG_INT_L1 = 0x16, TAG_INT_L4 = 0x17, TAG_FLOAT = 0x18, TAG_SLICE = 0x19,
	TAG_FROZENSET = 0x1a, TAG_COMPLEX = 0x1b,
	TAG_NONE_TYPE = 0x1c, TAG_INT_TYPE = 0x1d, TAG_BOOL_TYPE = 0x1e, TAG_FLOAT_TYPE = 0x1f,
	TAG_BYTES_TYPE = 0xf0, TAG_STR_TYPE = 0xf1, TAG_COMPLEX_TYPE = 0xf2,
	TAG_NOT_IMPLEMENTED_TYPE = 0xf3, TAG_ELLIPSIS_TYPE = 0xf4,
	IMM_MIN = -0x30, IMM_MAX = 0x9f, IMM_OFFSET = 0x50,
};

// ---- loading

typedef struct {
	const unsigned char *p, *end;
	long long items;
	const pb_limits *lim;
} pb_reader;

static PyObject *load_value(pb_reader *r, int depth);

static int take(pb_reader *r, size_t n, const unsigned char **out) {
	if ((size_t)(r->end - r->p) < n) return -1;
	*out = r->p;
	r->p += n;
	return 0;
}

static unsigned long long be(const unsigned char *b, int n) {
	unsigned long long v = 0;
	for (int i = 0; i < n; i++) v = v << 8 | b[i];
	return v;
}

// length reads the 1- or 4-byte length after a tag.
static long long length(pb_reader *r, int long4) {
	const unsigned char *b;
	if (take(r, long4 ? 4 : 1, &b) < 0) return -1;
	unsigned long long n = be(b, long4 ? 4 : 1);
	return n > 0x7fffffffULL ? -1 : (long long)n;
}

static PyObject *load_bytes(pb_reader *r, long long n) {
	const unsigned char *b;
	if (n < 0 || take(r, (size_t)n, &b) < 0) return NULL;
	return PyBytes_FromStringAndSize((const char *)b, n);
}

static PyObject *load_tuple(pb_reader *r, long long n, int depth) {
	if (n < 0) return NULL;
	if (r->lim->max_depth > 0 && depth >= r->lim->max_depth) return NULL;
	if (n > r->end - r->p) return NULL; // every item takes a byte at least
	PyObject *t = PyTuple_New(n);
	if (t == NULL) return NULL;
	for (long long i = 0; i < n; i++) {
		PyObject *v = load_value(r, depth + 1);
		if (v == NULL) {
			Py_DecRef(t);
			return NULL;
		}
		PyTuple_SetItem(t, i, v);
	}
	return t;
}

// load_int reads the ASCII decimal Python's str(int) writes: an optional '-', digits.
static PyObject *load_int(pb_reader *r, long long n) {
	if (n < 0) return NULL;
	if (r->lim->max_int_digits > 0 && n > (long long)r->lim->max_int_digits + 1) return NULL;
	const unsigned char *b;
	if (take(r, (size_t)n, &b) < 0) return NULL;
	int neg = n > 0 && b[0] == '-';
	if (n - neg == 0) return NULL;
	// the limit counts digits, not the sign (CPython's own limit on str -> int does)
	if (r->lim->max_int_digits > 0 && n - neg > (long long)r->lim->max_int_digits) return NULL;
	for (long long i = neg; i < n; i++) {
		if (b[i] < '0' || b[i] > '9') return NULL;
	}
	if (n - neg <= 18) {
		long long v = 0;
		for (long long i = neg; i < n; i++) v = v * 10 + (b[i] - '0');
		return PyLong_FromLongLong(neg ? -v : v);
	}
	char small[64];
	char *s = n < (long long)sizeof small ? small : malloc((size_t)n + 1);
	if (s == NULL) return NULL;
	memcpy(s, b, (size_t)n);
	s[n] = 0;
	PyObject *v = PyLong_FromString(s, NULL, 10);
	if (s != small) free(s);
	return v;
}

static double load_double(const unsigned char *b) {
	unsigned long long bits = be(b, 8);
	double d;
	memcpy(&d, &bits, sizeof d);
	return d;
}

static PyObject *new_ref(void *o) {
	Py_IncRef(o);
	return o;
}

static PyObject *load_value(pb_reader *r, int depth) {
	// the C stack bounds nesting even when lim does not (the general way then reports)
	if (depth > PB_BRINE_MAX_DEPTH) return NULL;
	if (r->lim->max_items > 0 && ++r->items > r->lim->max_items) return NULL;
	const unsigned char *b;
	if (take(r, 1, &b) < 0) return NULL;
	int tag = b[0];
	if (tag >= IMM_MIN + IMM_OFFSET && tag <= IMM_MAX + IMM_OFFSET) {
		return PyLong_FromLongLong(tag - IMM_OFFSET);
	}
	if (tag >= TAG_BYTES1 && tag <= TAG_BYTES4) return load_bytes(r, tag - TAG_BYTES1 + 1);
	if (tag >= TAG_TUPLE1 && tag <= TAG_TUPLE4) return load_tuple(r, tag - TAG_TUPLE1 + 1, depth);
	switch (tag) {
	case TAG_NONE: return new_ref(pb_None);
	case TAG_EMPTY_BYTES: return PyBytes_FromStringAndSize(NULL, 0);
	case TAG_EMPTY_TUPLE: return PyTuple_New(0);
	case TAG_TRUE: return new_ref(pb_True);
	case TAG_FALSE: return new_ref(pb_False);
	case TAG_NOT_IMPLEMENTED: return new_ref(pb_NotImplemented);
	case TAG_ELLIPSIS: return new_ref(pb_Ellipsis);
	case TAG_STR: {
		// a bytes item holding UTF-8 follows (counted as an item of its own, as Go does)
		if (r->lim->max_items > 0 && ++r->items > r->lim->max_items) return NULL;
		if (take(r, 1, &b) < 0) return NULL;
		long long n;
		if (b[0] == TAG_EMPTY_BYTES) n = 0;
		else if (b[0] >= TAG_BYTES1 && b[0] <= TAG_BYTES4) n = b[0] - TAG_BYTES1 + 1;
		else if (b[0] == TAG_BYTES_L1 || b[0] == TAG_BYTES_L4) n = length(r, b[0] == TAG_BYTES_L4);
		else return NULL;
		if (n < 0 || take(r, (size_t)n, &b) < 0) return NULL;
		return PyUnicode_FromStringAndSize((const char *)b, n); // strict UTF-8
	}
	case TAG_BYTES_L1:
	case TAG_BYTES_L4: return load_bytes(r, length(r, tag == TAG_BYTES_L4));
	case TAG_TUPLE_L1:
	case TAG_TUPLE_L4: return load_tuple(r, length(r, tag == TAG_TUPLE_L4), depth);
	case TAG_INT_L1:
	case TAG_INT_L4: return load_int(r, length(r, tag == TAG_INT_L4));
	case TAG_FLOAT:
		if (take(r, 8, &b) < 0) return NULL;
		return PyFloat_FromDouble(load_double(b));
	case TAG_COMPLEX:
		if (take(r, 16, &b) < 0) return NULL;
		return PyComplex_FromDoubles(load_double(b), load_double(b + 8));
	case TAG_SLICE:
	case TAG_FROZENSET: {
		PyObject *t = load_value(r, depth + 1);
		if (t == NULL) return NULL;
		PyObject *v = NULL;
		if (pb_type(t) == pb_TupleType) {
			if (tag == TAG_FROZENSET) {
				v = PyFrozenSet_New(t);
			} else if (PyTuple_Size(t) == 3) {
				v = PySlice_New(PyTuple_GetItem(t, 0), PyTuple_GetItem(t, 1), PyTuple_GetItem(t, 2));
			}
		}
		Py_DecRef(t);
		return v;
	}
	case TAG_NONE_TYPE: return new_ref(pb_type(pb_None));
	case TAG_INT_TYPE: return new_ref(pb_LongType);
	case TAG_BOOL_TYPE: return new_ref(pb_BoolType);
	case TAG_FLOAT_TYPE: return new_ref(pb_FloatType);
	case TAG_BYTES_TYPE: return new_ref(pb_BytesType);
	case TAG_STR_TYPE: return new_ref(pb_UnicodeType);
	case TAG_COMPLEX_TYPE: return new_ref(pb_ComplexType);
	case TAG_NOT_IMPLEMENTED_TYPE: return new_ref(pb_type(pb_NotImplemented));
	case TAG_ELLIPSIS_TYPE: return new_ref(pb_type(pb_Ellipsis));
	}
	return NULL;
}

PyObject *pb_brine_load(const unsigned char *p, size_t n, pb_limits lim) {
	pb_reader r = {p, p + n, 0, &lim};
	PyObject *v = load_value(&r, 0);
	if (v != NULL && r.p != r.end) {
		Py_DecRef(v);
		v = NULL;
	}
	if (v == NULL) PyErr_Clear();
	return v;
}

PyObject *pb_brine_message(long long kind, long long seq, PyObject *body) {
	PyObject *items[3] = {PyLong_FromLongLong(kind), PyLong_FromLongLong(seq), body};
	if (items[0] == NULL || items[1] == NULL) {
		for (int i = 0; i < 3; i++) {
			if (items[i] != NULL) Py_DecRef(items[i]);
		}
		return NULL;
	}
	return pb_tuple_from(3, items);
}

// ---- dumping

static int grow(pb_buf *b, size_t n) {
	if (b->max > 0 && n > b->max - b->len) return -1;
	if (b->cap - b->len >= n) return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->len < n) {
		if (cap > ((size_t)-1) / 2) return -1;
		cap *= 2;
	}
	unsigned char *p = realloc(b->p, cap);
	if (p == NULL) return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

static int put(pb_buf *b, const void *p, size_t n) {
	if (grow(b, n) < 0) return -1;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

static int put_byte(pb_buf *b, int c) {
	unsigned char x = (unsigned char)c;
	return put(b, &x, 1);
}

static int put_be(pb_buf *b, unsigned long long v, int n) {
	unsigned char x[8];
	for (int i = n - 1; i >= 0; i--, v >>= 8) x[i] = (unsigned char)v;
	return put(b, x, (size_t)n);
}

// put_len writes a length-prefixed header: the short tag for 1..4, the 1- or 4-byte
// length forms beyond (empty is the caller's).
static int put_len(pb_buf *b, size_t n, int tag1, int tag_l1, int tag_l4) {
	if (n > 0xffffffffULL) return -1;
	if (n <= 4) return put_byte(b, tag1 + (int)n - 1);
	if (n < 256) return put_byte(b, tag_l1) < 0 ? -1 : put_byte(b, (int)n);
	return put_byte(b, tag_l4) < 0 ? -1 : put_be(b, n, 4);
}

static int put_bytes(pb_buf *b, const char *s, size_t n) {
	if (n == 0) return put_byte(b, TAG_EMPTY_BYTES);
	if (put_len(b, n, TAG_BYTES1, TAG_BYTES_L1, TAG_BYTES_L4) < 0) return -1;
	return put(b, s, n);
}

static int put_decimal(pb_buf *b, const char *digits, size_t n) {
	if (n < 256) {
		if (put_byte(b, TAG_INT_L1) < 0 || put_byte(b, (int)n) < 0) return -1;
	} else if (put_byte(b, TAG_INT_L4) < 0 || put_be(b, n, 4) < 0) {
		return -1;
	}
	return put(b, digits, n);
}

static int put_double(pb_buf *b, double d) {
	unsigned long long bits;
	memcpy(&bits, &d, sizeof bits);
	return put_be(b, bits, 8);
}

static int dump_value(PyObject *o, pb_buf *b, int depth);

static int put_tuple_header(pb_buf *b, Py_ssize_t n) {
	if (n == 0) return put_byte(b, TAG_EMPTY_TUPLE);
	return put_len(b, (size_t)n, TAG_TUPLE1, TAG_TUPLE_L1, TAG_TUPLE_L4);
}

static int dump_int(PyObject *o, pb_buf *b) {
	int overflow;
	long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
	if (overflow == 0) {
		if (v == -1 && PyErr_Occurred() != NULL) return -1;
		if (v >= IMM_MIN && v <= IMM_MAX) return put_byte(b, (int)(v + IMM_OFFSET));
		char s[24];
		int n = 0;
		unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
		char rev[24];
		do {
			rev[n++] = (char)('0' + u % 10);
			u /= 10;
		} while (u);
		int k = 0;
		if (v < 0) s[k++] = '-';
		while (n) s[k++] = rev[--n];
		return put_decimal(b, s, (size_t)k);
	}
	PyObject *str = PyObject_Str(o);
	if (str == NULL) return -1;
	Py_ssize_t n;
	const char *s = PyUnicode_AsUTF8AndSize(str, &n);
	int rc = s == NULL ? -1 : put_decimal(b, s, (size_t)n);
	Py_DecRef(str);
	return rc;
}

static int dump_items(PyObject *o, pb_buf *b, int depth) {
	Py_ssize_t n = PyTuple_Size(o);
	if (put_tuple_header(b, n) < 0) return -1;
	for (Py_ssize_t i = 0; i < n; i++) {
		if (dump_value(PyTuple_GetItem(o, i), b, depth + 1) < 0) return -1;
	}
	return 0;
}

static int dump_frozenset(PyObject *o, pb_buf *b, int depth) {
	Py_ssize_t n = PyObject_Size(o);
	if (n < 0 || put_byte(b, TAG_FROZENSET) < 0 || put_tuple_header(b, n) < 0) return -1;
	PyObject *it = PyObject_GetIter(o);
	if (it == NULL) return -1;
	Py_ssize_t seen = 0;
	PyObject *x;
	int rc = 0;
	while (rc == 0 && (x = PyIter_Next(it)) != NULL) {
		rc = ++seen > n ? -1 : dump_value(x, b, depth + 1);
		Py_DecRef(x);
	}
	Py_DecRef(it);
	if (rc < 0 || PyErr_Occurred() != NULL || seen != n) return -1;
	return 0;
}

static int dump_slice(PyObject *o, pb_buf *b, int depth) {
	if (put_byte(b, TAG_SLICE) < 0 || put_tuple_header(b, 3) < 0) return -1;
	static const char *names[3] = {"start", "stop", "step"};
	for (int i = 0; i < 3; i++) {
		PyObject *x = PyObject_GetAttrString(o, names[i]);
		if (x == NULL) return -1;
		int rc = dump_value(x, b, depth + 1);
		Py_DecRef(x);
		if (rc < 0) return -1;
	}
	return 0;
}

// dump_value writes the exact types of brine's value set (what the Go Decoder reads,
// with Types and without Lists); anything else is -1.
static int dump_value(PyObject *o, pb_buf *b, int depth) {
	if (depth > PB_BRINE_MAX_DEPTH) return -1;
	void *t = pb_type(o);
	if (t == pb_UnicodeType) {
		Py_ssize_t n;
		const char *s = PyUnicode_AsUTF8AndSize(o, &n);
		if (s == NULL || put_byte(b, TAG_STR) < 0) return -1;
		return put_bytes(b, s, (size_t)n);
	}
	if (t == pb_LongType) return dump_int(o, b);
	if (t == pb_TupleType) return dump_items(o, b, depth);
	if (t == pb_BoolType) return put_byte(b, o == pb_True ? TAG_TRUE : TAG_FALSE);
	if (t == pb_FloatType) {
		return put_byte(b, TAG_FLOAT) < 0 ? -1 : put_double(b, PyFloat_AsDouble(o));
	}
	if (t == pb_BytesType) {
		char *s;
		Py_ssize_t n;
		if (PyBytes_AsStringAndSize(o, &s, &n) < 0) return -1;
		return put_bytes(b, s, (size_t)n);
	}
	if (t == pb_ComplexType) {
		if (put_byte(b, TAG_COMPLEX) < 0 || put_double(b, PyComplex_RealAsDouble(o)) < 0) return -1;
		return put_double(b, PyComplex_ImagAsDouble(o));
	}
	if (t == pb_FrozenSetType) return dump_frozenset(o, b, depth);
	if (t == pb_SliceType) return dump_slice(o, b, depth);
	if (o == pb_None) return put_byte(b, TAG_NONE);
	if (o == pb_Ellipsis) return put_byte(b, TAG_ELLIPSIS);
	if (o == pb_NotImplemented) return put_byte(b, TAG_NOT_IMPLEMENTED);
	if ((void *)o == pb_LongType) return put_byte(b, TAG_INT_TYPE);
	if ((void *)o == pb_UnicodeType) return put_byte(b, TAG_STR_TYPE);
	if ((void *)o == pb_BoolType) return put_byte(b, TAG_BOOL_TYPE);
	if ((void *)o == pb_FloatType) return put_byte(b, TAG_FLOAT_TYPE);
	if ((void *)o == pb_BytesType) return put_byte(b, TAG_BYTES_TYPE);
	if ((void *)o == pb_type(pb_None)) return put_byte(b, TAG_NONE_TYPE);
	if ((void *)o == pb_ComplexType) return put_byte(b, TAG_COMPLEX_TYPE);
	if ((void *)o == pb_type(pb_NotImplemented)) return put_byte(b, TAG_NOT_IMPLEMENTED_TYPE);
	if ((void *)o == pb_type(pb_Ellipsis)) return put_byte(b, TAG_ELLIPSIS_TYPE);
	return -1;
}

int pb_brine_dump(PyObject *o, pb_buf *b) {
	size_t start = b->len;
	if (dump_value(o, b, 0) == 0) return 0;
	b->len = start;
	PyErr_Clear();
	return -1;
}

// message_header reads args (msg, seq, body) with msg and seq ints of 64 bits into
// b->kind and b->seq: -1 (no exception left set) for anything else.
static int message_header(PyObject *args, pb_buf *b) {
	if (pb_type(args) != pb_TupleType || PyTuple_Size(args) != 3) return -1;
	PyObject *k = PyTuple_GetItem(args, 0), *s = PyTuple_GetItem(args, 1);
	if (pb_type(k) != pb_LongType || pb_type(s) != pb_LongType) return -1;
	int o1, o2;
	b->kind = PyLong_AsLongLongAndOverflow(k, &o1);
	b->seq = PyLong_AsLongLongAndOverflow(s, &o2);
	if (o1 || o2 || PyErr_Occurred() != NULL) {
		PyErr_Clear();
		return -1;
	}
	return 0;
}

int pb_brine_dump_message(PyObject *args, pb_buf *b) {
	if (message_header(args, b) < 0) return -1;
	return pb_brine_dump(PyTuple_GetItem(args, 2), b);
}

int pb_brine_dump_frame(PyObject *args, pb_buf *b, int layout) {
	b->len = 0;
	if (message_header(args, b) < 0 || b->kind < 1 || b->kind > 3) return -1;
	PyObject *k = PyTuple_GetItem(args, 0), *s = PyTuple_GetItem(args, 1);
	static const unsigned char header[5];
	if (put(b, header, sizeof header) < 0) goto refuse;
	if (layout == 5) {
		// (msg, seq, body)
		if (put_byte(b, TAG_TUPLE1 + 2) < 0 || dump_int(k, b) < 0) goto refuse;
	} else if (put_byte(b, (int)b->kind) < 0 || put_byte(b, TAG_TUPLE1 + 1) < 0) {
		goto refuse; // msg, (seq, body)
	}
	if (dump_int(s, b) < 0 || dump_value(PyTuple_GetItem(args, 2), b, 0) < 0) goto refuse;
	size_t n = b->len - sizeof header;
	if (n > 0xffffffffULL || put_byte(b, '\n') < 0) goto refuse;
	for (int i = 0; i < 4; i++) b->p[i] = (unsigned char)(n >> (24 - 8 * i));
	b->p[4] = 0;
	return 0;
refuse:
	b->len = 0;
	PyErr_Clear();
	return -1;
}

void pb_buf_free(pb_buf *b) {
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}
