//go:build cgo

package cpython

/*
#include "capi.h"
*/
import "C"

import (
	"runtime"
	"runtime/cgo"
	"sync/atomic"
	"unsafe"

	"github.com/pybridge/pybridge/bridge/brine"
)

// Channel is a connection's plain frames read and written in C by the thread that
// serves it (channel.c), in turns with Go's reader of the same connection (a
// wire.FrameStream; see wire.Handover). Its function send_recv stands for Go's: it
// writes a reply's frame and reads the next message's with the GIL released once and
// no call into Go, so a request costs no Go scheduling, no cgo callback and no second
// copy of its bytes. What it does not do itself it leaves to Go's send_recv and recv
// with every byte it read: a message layout not settled (Set with 0), a reply to be
// compressed or that brine.c cannot dump, a frame compressed, over 64 KiB, malformed
// or over a limit, and the end of the stream. Frames are the same either way.
//
// Set, Take and Give are for the reader's turns (under the connection's receive lock);
// Lock and Unlock are the write lock every writer of the connection holds for a frame.
type Channel struct {
	c        *C.pb_channel
	pin      runtime.Pinner
	observer cgo.Handle // 0: none
}

// ChannelObserver sees each message the channel writes (sent) and reads itself, not
// those it leaves to Go: its type and sequence number, for a request read the small
// int its body starts with (0: none), and the bytes of its frame. It is called on the
// connection's thread (with the GIL held for a message read) and must be quick.
type ChannelObserver func(sent bool, kind, seq int64, handler, frameBytes int)

// SetObserver has o see the channel's messages from now on (nil: none).
func (ch *Channel) SetObserver(o ChannelObserver) {
	old := ch.observer
	ch.observer = 0
	if o != nil {
		ch.observer = cgo.NewHandle(o)
	}
	C.pb_channel_observe(ch.c, C.uintptr_t(ch.observer))
	if old != 0 {
		old.Delete()
	}
}

// NewChannel makes the channel of descriptor fd (a blocking socket, kept open until
// Release) and its function send_recv (a new reference), falling back on Go's
// goSendRecv and goRecv. awaiting and serving are the stream's counters, which C keeps
// too. The GIL held.
func NewChannel(fd int, awaiting, serving *atomic.Int32, goSendRecv, goRecv Object) (*Channel, Object, error) {
	ch := &Channel{}
	ch.pin.Pin(awaiting)
	ch.pin.Pin(serving)
	ch.c = C.pb_channel_new(C.int(fd), (*C.int32_t)(unsafe.Pointer(awaiting)), (*C.int32_t)(unsafe.Pointer(serving)),
		goSendRecv.p, goRecv.p)
	if ch.c == nil {
		ch.pin.Unpin()
		return nil, Object{}, &Raise{Class: "RuntimeError", Msg: "out of memory"}
	}
	f, err := newRef(C.pb_channel_func(ch.c))
	if err != nil {
		ch.Release()
		return nil, Object{}, err
	}
	return ch, f, nil
}

// ServeInC is the function serve_in_c of the channel (a new reference; the GIL held):
// serve_in_c(state) has send_recv serve the requests it can in C (serve.c) with the
// state Python makes for it (pybridge.protocol.Connection._serve_in_c), returning to
// Python only what C leaves to it; serve_in_c(None) stops that. Release drops the
// state too.
func (ch *Channel) ServeInC() (Object, error) {
	return newRef(C.pb_channel_serve_in_c_func(ch.c))
}

// Set says how to read and write the messages from now on: layout 5 (rpyc 5.x) or 6
// (rpyc 6.x, rpyc-ng), payloads over threshold bytes compressed (-1: none), frames up
// to maxFrame bytes (0: any) and lim for a message's values; layout 0: Go reads the
// next message.
func (ch *Channel) Set(layout, threshold, maxFrame int, lim brine.Limits) {
	C.pb_channel_set(ch.c, C.int(layout), C.longlong(threshold), C.longlong(maxFrame), limits(lim))
}

// Take empties the channel's buffer: the bytes it read and did not use.
func (ch *Channel) Take() []byte {
	var p *C.uchar
	n := C.pb_channel_buffered(ch.c, &p)
	if n == 0 {
		return nil
	}
	b := C.GoBytes(unsafe.Pointer(p), C.int(n))
	C.pb_channel_drop_buffered(ch.c)
	return b
}

// Give puts b, bytes read from the connection and not used, before the channel's
// buffer; false when there is no memory for them (b is then still the caller's).
func (ch *Channel) Give(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	return C.pb_channel_give(ch.c, (*C.uchar)(unsafe.Pointer(&b[0])), C.size_t(len(b))) == 0
}

// Lock takes the write lock (blocking the OS thread while C writes a frame).
func (ch *Channel) Lock() { C.pb_channel_lock(ch.c) }

// Unlock lets the write lock go.
func (ch *Channel) Unlock() { C.pb_channel_unlock(ch.c) }

// Release lets the channel go (the GIL held): its send_recv, if Python still has it,
// calls Go's from now on. No writer may use Lock any more.
func (ch *Channel) Release() {
	C.pb_channel_release(ch.c)
	ch.c = nil
	ch.pin.Unpin()
	if ch.observer != 0 {
		ch.observer.Delete()
	}
}

// ChannelMessage is the message (msg, seq, body) the channel reads from payload in a
// layout (5 or 6) within lim, false when it leaves the payload to Go (the GIL held).
// For tests: the channel must read nothing Go's stream would read otherwise.
func ChannelMessage(layout int, payload []byte, lim brine.Limits) (Object, bool) {
	if len(payload) == 0 {
		return Object{}, false
	}
	o := C.pb_channel_load_message(C.int(layout), (*C.uchar)(unsafe.Pointer(&payload[0])), C.size_t(len(payload)), limits(lim))
	return Object{o}, o != nil
}
