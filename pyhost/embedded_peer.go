//go:build cgo

package pyhost

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pybridge/pybridge/bridge"
	"github.com/pybridge/pybridge/bridge/brine"
	"github.com/pybridge/pybridge/bridge/wire"
	"github.com/pybridge/pybridge/pyhost/internal/cpython"
)

// Connect opens a connection in mode "go" to the embedded interpreter: a bridge.Conn
// whose requests run on the calling goroutine through the C API (a Ref holds the
// Python object itself), with the semantics of a worker connection.
func (e *Embedded) Connect(ctx context.Context) (*bridge.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := &localPeer{e: e}
	cpython.Enter()
	defer cpython.Leave()
	if err := e.loadHelpers(); err != nil {
		return nil, err
	}
	var fns []cpython.Object
	for _, fn := range []cpython.Func{p.recv, p.send, p.close} {
		o, err := cpython.NewFunc(fn)
		if err != nil {
			return nil, err
		}
		fns = append(fns, o)
	}
	conn, err := e.helpers.directConnection.Call(fns, cpython.Object{})
	for _, o := range fns {
		o.DecRef()
	}
	if err != nil {
		return nil, fmt.Errorf("pyhost: embedded connection: %w", takeException(err))
	}
	p.py = conn
	p.handlers, err = conn.Attr("HANDLERS")
	if err != nil {
		conn.DecRef()
		return nil, takeException(err)
	}
	p.conn = bridge.NewLocalConn(p, bridge.Config{ByValue: true, Logger: e.log})
	return p.conn, nil
}

// pyHelpers are the pybridge.embedded functions a local peer uses.
type pyHelpers struct {
	directConnection, handle, hasOverride, exceptionBody, idPack cpython.Object
	cancelled, byValue                                           cpython.Object
}

func (e *Embedded) loadHelpers() error {
	e.helpersOnce.Do(func() {
		mod, err := cpython.Import("pybridge.embedded")
		if err != nil {
			e.helpersErr = takeException(err)
			return
		}
		defer mod.DecRef()
		h := &e.helpers
		for _, a := range []struct {
			name string
			dst  *cpython.Object
		}{
			{"direct_connection", &h.directConnection}, {"handle", &h.handle},
			{"has_access_override", &h.hasOverride}, {"exception_body", &h.exceptionBody},
			{"get_id_pack", &h.idPack}, {"Cancelled", &h.cancelled}, {"ByValue", &h.byValue},
		} {
			if *a.dst, err = mod.Attr(a.name); err != nil {
				e.helpersErr = takeException(err)
				return
			}
		}
	})
	return e.helpersErr
}

// localPeer is the embedded interpreter as a bridge.LocalPeer: one Go program's
// connection (a pybridge.embedded.DirectConnection).
type localPeer struct {
	e        *Embedded
	conn     *bridge.Conn
	py       cpython.Object // the DirectConnection
	handlers cpython.Object // its HANDLERS dict

	mu       sync.Mutex
	releases []cpython.Object // dropped by Refs, waiting for the GIL
	flushing bool
	closed   bool
}

// object is the Python object a Ref argument holds.
func (p *localPeer) object(v any) (cpython.Object, error) {
	r, ok := v.(*bridge.Ref)
	if !ok || r.Conn() != p.conn {
		return cpython.Object{}, fmt.Errorf("pyhost: %T is not an object of this connection", v)
	}
	o, ok := r.LocalObject().(cpython.Object)
	if !ok {
		return cpython.Object{}, fmt.Errorf("pyhost: %v holds no embedded object", r)
	}
	return o, nil
}

// toPython converts a Go argument (the GIL held): Refs to their objects, brine values
// and plain data by value, other Go values to proxies of this connection's Go side.
func (p *localPeer) toPython(v any) (cpython.Object, error) {
	enc := cpython.Encoder{Fallback: p.goToPython}
	return enc.Object(v)
}

func (p *localPeer) goToPython(v any) (cpython.Object, error) {
	if r, ok := v.(*bridge.Ref); ok {
		o, err := p.object(r)
		return o.IncRef(), err
	}
	b, err := p.conn.Box(v)
	if err != nil {
		return cpython.Object{}, err
	}
	t, _ := b.(brine.Tuple)
	if len(t) != 2 {
		return cpython.Object{}, fmt.Errorf("pyhost: cannot pass a Go %T to Python", v)
	}
	label, _ := t[0].(int64)
	switch wire.Label(label) {
	case wire.LabelValue:
		return p.toPython(t[1])
	case wire.LabelRemoteRef:
		idPack, err := (&cpython.Encoder{}).Object(t[1])
		if err != nil {
			return cpython.Object{}, err
		}
		defer idPack.DecRef()
		return p.py.CallAttr("proxy_for", idPack)
	}
	return cpython.Object{}, fmt.Errorf("pyhost: cannot pass a Go %T to Python", v)
}

// toGo converts a result as boxing would (the GIL held, o borrowed): values by value,
// anything else a Ref holding the object.
func (p *localPeer) toGo(o cpython.Object) (any, error) {
	dec := cpython.Decoder{Fallback: p.refOrValue}
	return dec.Value(o)
}

func (p *localPeer) refOrValue(o cpython.Object) (any, error) {
	if o.Type().Ptr() == p.e.helpers.byValue.Ptr() {
		data, err := o.Attr("data")
		if err != nil {
			return nil, err
		}
		defer data.DecRef()
		return (&cpython.Decoder{Lists: true}).Value(data)
	}
	return p.ref(o), nil
}

// ref makes the Ref holding o (borrowed).
func (p *localPeer) ref(o cpython.Object) *bridge.Ref {
	r, fresh := p.conn.LocalRef(o.IncRef(), o.Ptr())
	if !fresh {
		o.DecRef()
	}
	return r
}

// Request runs a request on the calling goroutine, holding the GIL. The handlers a Go
// program uses most run through the C API; the rest through the Python peer's own
// handler functions. An object whose type controls attribute access (_rpyc_getattr,
// e.g. an rpyc.Service) is always served by the Python handlers, as a worker serves it.
func (p *localPeer) Request(ctx context.Context, c *bridge.Conn, h wire.Handler, args []any) (any, error) {
	cpython.Enter()
	defer cpython.Leave()
	p.flush()
	if p.isClosed() {
		return nil, bridge.ErrConnClosed
	}
	call := p.e.watch(ctx)
	r, err := p.request(h, args)
	if cancelled := p.e.unwatch(call); cancelled && err != nil {
		var exc *cpython.Exception
		if errors.As(err, &exc) {
			exc.Release()
		}
		return nil, ctx.Err()
	}
	return r, err
}

func (p *localPeer) request(h wire.Handler, args []any) (any, error) {
	arg := func(i int) any {
		if i < len(args) {
			return args[i]
		}
		return nil
	}
	switch h {
	case wire.HandlePing:
		return arg(0), nil
	case wire.HandleGetRoot:
		root, err := p.py.Attr("_local_root")
		if err != nil {
			return nil, p.exception(err)
		}
		defer root.DecRef()
		return p.ref(root), nil
	case wire.HandleGetAttr, wire.HandleSetAttr, wire.HandleDelAttr, wire.HandleCall,
		wire.HandleCallAttr, wire.HandleRepr, wire.HandleStr, wire.HandleDir:
		obj, err := p.object(arg(0))
		if err != nil {
			return nil, err
		}
		if !p.e.overrides(obj) {
			return p.fast(h, obj, args)
		}
	}
	return p.viaHandler(h, args)
}

// fast runs the common handlers through the C API, as the Python handlers would in
// mode go (every attribute allowed).
func (p *localPeer) fast(h wire.Handler, obj cpython.Object, args []any) (any, error) {
	name, _ := args[min(1, len(args)-1)].(string)
	var (
		r   cpython.Object
		err error
	)
	switch h {
	case wire.HandleGetAttr:
		r, err = obj.Attr(name)
	case wire.HandleSetAttr:
		var v cpython.Object
		if v, err = p.toPython(args[2]); err == nil {
			err = obj.SetAttr(name, v)
			v.DecRef()
		}
		if err != nil {
			return nil, p.exception(err)
		}
		return nil, nil
	case wire.HandleDelAttr:
		if err = obj.SetAttr(name, cpython.Object{}); err != nil {
			return nil, p.exception(err)
		}
		return nil, nil
	case wire.HandleCall:
		r, err = p.call(obj, args[1], args[2])
	case wire.HandleCallAttr:
		var f cpython.Object
		if f, err = obj.Attr(name); err == nil {
			r, err = p.call(f, args[2], args[3])
			f.DecRef()
		}
	case wire.HandleRepr:
		s, err := obj.Repr()
		return s, p.exception(err)
	case wire.HandleStr:
		s, err := obj.String()
		return s, p.exception(err)
	case wire.HandleDir:
		var names cpython.Object
		if names, err = obj.Dir(); err != nil {
			return nil, p.exception(err)
		}
		defer names.DecRef()
		v, err := (&cpython.Decoder{Lists: true}).Value(names)
		if err != nil {
			return nil, err
		}
		l, _ := v.([]any)
		return brine.Tuple(l), nil
	}
	if err != nil {
		return nil, p.exception(err)
	}
	defer r.DecRef()
	return p.toGo(r)
}

// call is f(*args, **dict(kwargs)); args is a brine.Tuple, kwargs one of pairs.
func (p *localPeer) call(f cpython.Object, args, kwargs any) (cpython.Object, error) {
	pos, _ := args.(brine.Tuple)
	objs := make([]cpython.Object, 0, len(pos))
	defer func() {
		for _, o := range objs {
			o.DecRef()
		}
	}()
	for _, a := range pos {
		o, err := p.toPython(a)
		if err != nil {
			return cpython.Object{}, err
		}
		objs = append(objs, o)
	}
	var kw cpython.Object
	if pairs, _ := kwargs.(brine.Tuple); len(pairs) > 0 {
		m := make(map[string]any, len(pairs))
		for _, pr := range pairs {
			if kv, ok := pr.(brine.Tuple); ok && len(kv) == 2 {
				if k, ok := kv[0].(string); ok {
					m[k] = kv[1]
				}
			}
		}
		var err error
		if kw, err = p.toPython(m); err != nil {
			return cpython.Object{}, err
		}
		defer kw.DecRef()
	}
	return f.Call(objs, kw)
}

// viaHandler runs the Python peer's handler for h on the converted arguments.
func (p *localPeer) viaHandler(h wire.Handler, args []any) (any, error) {
	t, err := p.toPython(brine.Tuple(args))
	if err != nil {
		return nil, err
	}
	defer t.DecRef()
	hv, err := (&cpython.Encoder{}).Object(int64(h))
	if err != nil {
		return nil, err
	}
	defer hv.DecRef()
	r, err := p.e.helpers.handle.Call([]cpython.Object{p.py, hv, t}, cpython.Object{})
	if err != nil {
		return nil, p.exception(err)
	}
	defer r.DecRef()
	return p.toGo(r)
}

// exception turns a Python exception into the error a worker's reply would give: a
// *bridge.RemoteError with the traceback (or bridge.ErrStopIteration).
func (p *localPeer) exception(err error) error {
	var exc *cpython.Exception
	if err == nil || !errors.As(err, &exc) || exc.Type.IsNil() {
		return err
	}
	defer exc.Release()
	tb := exc.Traceback
	if tb.IsNil() {
		tb = cpython.None()
		defer tb.DecRef()
	}
	val := exc.Value
	if val.IsNil() {
		val = cpython.None()
		defer val.DecRef()
	}
	body, derr := p.e.helpers.exceptionBody.Call([]cpython.Object{exc.Type, val, tb}, cpython.Object{})
	if derr != nil {
		return fmt.Errorf("%s (and describing it failed: %v)", exc.Error(), takeException(derr))
	}
	defer body.DecRef()
	v, derr := (&cpython.Decoder{}).Value(body)
	if derr != nil {
		return fmt.Errorf("%s (and describing it failed: %v)", exc.Error(), takeException(derr))
	}
	return bridge.LoadException(v)
}

// IDPack names obj as the Python peer does.
func (p *localPeer) IDPack(obj any) brine.Tuple {
	o, ok := obj.(cpython.Object)
	if !ok {
		return nil
	}
	cpython.Enter()
	defer cpython.Leave()
	r, err := p.e.helpers.idPack.Call([]cpython.Object{o}, cpython.Object{})
	if err != nil {
		takeException(err)
		return nil
	}
	defer r.DecRef()
	v, err := (&cpython.Decoder{}).Value(r)
	if err != nil {
		return nil
	}
	t, _ := v.(brine.Tuple)
	return t
}

// Release queues obj's reference to be dropped under the GIL: at the next request, or
// within a moment by a goroutine of its own.
func (p *localPeer) Release(obj any) {
	o, ok := obj.(cpython.Object)
	if !ok {
		return
	}
	p.mu.Lock()
	p.releases = append(p.releases, o)
	start := !p.flushing
	p.flushing = true
	p.mu.Unlock()
	if start {
		time.AfterFunc(20*time.Millisecond, func() {
			cpython.Enter()
			p.flush()
			cpython.Leave()
		})
	}
}

// flush drops the queued references (the GIL held).
func (p *localPeer) flush() {
	p.mu.Lock()
	objs := p.releases
	p.releases = nil
	p.flushing = false
	p.mu.Unlock()
	for _, o := range objs {
		o.DecRef()
	}
}

func (p *localPeer) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// Close ends the Python side: the connection finishes and drops what it held.
func (p *localPeer) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	cpython.Enter()
	defer cpython.Leave()
	p.flush()
	if r, err := p.py.CallAttr("close"); err == nil {
		r.DecRef()
	} else {
		takeException(err)
	}
	p.handlers.DecRef()
	p.py.DecRef()
	return nil
}

// recv: nothing is ever received on a direct connection (send returns the reply).
func (p *localPeer) recv(args cpython.Object) (cpython.Object, error) {
	return cpython.Object{}, &cpython.Raise{Class: "EOFError", Msg: "a direct connection receives nothing"}
}

// send(REQUEST, seq, body) runs Python's request of a Go value at once, with the GIL
// released meanwhile, and returns the reply as (kind, body).
func (p *localPeer) send(args cpython.Object) (cpython.Object, error) {
	dec := cpython.Decoder{Lists: true, Fallback: func(o cpython.Object) (any, error) { return p.ref(o), nil }}
	a, err := dec.Value(args)
	if err != nil {
		return cpython.Object{}, err
	}
	t, _ := a.(brine.Tuple)
	if len(t) != 3 {
		return cpython.Object{}, &cpython.Raise{Class: "TypeError", Msg: "send(kind, seq, body)"}
	}
	kind, _ := t[0].(int64)
	seq, _ := t[1].(int64)
	if wire.MsgType(kind) != wire.MsgRequest {
		return cpython.Object{}, nil
	}
	ts := cpython.Release()
	reply := p.conn.ServeRequest(wire.Message{Type: wire.MsgRequest, Seq: seq, Body: t[2]})
	ts.Reacquire()
	return p.toPython(brine.Tuple{int64(reply.Type), reply.Body})
}

func (p *localPeer) close(args cpython.Object) (cpython.Object, error) {
	return cpython.Object{}, nil
}

// ---- cancellation -------------------------------------------------------------

// watchedCall is a request that a context may interrupt. Its fields are read and
// written only with the GIL held.
type watchedCall struct {
	thread    uint64
	active    bool
	cancelled bool
	stop      func() bool
}

// watch arms ctx to interrupt the calling thread's Python code (the GIL held).
func (e *Embedded) watch(ctx context.Context) *watchedCall {
	if ctx.Done() == nil {
		return nil
	}
	c := &watchedCall{thread: cpython.ThreadIdent(), active: true}
	c.stop = context.AfterFunc(ctx, func() {
		cpython.Enter()
		defer cpython.Leave()
		if c.active {
			c.cancelled = true
			cpython.Interrupt(c.thread, e.helpers.cancelled)
		}
	})
	return c
}

// unwatch disarms the call (the GIL held) and reports whether it was interrupted. An
// interruption that came too late to be raised is withdrawn, so it cannot hit the
// thread's next Python code.
func (e *Embedded) unwatch(c *watchedCall) bool {
	if c == nil {
		return false
	}
	c.stop()
	c.active = false
	if c.cancelled {
		cpython.Interrupt(c.thread, cpython.Object{})
	}
	return c.cancelled
}

// overrides reports whether obj's type controls attribute access (cached per type;
// the cache keeps the type alive, so its address cannot be reused).
func (e *Embedded) overrides(obj cpython.Object) bool {
	t := obj.Type()
	e.typesMu.Lock()
	v, ok := e.types[t.Ptr()]
	e.typesMu.Unlock()
	if ok {
		return v
	}
	r, err := e.helpers.hasOverride.Call([]cpython.Object{t}, cpython.Object{})
	if err != nil {
		takeException(err)
		return true
	}
	v, _ = r.Truth()
	r.DecRef()
	e.typesMu.Lock()
	if e.types == nil {
		e.types = map[uintptr]bool{}
	}
	if _, ok := e.types[t.Ptr()]; !ok {
		t.IncRef()
		e.types[t.Ptr()] = v
	}
	e.typesMu.Unlock()
	return v
}
