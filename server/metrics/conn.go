package metrics

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pybridge/pybridge/bridge/wire"
)

// Conn is one client connection's metrics: the wire.Observer of its stream
// (FrameStream.SetObserver), closed with Close when the connection ends. Its methods
// do nothing on a nil *Conn.
type Conn struct {
	m         *Metrics
	transport Transport
	dialect   atomic.Int32 // dialect index, closed once Close ran

	// the client's requests read and not answered yet, for their latency: a request
	// past maxPending at once (a burst of async requests) is counted but not timed
	mu      sync.Mutex
	n       int
	pending [maxPending]pendingRequest
}

const (
	maxPending = 32
	closed     = -1
)

type pendingRequest struct {
	seq     int64
	handler int
	start   time.Time
}

// Conn counts a new client connection (open, dialect none until Settled) and returns
// its metrics.
func (m *Metrics) Conn(t Transport) *Conn {
	c := &Conn{m: m, transport: t}
	m.open[dialectNone][t].Inc()
	return c
}

// Settled moves the connection to its dialect's series (wire.Observer).
func (c *Conn) Settled(d wire.Dialect) {
	i := dialectIndex(d)
	if c == nil || i == dialectNone || !c.dialect.CompareAndSwap(dialectNone, i) {
		return
	}
	c.m.open[dialectNone][c.transport].Dec()
	c.m.open[i][c.transport].Inc()
	c.m.opened[i][c.transport].Inc()
}

// Received counts a message from the client; a request is counted by handler and
// timed until its reply is Sent (wire.Observer).
func (c *Conn) Received(t wire.MsgType, seq int64, handler wire.Handler, frameBytes int) {
	if c == nil {
		return
	}
	c.m.bytesIn.Add(float64(frameBytes))
	if t != wire.MsgRequest {
		return // the client's reply to a callback
	}
	h := int(handler)
	if h >= numHandlers {
		h = 0
	}
	c.m.requests[h].Inc()
	now := time.Now()
	c.mu.Lock()
	if c.n < maxPending {
		c.pending[c.n] = pendingRequest{seq: seq, handler: h, start: now}
		c.n++
	}
	c.mu.Unlock()
}

// Sent counts a message to the client; a reply or exception ends its request's timing
// (wire.Observer).
func (c *Conn) Sent(t wire.MsgType, seq int64, frameBytes int) {
	if c == nil {
		return
	}
	c.m.bytesOut.Add(float64(frameBytes))
	if t == wire.MsgRequest {
		return // a callback to the client
	}
	c.mu.Lock()
	var p pendingRequest
	found := false
	for i := range c.n {
		if c.pending[i].seq == seq {
			p, found = c.pending[i], true
			c.n--
			c.pending[i] = c.pending[c.n]
			break
		}
	}
	c.mu.Unlock()
	if !found {
		return
	}
	c.m.latency[p.handler].Observe(time.Since(p.start).Seconds())
	if t == wire.MsgException {
		c.m.exceptions[p.handler].Inc()
	}
}

// Refused counts a message over a value limit, which fails alone (wire.Observer).
func (c *Conn) Refused(t wire.MsgType, frameBytes int) {
	if c == nil {
		return
	}
	c.m.bytesIn.Add(float64(frameBytes))
	c.m.errors[KindOverLimit].Inc()
}

// Close counts the connection closed, and err, when it is one (Classify). Later calls
// do nothing.
func (c *Conn) Close(err error) {
	if c == nil {
		return
	}
	d := c.dialect.Swap(closed)
	if d == closed {
		return
	}
	c.m.open[d][c.transport].Dec()
	if d == dialectNone {
		c.m.opened[dialectNone][c.transport].Inc()
	}
	if k, ok := Classify(err); ok {
		c.m.errors[k].Inc()
	}
}
