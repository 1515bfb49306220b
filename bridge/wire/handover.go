package wire

import (
	"io"
	"sync"
	"sync/atomic"
)

// A FrameStream may take turns with another reader and writer of its connection's
// frames: pyhost's C channel, with which an embedded connection's thread reads and
// writes plain frames itself, without a call into Go per message. Both take turns
// reading under one lock of the caller's (the connection's receive lock); between
// turns every byte read from the connection and not yet used is the other reader's:
// the stream hands what it read ahead over (HandOver) and takes back what the other
// left (TakeBack) before it reads again. Writers of either side hold one lock for
// each frame (SetWriteLock), and both count requests in the stream's own counters
// (Counters).

// Handover is what another reader needs to read and write the stream's frames in its
// place, after the stream read last.
type Handover struct {
	// Dialect is the layout of the messages, nil while only the stream may read the
	// next one: its dialect is not settled or still spotted (rpyc 6.x or rpyc-ng), or
	// a message is pending.
	Dialect Dialect
	// Observer is the stream's (nil: none): the other reader and writer shows it each
	// message it reads and writes, as the stream would (ValidHandler).
	Observer Observer
	// Threshold: payloads longer than this many bytes are to be sent compressed (the
	// stream writes them); -1: none are.
	Threshold int
	Limits    Limits
	// Buffered: the bytes read past the last message, the other reader's now.
	Buffered []byte
}

// HandOver hands the bytes read ahead over to another reader, and says how to read
// and write the stream's frames. Not safe for concurrent use with reads.
func (fs *FrameStream) HandOver() Handover {
	h := Handover{Threshold: -1, Limits: fs.lim}
	if n := fs.r.Buffered(); n > 0 || len(fs.src.buf) > 0 {
		b, _ := fs.r.Peek(n)
		h.Buffered = append(append(make([]byte, 0, n+len(fs.src.buf)), b...), fs.src.buf...)
		fs.r.Discard(n)
		fs.src.buf = nil
	}
	d := fs.Dialect()
	if d == nil || fs.pending != nil || fs.assumed || fs.spotting {
		return h
	}
	h.Dialect, h.Observer = d, fs.obs
	if fs.compress.Load() { // not under the write lock: a write may block for long
		h.Threshold = compressionOf(d).threshold
	}
	return h
}

// ValidHandler is h as a REQUEST's Handler for an Observer: h when it is one (the
// small int a request's body starts with), else 0.
func ValidHandler(h int) Handler {
	if h > 0 && h < len(handlerNames) {
		return Handler(h)
	}
	return 0
}

// TakeBack puts b, bytes another reader read from the connection and did not use,
// before whatever the stream reads next. Not safe for concurrent use with reads.
func (fs *FrameStream) TakeBack(b []byte) {
	if len(b) == 0 {
		return
	}
	n := fs.r.Buffered()
	ahead, _ := fs.r.Peek(n)
	fs.src.buf = append(append(append(make([]byte, 0, len(b)+n+len(fs.src.buf)), b...), ahead...), fs.src.buf...)
	fs.r.Discard(n)
}

// Counters are the stream's counts of requests it wrote and has no answer for yet and
// of the peer's requests it read and has not answered yet, for another reader and
// writer to keep (atomically) as the stream does: a request written counts in
// awaiting, any other message written takes one from serving (not below 0); a request
// read counts in serving, any other message read takes one from awaiting while it is
// above 0.
func (fs *FrameStream) Counters() (awaiting, serving *atomic.Int32) {
	return &fs.awaiting, &fs.serving
}

// SetWriteLock has every frame written while l is held too, as another writer of the
// connection holds it for each of its frames; nil: none. It waits for a write under way.
func (fs *FrameStream) SetWriteLock(l sync.Locker) {
	fs.wmu.Lock()
	fs.wlock = l
	fs.wmu.Unlock()
}

// HoldFd runs f with the descriptor the stream reads in blocking mode (see Fd), kept
// open meanwhile: a Close during f shuts the connection down at once, but the
// descriptor is closed (and its number free for reuse) only once f has returned.
// false, and f not run: the stream reads no such descriptor.
func (fs *FrameStream) HoldFd(f func(fd int)) bool {
	h, ok := fs.rwc.(interface{ HoldFd(func(fd int)) error })
	return ok && h.HoldFd(f) == nil
}

// unreadReader reads buf, then r.
type unreadReader struct {
	buf []byte
	r   io.Reader
}

func (u *unreadReader) Read(p []byte) (int, error) {
	if len(u.buf) == 0 {
		return u.r.Read(p)
	}
	n := copy(p, u.buf)
	if u.buf = u.buf[n:]; len(u.buf) == 0 {
		u.buf = nil
	}
	return n, nil
}
