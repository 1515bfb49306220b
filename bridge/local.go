package bridge

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"weak"

	"github.com/pybridge/pybridge/bridge/brine"
	"github.com/pybridge/pybridge/bridge/wire"
)

// LocalPeer is a peer in this very process that a Conn reaches with function calls
// instead of messages: pybridge's embedded interpreter (package pyhost, isolation
// "embedded"). A Conn on a LocalPeer offers everything a Conn on a stream does, with
// the same results and errors; each request runs synchronously on the calling
// goroutine, and a Ref holds the peer's object itself, so calling through it crosses
// no socket, thread or encoding.
//
// Implementations live in package pyhost; users never implement it.
type LocalPeer interface {
	// Request performs handler h. args are what the Conn's methods pass: the Ref the
	// request is made on first, then Go values, Refs of this Conn (LocalObject) and
	// Go values to hand over by reference (Box). It returns a brine value, plain data
	// ([]any, maps) or a Ref made with LocalRef; a Python exception as a *RemoteError.
	Request(ctx context.Context, c *Conn, h wire.Handler, args []any) (any, error)
	// IDPack names obj as the peer does: (name_pack, class id, instance id).
	IDPack(obj any) brine.Tuple
	// Release drops the reference to obj a Ref held. It is called from any goroutine.
	Release(obj any)
	// Close ends the peer's side of the connection.
	Close() error
}

// NewLocalConn starts a Conn on an in-process peer.
func NewLocalConn(peer LocalPeer, cfg Config) *Conn {
	c := &Conn{local: peer, cfg: cfg, log: cfg.Logger, pending: map[int64]chan wire.Message{},
		ignored: map[int64]bool{}, done: make(chan struct{})}
	if c.log == nil {
		c.log = slog.Default()
	}
	return c
}

// LocalRef returns the Ref that holds obj, a reference the caller owns to an object of
// the local peer; key identifies the object (its address). A new Ref takes the
// caller's reference over, and its cleanup releases it (LocalPeer.Release). When the
// object already has a live Ref, that Ref is returned with fresh false: the caller
// still owns, and must drop, its own reference.
func (c *Conn) LocalRef(obj any, key uintptr) (r *Ref, fresh bool) {
	rc := &c.refs
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.local == nil {
		rc.local = map[uintptr]weak.Pointer[Ref]{}
	}
	if wp, ok := rc.local[key]; ok {
		if r := wp.Value(); r != nil && !r.state.released.Load() {
			return r, false
		}
	}
	st := &refState{obj: obj, localKey: key}
	st.count.Store(1)
	r = &Ref{conn: c, state: st}
	wp := weak.Make(r)
	rc.local[key] = wp
	runtime.AddCleanup(r, func(s *refState) { c.dropLocal(s, wp) }, st)
	return r, true
}

func (c *Conn) dropLocal(s *refState, wp weak.Pointer[Ref]) {
	c.refs.mu.Lock()
	if cur, ok := c.refs.local[s.localKey]; ok && cur == wp {
		delete(c.refs.local, s.localKey)
	}
	released := s.released.Swap(true)
	c.refs.mu.Unlock()
	if !released {
		c.local.Release(s.obj)
	}
}

// LocalObject is the local peer's object a Ref holds, nil for a Ref of a remote peer.
func (r *Ref) LocalObject() any { return r.state.obj }

// Box turns a Go value into the boxed form the peer receives (label, value): by value
// when it can travel so (brine values; slices and maps when Config.ByValue), a Ref of
// this Conn as LOCAL_REF, anything else as REMOTE_REF naming it in this Conn's object
// table. For a local peer a Ref's LOCAL_REF carries the *Ref itself.
func (c *Conn) Box(v any) (any, error) { return c.box(v) }

// ServeRequest answers one request the local peer makes of this side's Go values (a
// Go func Python calls), on the calling goroutine, and returns the reply: REPLY or
// EXCEPTION with the request's seq. Refs in the request's body are this Conn's.
func (c *Conn) ServeRequest(m wire.Message) wire.Message {
	t, body := c.reply(m)
	return wire.Message{Type: t, Seq: m.Seq, Body: body}
}

// Unbox turns a boxed value the peer sent into a Go value: a brine value or a Ref (for
// a local peer the REMOTE_REF carries the *Ref, made with LocalRef), or a Go value of
// this Conn's object table.
func (c *Conn) Unbox(b any) (any, error) { return c.unbox(b) }

// LoadException turns an EXCEPTION body (rpyc's vinegar tuple, or 1 for
// StopIteration) into the error a request returns: a *RemoteError or ErrStopIteration.
func LoadException(body any) error { return loadException(body) }

// localAsync runs a request on its own goroutine for Async on a local peer.
func (c *Conn) localAsync(h wire.Handler, args []any) *AsyncResult {
	a := &AsyncResult{conn: c, h: h, localDone: make(chan struct{})}
	go func() {
		a.localVal, a.localErr = c.local.Request(context.Background(), c, h, args)
		runtime.KeepAlive(args) // see Request
		close(a.localDone)
	}()
	return a
}

func (a *AsyncResult) waitLocal(ctx context.Context) (any, error) {
	select {
	case <-a.localDone:
		return a.localVal, a.localErr
	case <-ctx.Done():
		go func() {
			<-a.localDone
			releaseRefs(a.localVal)
		}()
		return nil, ctx.Err()
	}
}

func (c *Conn) localIDPack(s *refState) brine.Tuple {
	c.refs.mu.Lock()
	p := s.idPack
	c.refs.mu.Unlock()
	if p != nil {
		return p
	}
	p = c.local.IDPack(s.obj)
	if p == nil {
		p = brine.Tuple{fmt.Sprintf("object at %#x", s.localKey), int64(0), int64(s.localKey)}
	}
	c.refs.mu.Lock()
	s.idPack = p
	c.refs.mu.Unlock()
	return p
}
