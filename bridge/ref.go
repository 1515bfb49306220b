package bridge

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"weak"

	"github.com/pybridge/pybridge/bridge/brine"
	"github.com/pybridge/pybridge/bridge/wire"
)

// Ref is a reference to an object that lives at the peer (a netref). When the last Go
// reference to it is gone, the garbage collector's cleanup sends DEL with the number of
// times the peer sent this object, and the peer may drop it; Close does so at once.
type Ref struct {
	conn  *Conn
	state *refState
}

// refState lives outside the Ref, so the cleanup can read the count without keeping the
// Ref alive.
type refState struct {
	idPack   brine.Tuple // for a local peer's object: filled in when first asked for
	key      string
	count    atomic.Int64 // receptions not yet released
	released atomic.Bool
	obj      any     // a local peer's object (NewLocalConn), nil otherwise
	localKey uintptr // its identity in the cache
}

// refCache maps id_packs to weak Refs. get hands out a strong *Ref or nothing in one
// locked step, so the collector cannot drop an entry between lookup and use; a
// cleanup removes its entry only if it still holds its own weak pointer.
type refCache struct {
	mu    sync.Mutex
	m     map[string]weak.Pointer[Ref]
	local map[uintptr]weak.Pointer[Ref] // a local peer's objects
}

func (c *Conn) refFor(idPack any) (*Ref, error) {
	p, ok := idPack.(brine.Tuple)
	if ok && len(p) == 4 {
		// rpyc-ng's (name_pack, class id, instance id, object type), which pybridge
		// serve also sends before it knows a client's version: rpyc 5.x/6.x clients keep
		// the first three items, and so does Go
		p = p[:3:3]
	}
	if !ok || len(p) != 3 {
		return nil, &ProtocolError{Msg: fmt.Sprintf("bad id_pack %v", idPack)}
	}
	key := fmt.Sprint(p...)
	rc := &c.refs
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.m == nil {
		rc.m = map[string]weak.Pointer[Ref]{}
	}
	if wp, ok := rc.m[key]; ok {
		if r := wp.Value(); r != nil && !r.state.released.Load() {
			r.state.count.Add(1)
			return r, nil
		}
	}
	st := &refState{idPack: p, key: key}
	st.count.Store(1)
	r := &Ref{conn: c, state: st}
	wp := weak.Make(r)
	rc.m[key] = wp
	runtime.AddCleanup(r, func(s *refState) { c.dropRef(s, wp) }, st)
	return r, nil
}

// dropRef runs when a Ref is unreachable: send DEL with what is left.
func (c *Conn) dropRef(s *refState, wp weak.Pointer[Ref]) {
	c.refs.mu.Lock()
	if cur, ok := c.refs.m[s.key]; ok && cur == wp {
		delete(c.refs.m, s.key)
	}
	s.released.Store(true)
	n := s.count.Swap(0)
	c.refs.mu.Unlock()
	if n > 0 {
		c.sendDel(s.idPack, n)
	}
}

// IDPack is the peer's name for the object: (name_pack, class id, instance id).
func (r *Ref) IDPack() brine.Tuple {
	if r.state.obj != nil {
		return r.conn.localIDPack(r.state)
	}
	return r.state.idPack
}

// Conn is the connection the object lives behind.
func (r *Ref) Conn() *Conn { return r.conn }

func (r *Ref) String() string { return fmt.Sprintf("<bridge.Ref %v>", r.IDPack()[0]) }

// Close releases the object at once instead of when the GC finds the Ref unreachable.
// Every holder of the same peer object shares one Ref: close it only when no goroutine
// uses it any more. A later reception of the object makes a new Ref.
func (r *Ref) Close() error {
	rc := &r.conn.refs
	// under the cache lock, so no lookup can count a reception into a Ref being closed
	rc.mu.Lock()
	if r.state.released.Swap(true) {
		rc.mu.Unlock()
		return nil
	}
	if r.state.obj != nil {
		if wp, ok := rc.local[r.state.localKey]; ok && wp.Value() == r {
			delete(rc.local, r.state.localKey)
		}
		rc.mu.Unlock()
		r.conn.local.Release(r.state.obj)
		return nil
	}
	n := r.state.count.Swap(0)
	rc.mu.Unlock()
	if n > 0 {
		r.conn.sendDel(r.state.idPack, n)
	}
	return nil
}

func (r *Ref) request(ctx context.Context, h wire.Handler, args ...any) (any, error) {
	return r.conn.Request(ctx, h, append([]any{r}, args...)...)
}

// Attr is getattr(obj, name).
func (r *Ref) Attr(ctx context.Context, name string) (any, error) {
	return r.request(ctx, wire.HandleGetAttr, name)
}

// SetAttr is setattr(obj, name, value).
func (r *Ref) SetAttr(ctx context.Context, name string, value any) error {
	_, err := r.request(ctx, wire.HandleSetAttr, name, value)
	return err
}

// DelAttr is delattr(obj, name).
func (r *Ref) DelAttr(ctx context.Context, name string) error {
	_, err := r.request(ctx, wire.HandleDelAttr, name)
	return err
}

// Kwargs, as the last argument of Call or CallAttr, are keyword arguments.
type Kwargs map[string]any

func splitArgs(args []any) (brine.Tuple, brine.Tuple) {
	var kw brine.Tuple
	if n := len(args); n > 0 {
		if k, ok := args[n-1].(Kwargs); ok {
			args = args[:n-1]
			// sorted, so the peer sees the same keyword order on every call
			for _, name := range slices.Sorted(maps.Keys(k)) {
				kw = append(kw, brine.Tuple{name, k[name]})
			}
		}
	}
	return brine.Tuple(args), kw
}

// Call calls the object: obj(*args, **kwargs), a trailing Kwargs giving kwargs.
func (r *Ref) Call(ctx context.Context, args ...any) (any, error) {
	pos, kw := splitArgs(args)
	return r.request(ctx, wire.HandleCall, pos, kw)
}

// CallAsync starts obj(*args, **kwargs) and returns at once (rpyc's async_): Wait
// collects the result.
func (r *Ref) CallAsync(args ...any) *AsyncResult {
	pos, kw := splitArgs(args)
	return r.conn.Async(wire.HandleCall, r, pos, kw)
}

// CallAttr calls a method: obj.name(*args, **kwargs).
func (r *Ref) CallAttr(ctx context.Context, name string, args ...any) (any, error) {
	pos, kw := splitArgs(args)
	return r.request(ctx, wire.HandleCallAttr, name, pos, kw)
}

// Repr is repr(obj).
func (r *Ref) Repr(ctx context.Context) (string, error) { return r.stringOp(ctx, wire.HandleRepr) }

// Str is str(obj).
func (r *Ref) Str(ctx context.Context) (string, error) { return r.stringOp(ctx, wire.HandleStr) }

func (r *Ref) stringOp(ctx context.Context, h wire.Handler) (string, error) {
	v, err := r.request(ctx, h)
	if err != nil {
		return "", err
	}
	s, _ := v.(string)
	return s, nil
}

// Dir is dir(obj).
func (r *Ref) Dir(ctx context.Context) ([]string, error) {
	v, err := r.request(ctx, wire.HandleDir)
	if err != nil {
		return nil, err
	}
	t, _ := v.(brine.Tuple)
	out := make([]string, 0, len(t))
	for _, x := range t {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out, nil
}

// Len is len(obj).
func (r *Ref) Len(ctx context.Context) (int, error) {
	v, err := r.CallAttr(ctx, "__len__")
	if err != nil {
		return 0, err
	}
	n, _ := v.(int64)
	return int(n), nil
}

// Item is obj[key].
func (r *Ref) Item(ctx context.Context, key any) (any, error) {
	return r.CallAttr(ctx, "__getitem__", key)
}

// SetItem is obj[key] = value.
func (r *Ref) SetItem(ctx context.Context, key, value any) error {
	_, err := r.CallAttr(ctx, "__setitem__", key, value)
	return err
}

// Iter iterates over the object (iter(obj), then next() until StopIteration):
//
//	for item, err := range ref.Iter(ctx) { ... }
//
// An error ends the iteration after it is yielded; breaking out early releases the
// peer's iterator.
func (r *Ref) Iter(ctx context.Context) iter.Seq2[any, error] {
	return func(yield func(any, error) bool) {
		it, err := r.CallAttr(ctx, "__iter__")
		if err != nil {
			yield(nil, err)
			return
		}
		itRef, ok := it.(*Ref)
		if !ok {
			yield(nil, &ProtocolError{Msg: fmt.Sprintf("__iter__ returned %T, not an object", it)})
			return
		}
		if itRef != r { // an iterator's __iter__ returns itself: the caller's Ref
			defer itRef.Close()
		}
		for {
			v, err := itRef.CallAttr(ctx, "__next__")
			if errors.Is(err, ErrStopIteration) {
				return
			}
			if !yield(v, err) || err != nil {
				return
			}
		}
	}
}
