package pyhost

import (
	"sync"

	"github.com/pybridge/pybridge/bridge/wire"
)

// Channel is one RPyC connection inside a worker, a wire.MessageStream: what
// bridge.Conn and bridge.Relay run on. Messages from the worker queue up without bound
// per channel, so a slow reader of one connection never stalls the worker's other
// connections.
type Channel struct {
	w  *Worker
	id uint64

	mu      sync.Mutex
	queue   []Frame
	head    int
	wake    chan struct{} // a token whenever the queue or err changed
	err     error         // set once: ReadMessage returns it after the queue drains
	local   bool          // Close was called
	remote  bool          // the worker sent CLOSE (or died): no CLOSE goes back
	onClose func(*Channel)
}

func newChannel(w *Worker, id uint64) *Channel {
	return &Channel{w: w, id: id, wake: make(chan struct{}, 1)}
}

// ID is the connection id on the worker socket.
func (c *Channel) ID() uint64 { return c.id }

// Worker is the worker the connection lives in.
func (c *Channel) Worker() *Worker { return c.w }

func (c *Channel) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *Channel) push(f Frame) {
	c.mu.Lock()
	if c.err == nil {
		c.queue = append(c.queue, f)
	}
	c.mu.Unlock()
	c.signal()
}

// fail ends the channel with err (the first error wins) once queued messages are read.
func (c *Channel) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.remote = true
	c.mu.Unlock()
	c.signal()
}

func (c *Channel) remoteClose(err error) {
	c.fail(err)
	c.closed()
}

// ReadMessage returns the next RPyC message from the worker. After the worker closed
// the connection it returns a *ClosedError, after the worker died a *WorkerExitError,
// after Close ErrChannelClosed.
func (c *Channel) ReadMessage() (wire.Message, error) {
	for {
		c.mu.Lock()
		if c.head < len(c.queue) && !c.local {
			f := c.queue[c.head]
			c.queue[c.head] = Frame{}
			c.head++
			if c.head == len(c.queue) {
				c.queue, c.head = c.queue[:0], 0
			}
			c.mu.Unlock()
			return wire.Message{Type: wire.MsgType(f.Kind), Seq: f.Seq, Body: f.Body}, nil
		}
		if c.err != nil {
			err := c.err
			c.mu.Unlock()
			return wire.Message{}, err
		}
		c.mu.Unlock()
		<-c.wake
	}
}

// WriteMessage sends an RPyC message to the worker. It is safe for concurrent use.
func (c *Channel) WriteMessage(m wire.Message) error {
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return c.w.send(Frame{Kind: Kind(m.Type), Conn: c.id, Seq: m.Seq, Body: m.Body})
}

// Close ends the connection: the worker drops every object it held for it and runs
// on_disconnect. Close is idempotent; it never waits for the worker.
func (c *Channel) Close() error {
	c.mu.Lock()
	if c.local {
		c.mu.Unlock()
		return nil
	}
	c.local = true
	send := !c.remote
	c.queue, c.head = nil, 0
	if c.err == nil {
		c.err = ErrChannelClosed
	}
	c.remote = true
	c.mu.Unlock()
	c.signal()
	c.w.forget(c.id)
	if send {
		c.w.send(Frame{Kind: KindClose, Conn: c.id})
	}
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
