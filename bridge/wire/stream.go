package wire

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pybridge/pybridge/internal/bufpool"
)

// FrameStream is a MessageStream over an rpyc socket (or pipe pair) in one dialect,
// given up front or learnt from the peer's first frame.
type FrameStream struct {
	rwc  io.ReadWriteCloser
	r    *bufio.Reader
	src  unreadReader // what r reads: bytes given back (TakeBack), then rwc
	lim  Limits
	bufs FrameBuffers
	// the first message, read by AcceptFrameStream
	pending *Message

	// The dialect is settled once: given, read from the peer's first frame, or assumed
	// by a write that waited Hold for that frame in vain. dialect is written before
	// known is closed and never changes after.
	known   chan struct{}
	settle  sync.Once
	dialect Dialect
	assumed bool // settled by a write, before the peer spoke
	assume  Dialect
	hold    time.Duration
	// A detected 6.x layout may be rpyc-ng's (SpotNG): spotting until the peer's
	// messages tell; ng is set once they show it (read by writers for compression).
	spotting bool
	ng       atomic.Bool

	// requests written and not answered yet: while there are any, reads ask the
	// connection to acknowledge at once (QuickAck)
	awaiting atomic.Int32
	// the peer's requests read and not answered yet (Idle)
	serving atomic.Int32

	obs Observer // nil: none (SetObserver)

	wmu      sync.Mutex
	wpayload []byte // reused for each message written (up to KeepBuffer)
	wframe   []byte
	wlast    int         // the last payload's size: a large one is likely followed by another
	compress atomic.Bool // off: no payload is compressed (SetCompression)
	wlock    sync.Locker // also held for each Write (SetWriteLock); nil: none
	closeMu  sync.Once
	closeErr error
}

// ReadBuffer is the size of a stream's read buffer: one page, for the small frames of
// most messages (several to a read when they come back to back); a larger payload is
// read straight into a buffer of its size. Every idle connection holds one.
const ReadBuffer = 4 << 10

// NewFrameStream speaks dialect d over rwc.
func NewFrameStream(rwc io.ReadWriteCloser, d Dialect, lim Limits) *FrameStream {
	fs := &FrameStream{rwc: rwc, lim: lim, known: make(chan struct{})}
	fs.compress.Store(true)
	fs.src.r = rwc
	fs.r = bufio.NewReaderSize(&fs.src, ReadBuffer)
	if d != nil {
		fs.settleDialect(d, false)
	}
	return fs
}

// DetectFrameStream learns the peer's dialect from its first frame (DetectDialect), as
// a server must: nothing in rpyc negotiates it. A write that comes before the peer's
// first frame waits up to hold for it, then assumes dialect assume; if the peer then
// speaks the other layout, ReadMessage fails with a *DialectError rather than misread.
// Until something is written, a silent peer may stay silent as long as it likes.
func DetectFrameStream(rwc io.ReadWriteCloser, lim Limits, assume Dialect, hold time.Duration) *FrameStream {
	fs := NewFrameStream(rwc, nil, lim)
	fs.assume, fs.hold = assume, hold
	return fs
}

// AcceptFrameStream reads the peer's first frame, picks the dialect it is written in,
// and returns a stream whose first ReadMessage yields that message.
func AcceptFrameStream(rwc io.ReadWriteCloser, lim Limits) (*FrameStream, error) {
	fs := NewFrameStream(rwc, nil, lim)
	m, err := fs.ReadMessage()
	if err != nil {
		return nil, err
	}
	fs.pending = &m
	return fs, nil
}

func (fs *FrameStream) settleDialect(d Dialect, assumed bool) Dialect {
	fs.settle.Do(func() {
		fs.dialect, fs.assumed = d, assumed
		close(fs.known)
		if fs.obs != nil {
			fs.obs.Settled(d)
		}
	})
	return fs.dialect
}

// Dialect is the stream's message layout, nil while it is not settled. A peer detected
// as rpyc 6.x becomes DialectNG once its messages show it is rpyc-ng (SpotNG).
func (fs *FrameStream) Dialect() Dialect {
	select {
	case <-fs.known:
		if fs.ng.Load() {
			return DialectNG
		}
		return fs.dialect
	default:
		return nil
	}
}

// SetCompression turns compression of large payloads on (the default, as rpyc) or off.
func (fs *FrameStream) SetCompression(on bool) {
	fs.compress.Store(on)
}

// ReadMessage reads the next message. Not safe for concurrent use.
func (fs *FrameStream) ReadMessage() (Message, error) {
	if m := fs.pending; m != nil {
		fs.pending = nil
		return *m, nil
	}
	fs.quickAck()
	payload, err := fs.bufs.Read(fs.r, fs.lim)
	if err != nil {
		return Message{}, err
	}
	d := fs.Dialect()
	if d == nil || fs.assumed {
		if d, err = fs.detect(payload); err != nil {
			return Message{}, err
		}
	}
	m, err := d.ParseMessage(payload, fs.lim.Value)
	fs.bufs.Release() // the message holds copies
	if err == nil && fs.spotting {
		if ng, known := SpotNG(m); known {
			fs.spotting = false
			fs.ng.Store(ng)
		}
	}
	fs.received(m, err, handlerOf(m))
	return m, err
}

// quickAck: when the peer answers a request of ours, have the connection acknowledge
// at once. An rpyc client has Nagle's algorithm on: when it writes twice in a row (a
// DEL, then the reply) its second write waits for the first to be acknowledged, which
// a delayed ACK makes 40 ms.
func (fs *FrameStream) quickAck() {
	if fs.awaiting.Load() > 0 && fs.Buffered() == 0 {
		if qa, ok := fs.rwc.(interface{ QuickAck() }); ok {
			qa.QuickAck()
		}
	}
}

// received counts a message read (or refused) and shows it to the observer.
func (fs *FrameStream) received(m Message, err error, h Handler) {
	if fs.obs != nil {
		if err == nil {
			fs.obs.Received(m.Type, m.Seq, h, fs.bufs.wire)
		} else if ol, ok := err.(*OverLimitError); ok {
			fs.obs.Refused(ol.Type, fs.bufs.wire)
		}
	}
	if err == nil && m.Type != MsgRequest && fs.awaiting.Load() > 0 {
		fs.awaiting.Add(-1)
	}
	if err == nil && m.Type == MsgRequest {
		fs.serving.Add(1)
	}
}

// detect settles the dialect from the peer's first payload.
func (fs *FrameStream) detect(payload []byte) (Dialect, error) {
	seen, err := DetectDialect(payload)
	if err != nil {
		return nil, err
	}
	d := fs.settleDialect(seen, false)
	if d != seen {
		return nil, &DialectError{Dialect: seen.Name(), Msg: fmt.Sprintf(
			"the peer spoke %s after %s had been written to it", seen.Name(), d.Name()), Err: ErrDialectMismatch}
	}
	fs.assumed = false
	fs.spotting = d == Dialect6
	return d, nil
}

// ErrDialectMismatch: the peer's first frame is in the other layout than the one the
// stream had to assume for writing.
var ErrDialectMismatch = errors.New("dialect mismatch")

// WaitMessage waits up to d for the next message to start arriving. It reports false
// when d passed first; true when a message (or an error, which ReadMessage then
// returns) is there. A connection without read deadlines cannot bound the wait: it
// reports true at once and ReadMessage blocks.
func (fs *FrameStream) WaitMessage(d time.Duration) (bool, error) {
	if fs.Buffered() > 0 {
		return true, nil
	}
	dl, ok := fs.rwc.(interface{ SetReadDeadline(time.Time) error })
	if !ok || dl.SetReadDeadline(time.Now().Add(d)) != nil {
		return true, nil
	}
	_, err := fs.r.Peek(1)
	dl.SetReadDeadline(time.Time{})
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return false, nil
	}
	return true, nil
}

// WriteMessage encodes m and writes its frame with one Write. Safe for concurrent use.
func (fs *FrameStream) WriteMessage(m Message) error {
	d := fs.Dialect()
	if d == nil {
		d = fs.waitDialect()
	}
	if m.Type == MsgRequest {
		fs.awaiting.Add(1)
	} else if fs.serving.Add(-1) < 0 {
		fs.serving.Store(0)
	}
	fs.wmu.Lock()
	defer fs.wmu.Unlock()
	pbuf := fs.wpayload
	if pbuf == nil && fs.wlast > KeepBuffer {
		pbuf = bufpool.Get(fs.wlast)
	}
	payload, err := d.AppendMessage(pbuf[:0], m)
	if err != nil {
		fs.wpayload = keep(payload)
		return fmt.Errorf("encode %v %d: %w", m.Type, m.Seq, err)
	}
	fs.wlast = len(payload)
	var c *compression
	if fs.compress.Load() {
		if fs.ng.Load() {
			d = DialectNG
		}
		c = compressionOf(d)
	}
	fbuf := fs.wframe
	if fbuf == nil && len(payload) > KeepBuffer {
		fbuf = bufpool.Get(len(payload) + len(payload)>>6 + 64) // room for deflate's worst case
	}
	frame := appendFrame(fbuf[:0], payload, c)
	if fs.wlock != nil {
		fs.wlock.Lock()
		_, err = fs.rwc.Write(frame)
		fs.wlock.Unlock()
	} else {
		_, err = fs.rwc.Write(frame)
	}
	if err == nil && fs.obs != nil {
		fs.obs.Sent(m.Type, m.Seq, len(frame))
	}
	fs.wpayload, fs.wframe = keep(payload), keep(frame)
	return err
}

// waitDialect waits for the peer's first frame up to hold, then assumes.
func (fs *FrameStream) waitDialect() Dialect {
	if fs.assume == nil {
		<-fs.known
		return fs.dialect
	}
	t := time.NewTimer(fs.hold)
	defer t.Stop()
	select {
	case <-fs.known:
		return fs.dialect
	case <-t.C:
		return fs.settleDialect(fs.assume, true)
	}
}

// Idle reports that every request the peer sent has been answered (its requests sent
// without waiting, as rpyc's DEL, count until their reply is written too).
func (fs *FrameStream) Idle() bool { return fs.serving.Load() == 0 }

// Close closes the underlying connection.
func (fs *FrameStream) Close() error {
	fs.closeMu.Do(func() { fs.closeErr = fs.rwc.Close() })
	return fs.closeErr
}

// Buffered is how many bytes of the peer's next frames are already read (a message
// may be readable while the descriptor has nothing more).
func (fs *FrameStream) Buffered() int {
	if fs.pending != nil {
		return 1
	}
	return fs.r.Buffered() + len(fs.src.buf)
}

// Fd is the descriptor the stream reads, when it reads one in blocking mode directly
// (not through TLS or Go's network poller), for waiting on it with poll(2).
func (fs *FrameStream) Fd() (int, bool) {
	bc, ok := fs.rwc.(interface{ BlockingFd() int })
	if !ok {
		return 0, false
	}
	return bc.BlockingFd(), true
}
