package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"

	"sync"
	"sync/atomic"

	"github.com/pybridge/pybridge/bridge/brine"
	"github.com/pybridge/pybridge/bridge/wire"
	"github.com/pybridge/pybridge/internal/sched"
)

// Config configures a Conn.
type Config struct {
	// Root is what the peer gets for GETROOT (conn.root in Python); nil serves None.
	Root any
	// ByValue lets Go slices and maps travel by value (as Python lists and dicts). Only
	// pybridge workers in mode "go" accept them; plain rpyc peers do not.
	ByValue bool
	// Logger gets protocol trouble (default slog.Default()).
	Logger *slog.Logger
}

// Conn is one side of an RPyC connection: it sends requests to the peer and serves the
// peer's requests on the Go values it was handed, at the same time. Whoever reads the
// stream (a reader goroutine, or on an InputWaiter the caller waiting for a reply: see
// readRole) routes replies to their callers and serves each incoming request on its
// own goroutine, so calls nest and re-enter freely (Python calls a Go func that calls
// Python again). A Conn is safe for concurrent use.
type Conn struct {
	stream wire.MessageStream // nil for a local peer
	local  LocalPeer          // an in-process peer (NewLocalConn), nil for a stream
	cfg    Config
	log    *slog.Logger
	seq    atomic.Int64

	mu      sync.Mutex
	pending map[int64]chan wire.Message
	ignored map[int64]bool // async requests and abandoned calls: release what their replies hold

	objects objectTable
	refs    refCache
	root    atomic.Pointer[Ref]

	role *readRole // callers read their own replies (an InputWaiter stream), else nil

	done      chan struct{}
	closeOnce sync.Once
	err       error
}

// NewConn starts a peer over stream.
func NewConn(stream wire.MessageStream, cfg Config) *Conn {
	c := &Conn{stream: stream, cfg: cfg, log: cfg.Logger, pending: map[int64]chan wire.Message{},
		ignored: map[int64]bool{}, done: make(chan struct{})}
	if c.log == nil {
		c.log = slog.Default()
	}
	if w, ok := stream.(InputWaiter); ok {
		c.role = newReadRole(w)
		go c.backgroundReader()
	} else {
		go c.readLoop()
	}
	return c
}

// Done is closed when the connection has ended; Err then says why.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the connection ended (nil while it runs).
func (c *Conn) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// readLoop reads the stream for a Conn whose callers cannot (no InputWaiter).
func (c *Conn) readLoop() {
	var yield sched.Yielder // it reads in blocking system calls and never parks
	for {
		yield.Tick()
		m, err := c.stream.ReadMessage()
		if !c.route(m, err) {
			return
		}
	}
}

// route handles what a read of the stream returned: a request is served on a goroutine
// of its own, a reply goes to its caller. It returns false once the connection ended.
func (c *Conn) route(m wire.Message, err error) bool {
	var ol *wire.OverLimitError
	switch {
	case err == nil:
	case errors.As(err, &ol) && ol.Type == wire.MsgRequest:
		c.send(wire.MsgException, ol.Seq, ol.Reply().Body) // that request fails alone
		return true
	case errors.As(err, &ol):
		m = ol.Reply() // the caller gets the error, the connection lives
	default:
		c.shutdown(fmt.Errorf("%w: %w", ErrConnClosed, err))
		return false
	}
	switch m.Type {
	case wire.MsgRequest:
		go c.serve(m)
	case wire.MsgReply, wire.MsgException:
		c.mu.Lock()
		ch := c.pending[m.Seq]
		delete(c.pending, m.Seq)
		ignored := c.ignored[m.Seq]
		delete(c.ignored, m.Seq)
		if ch != nil {
			// under the lock (the buffer holds the one reply): a waiter giving up
			// either still finds its seq pending or finds the reply in ch
			ch <- m
		}
		c.mu.Unlock()
		switch {
		case ch == nil && ignored && m.Type == wire.MsgReply:
			go c.releaseIn(m.Body)
		case ch == nil && !ignored:
			c.log.Warn("bridge: reply to no request", "seq", m.Seq, "type", m.Type)
		}
	default:
		c.log.Warn("bridge: unknown message type", "type", m.Type, "seq", m.Seq)
	}
	return true
}

// releaseIn releases the references a reply nobody waits for carries.
func (c *Conn) releaseIn(body any) {
	v, err := c.unbox(body)
	if err == nil {
		releaseRefs(v)
	}
}

func releaseRefs(v any) {
	switch v := v.(type) {
	case *Ref:
		v.Close()
	case brine.Tuple:
		for _, x := range v {
			releaseRefs(x)
		}
	}
}

func (c *Conn) shutdown(err error) {
	c.closeOnce.Do(func() {
		c.log.Debug("bridge: connection ends", "err", err)
		c.err = err
		// done first: a request whose send fails on the stream closed below then says
		// why the connection ended, not that the stream was closed
		close(c.done)
		if c.local != nil {
			c.local.Close()
		} else {
			c.stream.Close()
		}
		c.objects.clear()
	})
}

// Close ends the connection: the peer is told (CLOSE) and drops what it held for it.
func (c *Conn) Close() error {
	select {
	case <-c.done:
		return nil
	default:
	}
	if c.local == nil {
		seq := c.seq.Add(1)
		c.mu.Lock()
		c.ignored[seq] = true // its reply may still arrive before the stream closes
		c.mu.Unlock()
		c.send(wire.MsgRequest, seq, brine.Tuple{int64(wire.HandleClose), brine.Tuple{int64(wire.LabelValue), brine.Tuple{}}})
	}
	c.shutdown(ErrConnClosed)
	return nil
}

func (c *Conn) send(t wire.MsgType, seq int64, body any) error {
	return c.stream.WriteMessage(wire.Message{Type: t, Seq: seq, Body: body})
}

// Request sends a request and waits for its reply: the result as a brine value or a
// *Ref, or the peer's exception as a *RemoteError. When ctx ends first it returns
// ctx.Err(); the peer still runs the request, and whatever it returns is released.
func (c *Conn) Request(ctx context.Context, h wire.Handler, args ...any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err // not sent: the peer runs nothing for a caller already gone
	}
	if c.local != nil {
		select {
		case <-c.done:
			return nil, c.err
		default:
		}
		v, err := c.local.Request(ctx, c, h, args)
		// a Ref among args holds the Python object the call is using: it must not be
		// released (its cleanup) while the call runs
		runtime.KeepAlive(args)
		return v, err
	}
	return c.Async(h, args...).Wait(ctx)
}

// AsyncResult is a request in flight (rpyc's AsyncResult): Wait for its reply.
type AsyncResult struct {
	conn *Conn
	h    wire.Handler
	seq  int64
	ch   chan wire.Message
	err  error

	localDone chan struct{} // a local peer's request, run on its own goroutine
	localVal  any
	localErr  error
}

// Async sends a request and returns at once; Wait collects the reply. A result nobody
// waits for keeps what the reply holds until the connection ends: use AsyncRequest to
// fire and forget.
func (c *Conn) Async(h wire.Handler, args ...any) *AsyncResult {
	if c.local != nil {
		return c.localAsync(h, args)
	}
	a := &AsyncResult{conn: c, h: h}
	select {
	case <-c.done:
		a.err = c.err
		return a
	default:
	}
	boxed, err := c.box(brine.Tuple(args))
	if err != nil {
		a.err = err
		return a
	}
	a.seq = c.seq.Add(1)
	a.ch = make(chan wire.Message, 1)
	c.mu.Lock()
	c.pending[a.seq] = a.ch
	c.mu.Unlock()
	err = c.send(wire.MsgRequest, a.seq, brine.Tuple{int64(h), boxed})
	// The Refs among args were only read for their id_packs: without this, the
	// collector could release one (its cleanup sends DEL) before the request naming it
	// is sent, and the peer would drop the object the request is about.
	runtime.KeepAlive(args)
	if err != nil {
		c.abandon(a.seq)
		select {
		case <-c.done: // the connection had ended: say why
			a.err = c.err
		default:
			a.err = fmt.Errorf("send %v: %w", h, err)
		}
	}
	return a
}

// Wait waits for the reply. When ctx ends first it returns ctx.Err() and the reply,
// whenever it comes, is released. Wait may be called once.
func (a *AsyncResult) Wait(ctx context.Context) (any, error) {
	if a.err != nil {
		return nil, a.err
	}
	if a.localDone != nil {
		return a.waitLocal(ctx)
	}
	c := a.conn
	if c.role != nil {
		return a.waitReading(ctx)
	}
	select {
	case m := <-a.ch:
		return c.result(m)
	case <-ctx.Done():
		return a.gaveUp(ctx)
	case <-c.done:
		return nil, c.err
	}
}

// result is what a reply says: the value, or the peer's exception.
func (c *Conn) result(m wire.Message) (any, error) {
	if m.Type == wire.MsgException {
		return nil, loadException(m.Body)
	}
	return c.unbox(m.Body)
}

// gaveUp ends a Wait whose ctx ended: the reply, whenever it comes, is released.
func (a *AsyncResult) gaveUp(ctx context.Context) (any, error) {
	c := a.conn
	c.abandon(a.seq)
	// the reply may have arrived while we gave up: release what it holds
	select {
	case m := <-a.ch:
		if m.Type == wire.MsgReply {
			go c.releaseIn(m.Body)
		}
	default:
	}
	return nil, ctx.Err()
}

func (c *Conn) abandon(seq int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, waiting := c.pending[seq]; waiting {
		delete(c.pending, seq)
		c.ignored[seq] = true
	}
}

// AsyncRequest sends a request without waiting; its reply is discarded (and any
// references in it released).
func (c *Conn) AsyncRequest(h wire.Handler, args ...any) error {
	if c.local != nil {
		a := c.localAsync(h, args)
		go func() {
			<-a.localDone
			releaseRefs(a.localVal)
		}()
		return nil
	}
	boxed, err := c.box(brine.Tuple(args))
	if err != nil {
		return err
	}
	seq := c.seq.Add(1)
	c.mu.Lock()
	c.ignored[seq] = true
	c.mu.Unlock()
	err = c.send(wire.MsgRequest, seq, brine.Tuple{int64(h), boxed})
	runtime.KeepAlive(args) // as in Async
	return err
}

func (c *Conn) sendDel(idPack brine.Tuple, count int64) {
	select {
	case <-c.done:
		return
	default:
	}
	seq := c.seq.Add(1)
	c.mu.Lock()
	c.ignored[seq] = true
	c.mu.Unlock()
	args := brine.Tuple{int64(wire.LabelTuple), brine.Tuple{
		brine.Tuple{int64(wire.LabelLocalRef), idPack}, brine.Tuple{int64(wire.LabelValue), count}}}
	c.send(wire.MsgRequest, seq, brine.Tuple{int64(wire.HandleDel), args})
}

// Ping checks the peer answers.
func (c *Conn) Ping(ctx context.Context) error {
	v, err := c.Request(ctx, wire.HandlePing, []byte("pybridge"))
	if err == nil && string(asBytes(v)) != "pybridge" {
		err = &ProtocolError{Msg: "ping echo mismatch"}
	}
	return err
}

func asBytes(v any) []byte { b, _ := v.([]byte); return b }

// Root is the peer's root object (its service).
func (c *Conn) Root(ctx context.Context) (*Ref, error) {
	if r := c.root.Load(); r != nil {
		return r, nil
	}
	v, err := c.Request(ctx, wire.HandleGetRoot)
	if err != nil {
		return nil, err
	}
	r, ok := v.(*Ref)
	if !ok {
		return nil, &ProtocolError{Msg: fmt.Sprintf("root is %T, not an object", v)}
	}
	c.root.Store(r)
	return r, nil
}
