package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/pybridge/pybridge/bridge/brine"
	"github.com/pybridge/pybridge/bridge/wire"
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
// peer's requests on the Go values it was handed, at the same time. A reader goroutine
// routes replies to their callers and serves each incoming request on its own
// goroutine, so calls nest and re-enter freely (Python calls a Go func that calls
// Python again). A Conn is safe for concurrent use.
type Conn struct {
	stream wire.MessageStream
	cfg    Config
	log    *slog.Logger
	seq    atomic.Int64

	mu      sync.Mutex
	pending map[int64]chan wire.Message
	ignored map[int64]bool // async requests and abandoned calls: release what their replies hold

	objects objectTable
	refs    refCache
	root    atomic.Pointer[Ref]

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
	go c.readLoop()
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

func (c *Conn) readLoop() {
	for {
		m, err := c.stream.ReadMessage()
		if err != nil {
			c.shutdown(fmt.Errorf("%w: %w", ErrConnClosed, err))
			return
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
			if ch == nil && ignored && m.Type == wire.MsgReply {
				go c.releaseIn(m.Body)
			}
		}
	}
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
		c.err = err
		c.stream.Close()
		c.objects.clear()
		close(c.done)
	})
}

// Close ends the connection: the peer is told (CLOSE) and drops what it held for it.
func (c *Conn) Close() error {
	select {
	case <-c.done:
		return nil
	default:
	}
	c.send(wire.MsgRequest, c.seq.Add(1), brine.Tuple{int64(wire.HandleClose), brine.Tuple{int64(wire.LabelValue), brine.Tuple{}}})
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
	return c.Async(h, args...).Wait(ctx)
}

// AsyncResult is a request in flight (rpyc's AsyncResult): Wait for its reply.
type AsyncResult struct {
	conn *Conn
	h    wire.Handler
	seq  int64
	ch   chan wire.Message
	err  error
}

// Async sends a request and returns at once; Wait collects the reply. A result nobody
// waits for keeps what the reply holds until the connection ends: use AsyncRequest to
// fire and forget.
func (c *Conn) Async(h wire.Handler, args ...any) *AsyncResult {
	a := &AsyncResult{conn: c, h: h}
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
	if err := c.send(wire.MsgRequest, a.seq, brine.Tuple{int64(h), boxed}); err != nil {
		c.abandon(a.seq)
		a.err = fmt.Errorf("send %v: %w", h, err)
	}
	return a
}

// Wait waits for the reply. When ctx ends first it returns ctx.Err() and the reply,
// whenever it comes, is released. Wait may be called once.
func (a *AsyncResult) Wait(ctx context.Context) (any, error) {
	if a.err != nil {
		return nil, a.err
	}
	c := a.conn
	select {
	case m := <-a.ch:
		if m.Type == wire.MsgException {
			return nil, loadException(m.Body)
		}
		return c.unbox(m.Body)
	case <-ctx.Done():
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
	case <-c.done:
		return nil, c.err
	}
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
	boxed, err := c.box(brine.Tuple(args))
	if err != nil {
		return err
	}
	seq := c.seq.Add(1)
	c.mu.Lock()
	c.ignored[seq] = true
	c.mu.Unlock()
	return c.send(wire.MsgRequest, seq, brine.Tuple{int64(h), boxed})
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

// ---- serving the peer's requests on Go values ------------------------------------

func (c *Conn) serve(m wire.Message) {
	result, err := c.handle(m.Body)
	var body any
	t := wire.MsgReply
	if err == nil {
		body, err = c.box(result)
	}
	if err != nil {
		t = wire.MsgException
		body = dumpException(err, "")
	}
	c.send(t, m.Seq, body)
}

type attrError struct{ msg string }

func (e *attrError) Error() string                { return e.msg }
func (e *attrError) PythonType() (string, string) { return "builtins", "AttributeError" }

func (c *Conn) handle(body any) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("Go panic serving a request: %v\n%s", p, debug.Stack())
		}
	}()
	req, ok := body.(brine.Tuple)
	if !ok || len(req) != 2 {
		return nil, &ProtocolError{Msg: "malformed request"}
	}
	h, _ := req[0].(int64)
	if wire.Handler(h) == wire.HandleDel {
		return nil, c.handleDel(req[1])
	}
	v, err := c.unbox(req[1])
	if err != nil {
		return nil, err
	}
	args, _ := v.(brine.Tuple)
	arg := func(i int) any {
		if i < len(args) {
			return args[i]
		}
		return nil
	}
	switch wire.Handler(h) {
	case wire.HandlePing:
		return arg(0), nil
	case wire.HandleClose:
		go c.shutdown(ErrConnClosed)
		return nil, nil
	case wire.HandleGetRoot:
		return c.cfg.Root, nil
	case wire.HandleCall:
		return callGo(arg(0), arg(1), arg(2))
	case wire.HandleCallAttr:
		name, _ := arg(1).(string)
		switch name {
		case "__call__":
			return callGo(arg(0), arg(2), arg(3))
		case "__repr__", "__str__":
			return goRepr(arg(0)), nil
		}
		return nil, &attrError{fmt.Sprintf("Go %T has no method %q", arg(0), name)}
	case wire.HandleGetAttr:
		name, _ := arg(1).(string)
		switch name {
		case "__name__", "__qualname__":
			return fmt.Sprintf("%T", arg(0)), nil
		case "__doc__", "__module__":
			return nil, nil
		case "__call__":
			return arg(0), nil
		}
		return nil, &attrError{fmt.Sprintf("Go %T has no attribute %q", arg(0), name)}
	case wire.HandleRepr, wire.HandleStr:
		return goRepr(arg(0)), nil
	case wire.HandleHash:
		// the object's instance id is stable while the peer holds it, for any Go value
		return c.objects.idOf(req[1])

	case wire.HandleDir:
		return brine.Tuple{"__call__"}, nil
	case wire.HandleCmp:
		op, _ := arg(2).(string)
		same := sameGoValue(arg(0), arg(1))
		switch op {
		case "__eq__":
			return same, nil
		case "__ne__":
			return !same, nil
		}
		return brine.NotImplemented, nil
	case wire.HandleInspect:
		return brine.Tuple{brine.Tuple{"__call__", "calls the Go function"}}, nil
	}
	return nil, fmt.Errorf("request %v is not served on Go values", wire.Handler(h))
}

func (c *Conn) handleDel(boxed any) error {
	// DEL names the object by its id_pack; read it before unboxing (a Go func, once
	// unboxed, cannot be looked up again)
	t, _ := boxed.(brine.Tuple)
	if len(t) == 2 {
		if items, ok := t[1].(brine.Tuple); ok && len(items) == 2 {
			ref, _ := items[0].(brine.Tuple)
			cnt, _ := items[1].(brine.Tuple)
			if len(ref) == 2 && len(cnt) == 2 {
				n, _ := cnt[1].(int64)
				c.objects.decref(ref[1], n)
				return nil
			}
		}
	}
	return &ProtocolError{Msg: "malformed DEL"}
}

// sameGoValue is identity for what Go cannot compare (funcs, maps, slices) and ==
// for the rest.
func sameGoValue(a, b any) bool {
	if _, ok := comparableKey(a); ok {
		if _, ok := comparableKey(b); ok {
			return a == b
		}
		return false
	}
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	switch va.Kind() {
	case reflect.Func, reflect.Map, reflect.Slice, reflect.Pointer, reflect.Chan, reflect.UnsafePointer:
		return vb.Kind() == va.Kind() && va.Type() == vb.Type() && va.Pointer() == vb.Pointer()
	}
	return false
}

func goRepr(v any) string { return fmt.Sprintf("<Go %T>", v) }

var errorType = reflect.TypeFor[error]()

// callGo calls a Go func with Python's positional args (kwargs are refused).
func callGo(fn, args, kwargs any) (any, error) {
	if kw, _ := kwargs.(brine.Tuple); len(kw) > 0 {
		return nil, errors.New("Go functions take no keyword arguments")
	}
	pos, _ := args.(brine.Tuple)
	if f, ok := fn.(func(...any) (any, error)); ok {
		return f(pos...)
	}
	fv := reflect.ValueOf(fn)
	if fv.Kind() != reflect.Func {
		return nil, &attrError{fmt.Sprintf("Go %T is not callable", fn)}
	}
	ft := fv.Type()
	if !ft.IsVariadic() && len(pos) != ft.NumIn() {
		return nil, fmt.Errorf("Go func takes %d arguments, got %d", ft.NumIn(), len(pos))
	}
	in := make([]reflect.Value, len(pos))
	for i, a := range pos {
		var want reflect.Type
		if ft.IsVariadic() && i >= ft.NumIn()-1 {
			want = ft.In(ft.NumIn() - 1).Elem()
		} else {
			want = ft.In(i)
		}
		v, err := convertArg(a, want)
		if err != nil {
			return nil, fmt.Errorf("argument %d: %w", i+1, err)
		}
		in[i] = v
	}
	out := fv.Call(in)
	var result any
	for _, o := range out {
		if o.Type() == errorType {
			if !o.IsNil() {
				return nil, o.Interface().(error)
			}
			continue
		}
		result = o.Interface()
	}
	return result, nil
}

func convertArg(a any, want reflect.Type) (reflect.Value, error) {
	if a == nil {
		return reflect.Zero(want), nil
	}
	v := reflect.ValueOf(a)
	if v.Type().AssignableTo(want) {
		return v, nil
	}
	if v.Type().ConvertibleTo(want) && v.Kind() != reflect.String && want.Kind() != reflect.String {
		return v.Convert(want), nil
	}
	return reflect.Value{}, fmt.Errorf("cannot use %T as %v", a, want)
}
