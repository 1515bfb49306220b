package pyhost

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pybridge/pybridge/bridge/wire"
	"github.com/pybridge/pybridge/internal/bufpool"
	"github.com/pybridge/pybridge/pyhost/internal/workerproto"
)

// Channel is one RPyC connection inside a worker, over a socketpair of its own: a
// wire.MessageStream, what bridge.Conn and bridge.Relay run on. Reading it reads the
// worker's messages straight off the socket (no other goroutine in between), so a slow
// reader of one connection holds back only that connection: the worker's thread for it
// blocks on a full socket, as an rpyc server's does on a slow client.
type Channel struct {
	w    *Worker
	id   uint64
	sock *socket
	rd   *bufio.Reader
	rbuf []byte

	awaited atomic.Int32 // requests sent to the worker and not answered yet (Worker.awaited)

	mu      sync.Mutex
	local   bool  // Close was called
	wclosed bool  // CloseWrite was called: the worker's EOF is the clean end
	ended   error // how the connection ended at the worker's side (ReadMessage's error)
	onClose func(*Channel)
}

func newChannel(w *Worker, id uint64, s *socket) *Channel {
	return &Channel{w: w, id: id, sock: s, rd: bufio.NewReaderSize(s, wire.ReadBuffer)}
}

// ID is the connection id in the worker.
func (c *Channel) ID() uint64 { return c.id }

// Worker is the worker the connection lives in.
func (c *Channel) Worker() *Worker { return c.w }

// ReadMessage returns the next RPyC message from the worker. After the worker closed
// the connection it returns a *ClosedError, after the worker died a *WorkerExitError,
// after Close ErrChannelClosed. Not safe for concurrent use.
func (c *Channel) ReadMessage() (wire.Message, error) {
	for {
		if err := c.endedErr(); err != nil {
			return wire.Message{}, err
		}
		f, buf, err := workerproto.ReadFrame(c.rd, c.rbuf, c.w.cfg.Limits)
		if cap(buf) <= bufpool.Min {
			c.rbuf = buf[:0]
		} else {
			bufpool.Put(buf)
			c.rbuf = nil
		}
		if err != nil {
			return wire.Message{}, c.end(c.readErr(err))
		}
		switch f.Kind {
		case workerproto.KindReply, workerproto.KindException:
			if c.awaited.Add(-1) < 0 { // a reply to nothing: the worker's business
				c.awaited.Add(1)
			}
			return wire.Message{Type: wire.MsgType(f.Kind), Seq: f.Seq, Body: f.Body}, nil
		case workerproto.KindRequest:
			return wire.Message{Type: wire.MsgType(f.Kind), Seq: f.Seq, Body: f.Body}, nil
		case workerproto.KindClose:
			reason, _ := f.Body.(string)
			return wire.Message{}, c.end(&ClosedError{Worker: c.w.id, Conn: c.id, Reason: reason})
		default:
			c.w.log.Warn("pyhost: unexpected frame on a connection", "kind", f.Kind, "conn", c.id)
		}
	}
}

// readErr says why reading stopped: our own Close, a worker that broke the protocol
// (it is killed), a worker that died (its exit error), or a worker that closed the
// connection without a word.
func (c *Channel) readErr(err error) error {
	c.mu.Lock()
	local, wclosed := c.local, c.wclosed
	c.mu.Unlock()
	if local {
		return ErrChannelClosed
	}
	if wclosed && errors.Is(err, io.EOF) {
		return io.EOF // it answered what it got and ended, as asked
	}
	var ce *workerproto.CodecError
	var le *workerproto.LimitError
	if errors.As(err, &ce) || errors.As(err, &le) {
		c.w.log.Error("pyhost: worker broke the protocol; killing it", "err", err, "conn", c.id)
		c.w.Kill(fmt.Errorf("protocol error: %w", err))
	}
	// the socket ended: if the worker is dying, that is the reason
	select {
	case <-c.w.done:
		return c.w.Err()
	case <-time.After(2 * time.Second):
	}
	return &ClosedError{Worker: c.w.id, Conn: c.id, Reason: "the worker closed the connection"}
}

func (c *Channel) endedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.local {
		return ErrChannelClosed
	}
	return c.ended
}

// end records how the connection ended (first reason wins) and runs the owner's hook.
func (c *Channel) end(err error) error {
	c.mu.Lock()
	if c.ended == nil {
		c.ended = err
	}
	err = c.ended
	c.mu.Unlock()
	c.w.forget(c.id)
	c.closed()
	return err
}

// workerGone wakes a reader when the worker has died.
func (c *Channel) workerGone() { c.sock.shutdown() }

// WriteMessage sends an RPyC message to the worker. It is safe for concurrent use.
func (c *Channel) WriteMessage(m wire.Message) error {
	if err := c.endedErr(); err != nil {
		return err
	}
	c.asking(m)
	var err error
	if eerr := workerproto.Write(c.frame(m), c.w.cfg.Limits, func(b []byte) error { err = c.sock.write(b); return err }); err == nil {
		return eerr
	}
	return c.writeErr(err)
}

// WriteMessageNoWait sends m as far as the socket takes it now and returns the bytes
// it did not take (nil when it took all), for WriteUnsent once poll(2) says the
// socket has room. A relay that serves both ways on one thread writes this way: it
// must go on reading the worker's replies while the worker, busy writing one, is not
// reading requests. Until the unsent bytes are written, nothing else may be written
// to the channel.
func (c *Channel) WriteMessageNoWait(m wire.Message) (unsent []byte, err error) {
	if err := c.endedErr(); err != nil {
		return nil, err
	}
	c.asking(m)
	var serr error
	eerr := workerproto.Write(c.frame(m), c.w.cfg.Limits, func(b []byte) error {
		var n int
		if n, serr = c.sock.sendNoWait(b); serr == nil && n < len(b) {
			unsent = append([]byte(nil), b[n:]...) // b is the encoder's, reused after
		}
		return serr
	})
	if serr != nil {
		return nil, c.writeErr(serr)
	}
	return unsent, eerr
}

// WriteUnsent sends more of what WriteMessageNoWait did not, without waiting, and
// returns what is still left (nil once all is sent).
func (c *Channel) WriteUnsent(unsent []byte) ([]byte, error) {
	n, err := c.sock.sendNoWait(unsent)
	if err != nil {
		return nil, c.writeErr(err)
	}
	if n == len(unsent) {
		return nil, nil
	}
	return unsent[n:], nil
}

// asking counts a request on its way to the worker as awaited until its reply is read.
func (c *Channel) asking(m wire.Message) {
	if m.Type == wire.MsgRequest {
		c.awaited.Add(1)
	}
}

// frame is m as the worker protocol carries it on this connection.
func (c *Channel) frame(m wire.Message) workerproto.Frame {
	return workerproto.Frame{Kind: workerproto.Kind(m.Type), Conn: c.id, Seq: m.Seq, Body: m.Body}
}

// writeErr says why a write failed: the connection's end when it has ended (at
// either side), the worker's exit when it died.
func (c *Channel) writeErr(err error) error {
	if err := c.endedErr(); err != nil {
		return err
	}
	select {
	case <-c.w.done:
		return c.w.Err()
	default:
	}
	return &ClosedError{Worker: c.w.id, Conn: c.id, Reason: "the worker closed the connection"}
}

// CloseWrite tells the worker no more requests come (it reads EOF after the ones
// sent): it answers those, then ends the connection, and ReadMessage returns the
// replies and then the end.
func (c *Channel) CloseWrite() error {
	c.mu.Lock()
	c.wclosed = true
	c.mu.Unlock()
	c.sock.closeWrite()
	return nil
}

// Close ends the connection: the worker serves what it has already received, then
// drops every object it held for the connection and runs on_disconnect. Close is
// idempotent; it never waits for the worker.
func (c *Channel) Close() error {
	c.mu.Lock()
	if c.local {
		c.mu.Unlock()
		return nil
	}
	c.local = true
	c.mu.Unlock()
	c.sock.close()
	c.w.forget(c.id)
	c.closed()
	return nil
}

// closed runs the owner's hook once, whichever side ended the connection.
func (c *Channel) closed() {
	c.mu.Lock()
	f := c.onClose
	c.onClose = nil
	c.mu.Unlock()
	if f != nil {
		f(c)
	}
}

// WaitInput waits until a message (or the connection's end) can be read, or until
// Interrupt is called; interrupted says it was the latter. bridge.Conn's caller that
// reads its own reply waits here, so that its context can end the wait. When it cannot
// wait so (say the process is out of descriptors for the eventfd that Interrupt
// writes), it returns at once and ReadMessage waits instead. It returns no error: the
// next ReadMessage reports any.
func (c *Channel) WaitInput() (interrupted bool, err error) {
	if c.rd.Buffered() > 0 {
		return false, nil
	}
	return c.sock.waitInput(), nil
}

// Interrupt makes a WaitInput under way, or the next one, return (interrupted).
func (c *Channel) Interrupt() { c.sock.interrupt() }

// Buffered is how many bytes of the worker's next frames are already read.
func (c *Channel) Buffered() int { return c.rd.Buffered() }

// Fd is the connection socket's descriptor, read in blocking mode, for waiting on it
// with poll(2) (bridge.Relay does).
func (c *Channel) Fd() (int, bool) { return c.sock.fd, true }
