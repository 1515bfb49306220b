//go:build cgo

package cpython

/*
#include <stdlib.h>
#include "capi.h"
*/
import "C"

import (
	"sync/atomic"
	"unsafe"

	"github.com/pybridge/pybridge/bridge/brine"
)

// Brine loads and dumps message bodies straight between brine bytes and Python
// objects (brine.c), with the limits of package brine: one C call per message, where
// the Encoder and Decoder go through a Go value and a C call per item. It refuses
// (false) what it cannot or will not do, leaving no Python exception set: the caller
// then takes the general way (package brine and the Encoder/Decoder), which decides.
// A Brine is safe for use by several threads, each holding the GIL.
type Brine struct {
	buf atomic.Pointer[C.pb_buf] // a dump buffer kept between messages; nil while in use
}

func limits(lim brine.Limits) C.pb_limits {
	return C.pb_limits{
		max_depth: C.int(lim.MaxDepth), max_items: C.longlong(lim.MaxItems),
		max_int_digits: C.int(lim.MaxIntDigits),
	}
}

// Load decodes one message body from its brine bytes within lim (the GIL held): a new
// reference.
func (b *Brine) Load(body []byte, lim brine.Limits) (Object, bool) {
	return LoadBrine(body, lim)
}

// Message is the tuple (kind, seq, body) (the GIL held); it takes over the reference
// body was.
func (b *Brine) Message(kind, seq int64, body Object) (Object, error) {
	return newRef(C.pb_brine_message(C.longlong(kind), C.longlong(seq), body.p))
}

// Dump is the brine of the body of args (kind, seq, body), passed to use while the
// bytes are valid (the GIL held when Dump is called; use may release it). false: args
// is not such a tuple of brine values.
func (b *Brine) Dump(args Object, use func(kind, seq int64, body []byte) error) (bool, error) {
	buf := b.buf.Swap(nil)
	if buf == nil {
		buf = (*C.pb_buf)(C.calloc(1, C.size_t(unsafe.Sizeof(C.pb_buf{}))))
	}
	buf.len = 0
	if C.pb_brine_dump_message(args.p, buf) < 0 {
		b.keep(buf)
		return false, nil
	}
	err := use(int64(buf.kind), int64(buf.seq), unsafe.Slice((*byte)(unsafe.Pointer(buf.p)), int(buf.len)))
	b.keep(buf)
	return true, err
}

// keepBuffer is the largest dump buffer kept for the next message.
const keepBuffer = 1 << 20

func (b *Brine) keep(buf *C.pb_buf) {
	if buf.cap > keepBuffer {
		C.pb_buf_free(buf)
	}
	if !b.buf.CompareAndSwap(nil, buf) {
		C.pb_buf_free(buf)
		C.free(unsafe.Pointer(buf))
	}
}

// Close frees the kept buffer.
func (b *Brine) Close() {
	if buf := b.buf.Swap(nil); buf != nil {
		C.pb_buf_free(buf)
		C.free(unsafe.Pointer(buf))
	}
}

// LoadBrine decodes the one brine value filling data (a new reference), within lim (the
// GIL held).
func LoadBrine(data []byte, lim brine.Limits) (Object, bool) {
	if len(data) == 0 {
		return Object{}, false
	}
	o := C.pb_brine_load((*C.uchar)(unsafe.Pointer(&data[0])), C.size_t(len(data)), limits(lim))
	return Object{o}, o != nil
}

// DumpBrine is the brine of o, false when o holds anything but brine's exact value
// types (the GIL held).
func DumpBrine(o Object) ([]byte, bool) {
	var buf C.pb_buf
	defer C.pb_buf_free(&buf)
	if C.pb_brine_dump(o.p, &buf) < 0 {
		return nil, false
	}
	return C.GoBytes(unsafe.Pointer(buf.p), C.int(buf.len)), true
}

// PyErrOccurred reports a Python exception set on this thread (the GIL held).
func PyErrOccurred() bool { return C.PyErr_Occurred() != nil }
