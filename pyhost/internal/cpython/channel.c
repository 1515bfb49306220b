// The C channel: a connection's plain frames read and written by the thread serving
// it, without a call into Go per message (see channel.go).

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "capi.h"
#include "export.h"

// The largest payload the channel reads itself; larger frames (rare: rpyc compresses
// payloads over 3000 bytes) are Go's.
#define PB_CHANNEL_MAX_FRAME (64 << 10)
// The largest read buffer kept while nothing is buffered.
#define PB_CHANNEL_KEEP (16 << 10)

enum { MSG_REQUEST = 1, MSG_EXCEPTION = 3, TUPLE2 = 0x11, TUPLE3 = 0x12, IMM_OFFSET = 0x50 };
enum { HANDLE_GETATTR = 4, HANDLE_CALL = 7, HANDLE_CALLATTR = 8 };

struct pb_channel {
	int fd;
	int layout;          // 5 or 6 (pb_brine_dump_frame); 0: Go reads next
	long long threshold; // payloads longer are compressed, so Go writes them; -1: none
	long long max_frame; // the stream's limit; 0: none
	pb_limits lim;       // the stream's value limits for a whole message
	int32_t *awaiting, *serving; // the stream's counters (pinned Go memory); NULL once released
	int no_quickack;     // TCP_QUICKACK does not apply (not TCP)
	pthread_mutex_t wmu; // held for each frame written, by Go's writers too
	unsigned char *r;    // read buffer: r[rpos:rlen] is read and not used yet
	size_t rpos, rlen, rcap;
	pb_buf w;
	PyObject *go_send_recv, *go_recv, *none_args;
	PyObject *serve_state; // requests served in C (serve.c) with it; NULL: none
	int refs; // Go's and the function object's, each let go with the GIL held
	uintptr_t observer; // a ChannelObserver's handle; 0: none
};

static void channel_free(pb_channel *ch) {
	if (--ch->refs > 0) return;
	if (ch->serve_state != NULL) Py_DecRef(ch->serve_state);
	Py_DecRef(ch->go_send_recv);
	Py_DecRef(ch->go_recv);
	Py_DecRef(ch->none_args);
	pthread_mutex_destroy(&ch->wmu);
	free(ch->r);
	pb_buf_free(&ch->w);
	free(ch);
}

pb_channel *pb_channel_new(int fd, int32_t *awaiting, int32_t *serving, PyObject *go_send_recv, PyObject *go_recv) {
	pb_channel *ch = calloc(1, sizeof *ch);
	if (ch == NULL) return NULL;
	PyObject *items[1] = {pb_new_ref(pb_None)};
	ch->none_args = pb_tuple_from(1, items);
	if (ch->none_args == NULL || pthread_mutex_init(&ch->wmu, NULL) != 0) {
		if (ch->none_args != NULL) Py_DecRef(ch->none_args);
		free(ch);
		return NULL;
	}
	ch->fd = fd;
	ch->threshold = -1;
	ch->awaiting = awaiting;
	ch->serving = serving;
	Py_IncRef(go_send_recv);
	Py_IncRef(go_recv);
	ch->go_send_recv = go_send_recv;
	ch->go_recv = go_recv;
	ch->refs = 1;
	return ch;
}

void pb_channel_observe(pb_channel *ch, uintptr_t observer) { ch->observer = observer; }

void pb_channel_set(pb_channel *ch, int layout, long long threshold, long long max_frame, pb_limits lim) {
	ch->layout = layout;
	ch->threshold = threshold;
	ch->max_frame = max_frame;
	ch->lim = lim;
}

// pb_channel_give puts p[0:n] before the bytes buffered. -1: out of memory.
int pb_channel_give(pb_channel *ch, const unsigned char *p, size_t n) {
	size_t have = ch->rlen - ch->rpos;
	if (n == 0) return 0;
	if (ch->rcap < n + have) {
		unsigned char *r = malloc(n + have);
		if (r == NULL) return -1;
		memcpy(r + n, ch->r + ch->rpos, have);
		free(ch->r);
		ch->r = r;
		ch->rcap = n + have;
	} else {
		memmove(ch->r + n, ch->r + ch->rpos, have);
	}
	memcpy(ch->r, p, n);
	ch->rpos = 0;
	ch->rlen = n + have;
	return 0;
}

size_t pb_channel_buffered(pb_channel *ch, const unsigned char **p) {
	*p = ch->r + ch->rpos;
	return ch->rlen - ch->rpos;
}

void pb_channel_drop_buffered(pb_channel *ch) { ch->rpos = ch->rlen = 0; }

void pb_channel_lock(pb_channel *ch) { pthread_mutex_lock(&ch->wmu); }
void pb_channel_unlock(pb_channel *ch) { pthread_mutex_unlock(&ch->wmu); }

// pb_channel_release: Go lets go (the GIL held). Calls to the function after this go
// to Go's functions.
void pb_channel_release(pb_channel *ch) {
	ch->layout = 0;
	if (ch->serve_state != NULL) { // it holds the connection: let go of the cycle now
		Py_DecRef(ch->serve_state);
		ch->serve_state = NULL;
	}
	ch->awaiting = ch->serving = NULL;
	ch->fd = -1;
	channel_free(ch);
}

// fill reads until need bytes are buffered: 0, or -1 at the end of the stream or an
// error (Go, reading on, meets it again and reports it).
static int fill(pb_channel *ch, size_t need) {
	if (ch->rlen - ch->rpos >= need) return 0;
	if (ch->rcap - ch->rpos < need) {
		if (ch->rpos > 0) {
			memmove(ch->r, ch->r + ch->rpos, ch->rlen - ch->rpos);
			ch->rlen -= ch->rpos;
			ch->rpos = 0;
		}
		if (ch->rcap < need) {
			size_t cap = ch->rcap ? ch->rcap : 4096;
			while (cap < need) cap *= 2;
			unsigned char *r = realloc(ch->r, cap);
			if (r == NULL) return -1;
			ch->r = r;
			ch->rcap = cap;
		}
	}
	while (ch->rlen - ch->rpos < need) {
		ssize_t n = read(ch->fd, ch->r + ch->rlen, ch->rcap - ch->rlen);
		if (n > 0) {
			ch->rlen += (size_t)n;
		} else if (n == 0 || errno != EINTR) {
			return -1;
		}
	}
	return 0;
}

static int write_all(pb_channel *ch) {
	const unsigned char *p = ch->w.p;
	size_t left = ch->w.len;
	int rc = 0;
	pthread_mutex_lock(&ch->wmu);
	while (left > 0) {
		ssize_t n = send(ch->fd, p, left, MSG_NOSIGNAL); // a socket: EPIPE, never SIGPIPE
		if (n > 0) {
			p += n;
			left -= (size_t)n;
		} else if (n == 0 || errno != EINTR) {
			rc = n == 0 ? EIO : errno;
			break;
		}
	}
	pthread_mutex_unlock(&ch->wmu);
	return rc;
}

// load_seq reads a sequence number as package wire's loadSeq does: a brine small int,
// or a decimal of up to 18 digits (brine's int of one length byte).
static int load_seq(const unsigned char *b, size_t n, long long *seq, size_t *used) {
	if (n == 0) return -1;
	if (b[0] >= 0x20 && b[0] <= 0xef) {
		*seq = (long long)b[0] - IMM_OFFSET;
		*used = 1;
		return 0;
	}
	if (b[0] != 0x16 || n < 2 || b[1] == 0 || b[1] > 18 || n < 2 + (size_t)b[1]) return -1;
	const unsigned char *d = b + 2, *end = b + 2 + b[1];
	int neg = *d == '-';
	if (neg) d++;
	if (d == end) return -1;
	long long v = 0;
	for (; d < end; d++) {
		if (*d < '0' || *d > '9') return -1;
		v = v * 10 + (*d - '0');
	}
	*seq = neg ? -v : v;
	*used = 2 + (size_t)b[1];
	return 0;
}

// load_message is the message (msg, seq, body) of payload p[0:n] as package wire's
// ReadMessageLoading makes it (splitMessage, bodyLimits, the body by pb_brine_load):
// NULL, no exception left set, for anything else, which Go then reads and decides.
static PyObject *load_message(pb_channel *ch, const unsigned char *p, size_t n, long long *kind, long long *seq, int *handler) {
	int header;
	if (n < 3) return NULL;
	if (ch->layout == 5) {
		if (p[0] != TUPLE3) return NULL;
		*kind = (long long)p[1] - IMM_OFFSET;
		header = 3; // the tuple, msg, seq
	} else {
		if (p[1] != TUPLE2) return NULL;
		*kind = p[0];
		header = 2; // the tuple, seq
	}
	if (*kind < MSG_REQUEST || *kind > MSG_EXCEPTION) return NULL;
	p += 2;
	n -= 2;
	size_t used;
	if (load_seq(p, n, seq, &used) < 0 || used == n) return NULL;
	// a request's handler as the stream counts it (wire.ValidHandler checks its range):
	// its body (handler, args) starts with the 2-tuple tag and a small int
	const unsigned char *b = p + used;
	*handler = *kind == MSG_REQUEST && n - used >= 2 && b[0] == TUPLE2 && b[1] >= 0x20 && b[1] <= 0xef
		? b[1] - IMM_OFFSET : 0;
	pb_limits lim = ch->lim;
	if (lim.max_depth > 0 && --lim.max_depth == 0) return NULL;
	if (lim.max_items > 0 && (lim.max_items -= header) <= 0) return NULL;
	PyObject *body = pb_brine_load(p + used, n - used, lim);
	if (body == NULL) return NULL;
	PyObject *m = pb_brine_message(*kind, *seq, body);
	if (m == NULL) PyErr_Clear();
	return m;
}

static PyObject *serve_in_c(pb_channel *ch, PyObject *m);

// dump_frame makes ch->w the frame of args (msg, seq, body): 0, or -1 when brine.c
// cannot dump it, or its payload passes the compression threshold (Go's to compress:
// the dump stops there).
static int dump_frame(pb_channel *ch, PyObject *args) {
	pb_buf *w = &ch->w;
	w->max = ch->threshold >= 0 ? (size_t)ch->threshold + 6 : 0;
	if (pb_brine_dump_frame(args, w, ch->layout) == 0) return 0;
	if (w->cap > PB_CHANNEL_KEEP) pb_buf_free(w);
	return -1;
}

// send_recv(msg, seq, body) -> (msg, seq, body), as Go's, called by one thread at a
// time (the holder of the connection's receive lock): the frame written, and the
// next message read, with the GIL released once for both. What it does not do itself
// (a layout not settled, a reply to be compressed or that brine.c cannot dump, a frame
// compressed, large, malformed or over a limit, the end of the stream) it leaves to
// Go's send_recv or recv, with every byte it read.
//
// With serve_in_c's state, a request read that serve.c serves is not returned: as
// Python would (Connection._serve_next), it lets the receive lock go, runs the
// request, takes the lock back, writes the reply and reads the next message, in the
// same call. What it cannot finish (a result to box, an exception, the lock taken
// meanwhile by another thread) it returns as a message of kind PB_SERVED_*, the lock
// let go.
static PyObject *channel_send_recv(PyObject *self, PyObject *args) {
	pb_channel *ch = PyCapsule_GetPointer(self, NULL);
	if (ch == NULL) return NULL;
	pb_buf *w = &ch->w;
	int dumped = 0; // w holds the reply of a request served in C
	for (;;) {
		if (!dumped) {
			if (ch->layout == 0) return PyObject_Call(ch->go_send_recv, args, NULL);
			if (dump_frame(ch, args) < 0) return PyObject_Call(ch->go_send_recv, args, NULL);
		}
		dumped = 0;
		// as FrameStream.WriteMessage counts
		if (w->kind == MSG_REQUEST) {
			__atomic_add_fetch(ch->awaiting, 1, __ATOMIC_SEQ_CST);
		} else if (__atomic_sub_fetch(ch->serving, 1, __ATOMIC_SEQ_CST) < 0) {
			__atomic_store_n(ch->serving, 0, __ATOMIC_SEQ_CST);
		}
		PyThreadState *ts = PyEval_SaveThread();
		int werr = write_all(ch);
		// as FrameStream.WriteMessage shows it, once written
		if (werr == 0 && ch->observer) pbChannelObserve(ch->observer, 1, w->kind, w->seq, 0, (int)w->len);
		if (w->cap > PB_CHANNEL_KEEP) pb_buf_free(w); // a large frame's buffer is not kept
		size_t n = 0;
		int ok = 0;
		if (werr == 0) {
			// as FrameStream.quickAck: the peer's answer to a request of ours acknowledged at once
			if (!ch->no_quickack && ch->rlen == ch->rpos && __atomic_load_n(ch->awaiting, __ATOMIC_SEQ_CST) > 0) {
				int one = 1;
				if (setsockopt(ch->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one) < 0) ch->no_quickack = 1;
			}
			if (fill(ch, 5) == 0) {
				const unsigned char *h = ch->r + ch->rpos;
				n = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
				ok = h[4] == 0 && n <= PB_CHANNEL_MAX_FRAME && (ch->max_frame <= 0 || (long long)n <= ch->max_frame) &&
				     fill(ch, 5 + n + 1) == 0;
			}
		}
		PyEval_RestoreThread(ts);
		if (werr != 0) {
			PyErr_SetString(pb_ExcEOFError, strerror(werr));
			return NULL;
		}
		long long kind, seq;
		int handler;
		PyObject *m = NULL;
		if (ok && ch->r[ch->rpos + 5 + n] == '\n') m = load_message(ch, ch->r + ch->rpos + 5, n, &kind, &seq, &handler);
		if (m == NULL) return PyObject_Call(ch->go_recv, ch->none_args, NULL);
		if (ch->observer) {
			// as FrameStream.received shows it (GIL held: the observer is quick)
			pbChannelObserve(ch->observer, 0, kind, seq, handler, (int)(5 + n + 1));
		}
		ch->rpos += 5 + n + 1;
		if (ch->rpos == ch->rlen) {
			ch->rpos = ch->rlen = 0;
			if (ch->rcap > PB_CHANNEL_KEEP) { // a large frame's buffer is not kept idle
				free(ch->r);
				ch->r = NULL;
				ch->rcap = 0;
			}
		}
		// as FrameStream.received counts
		if (kind == MSG_REQUEST) {
			__atomic_add_fetch(ch->serving, 1, __ATOMIC_SEQ_CST);
		} else if (__atomic_load_n(ch->awaiting, __ATOMIC_SEQ_CST) > 0) {
			__atomic_sub_fetch(ch->awaiting, 1, __ATOMIC_SEQ_CST);
		}
		if (kind != MSG_REQUEST || ch->serve_state == NULL ||
		    (handler != HANDLE_GETATTR && handler != HANDLE_CALL && handler != HANDLE_CALLATTR)) {
			return m;
		}
		PyObject *got = serve_in_c(ch, m);
		if (got == pb_None) {
			// the lock is back: the reply was dumped into w, to be written now
			Py_DecRef(got);
			dumped = 1;
			continue;
		}
		return got; // m itself, a message for Python, or NULL
	}
}

// serve_in_c serves request m with the channel's state, as channel_send_recv says:
// m itself (not served), the message for Python (the lock let go), pb_None when the
// reply is dumped into ch->w and the lock taken back, or NULL with an exception set
// (the lock held).
static PyObject *serve_in_c(pb_channel *ch, PyObject *m) {
	PyObject *state = pb_new_ref(ch->serve_state); // serve_in_c(None) may run meanwhile
	pb_request req;
	if (!pb_serve_prepare(state, m, &req)) {
		Py_DecRef(state);
		return m;
	}
	Py_DecRef(m);
	PyObject *out = NULL;
	if (pb_serve_let_go(state) < 0) { // cannot be: the lock is held, the exception goes up
		pb_request_clear(&req);
		Py_DecRef(state);
		return NULL;
	}
	PyObject *seq = pb_new_ref(req.seq);
	PyObject *result = pb_serve_run(&req);
	pb_request_clear(&req);
	if (result == NULL) {
		out = pb_served_raised(seq);
	} else {
		PyObject *reply = pb_serve_reply(seq, result);
		if (reply == NULL) {
			out = pb_served_raised(seq);
		} else {
			if (ch->layout == 0 || !pb_serve_plain(result) || dump_frame(ch, reply) < 0) {
				out = pb_served_result(reply); // Python boxes it and sends it
			} else if (pb_serve_take_back(state)) {
				Py_DecRef(reply);
				out = pb_new_ref(pb_None);
			} else {
				out = pb_served_reply(reply); // another thread reads: Python sends it
			}
		}
	}
	Py_DecRef(seq);
	if (out == NULL) {
		// out of memory: the exception goes up with the lock held, as from a read
		PyObject *t, *v, *tb;
		PyErr_Fetch(&t, &v, &tb);
		if (pb_serve_wait_back(state) < 0) PyErr_Clear();
		PyErr_Restore(t, v, tb);
	}
	Py_DecRef(state);
	return out;
}

// serve_in_c(state | None): see pb_channel_serve_in_c_func.
static PyObject *channel_serve_in_c(PyObject *self, PyObject *args) {
	pb_channel *ch = PyCapsule_GetPointer(self, NULL);
	if (ch == NULL) return NULL;
	if (pb_type(args) != pb_TupleType || PyTuple_Size(args) != 1) {
		PyErr_SetString(pb_ExcTypeError, "serve_in_c takes one argument");
		return NULL;
	}
	PyObject *state = PyTuple_GetItem(args, 0);
	if (state != pb_None && !pb_serve_state_ok(state)) {
		PyErr_SetString(pb_ExcTypeError, "serve_in_c: not a state serve.c can use");
		return NULL;
	}
	PyObject *old = ch->serve_state;
	// a released channel (fd -1) serves nothing in C, and keeps no connection alive
	ch->serve_state = state == pb_None || ch->fd < 0 ? NULL : pb_new_ref(state);
	if (old != NULL) Py_DecRef(old);
	return pb_new_ref(pb_None);
}

static PyMethodDef channel_def = {"send_recv", channel_send_recv, PB_METH_VARARGS, NULL};
static PyMethodDef serve_in_c_def = {"serve_in_c", channel_serve_in_c, PB_METH_VARARGS, NULL};

static void channel_capsule_free(PyObject *capsule) {
	channel_free(PyCapsule_GetPointer(capsule, NULL));
}

static PyObject *channel_func(pb_channel *ch, PyMethodDef *def) {
	PyObject *self = PyCapsule_New(ch, NULL, channel_capsule_free);
	if (self == NULL) return NULL;
	ch->refs++;
	PyObject *f = PyCFunction_NewEx(def, self, NULL);
	Py_DecRef(self);
	return f;
}

// pb_channel_func is the function send_recv of ch (a new reference), which shares ch
// with Go until both let go.
PyObject *pb_channel_func(pb_channel *ch) { return channel_func(ch, &channel_def); }

PyObject *pb_channel_serve_in_c_func(pb_channel *ch) { return channel_func(ch, &serve_in_c_def); }

// pb_channel_load_message is load_message for a payload of the given layout, for tests.
PyObject *pb_channel_load_message(int layout, const unsigned char *p, size_t n, pb_limits lim) {
	pb_channel ch = {.layout = layout, .lim = lim};
	long long kind, seq;
	int handler;
	return load_message(&ch, p, n, &kind, &seq, &handler);
}
