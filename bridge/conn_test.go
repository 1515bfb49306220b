package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pybridge/pybridge/bridge/brine"
	"github.com/pybridge/pybridge/bridge/wire"
)

// memStream is one end of an in-memory MessageStream pair. tap, if set, sees every
// message this end writes.
type memStream struct {
	in, out   chan wire.Message
	done      chan struct{}
	closeOnce *sync.Once
	tap       func(wire.Message)

	peeked *wire.Message // taken off in by WaitInput, not yet read
	kick   chan struct{} // Interrupt
}

func memPair() (*memStream, *memStream) {
	ab, ba := make(chan wire.Message, 4096), make(chan wire.Message, 4096)
	done := make(chan struct{})
	once := &sync.Once{}
	return &memStream{in: ba, out: ab, done: done, closeOnce: once, kick: make(chan struct{}, 1)},
		&memStream{in: ab, out: ba, done: done, closeOnce: once, kick: make(chan struct{}, 1)}
}

// callersRead makes the tests' Conns read as over a worker's channel: the caller
// waiting for a reply reads it (readRole), not a reader goroutine (readLoop).
var callersRead bool

// bothReadings runs test once per way a Conn reads its stream.
func bothReadings(t *testing.T, test func(t *testing.T)) {
	for _, callers := range []bool{false, true} {
		name := map[bool]string{false: "reader goroutine", true: "callers read"}[callers]
		t.Run(name, func(t *testing.T) {
			callersRead = callers
			defer func() { callersRead = false }()
			test(t)
		})
	}
}

// stream is s as a Conn reads it in this test (see callersRead).
func (s *memStream) stream() wire.MessageStream {
	if callersRead {
		return waitingMemStream{s}
	}
	return s
}

// waitingMemStream is a memStream a Conn's callers read (an InputWaiter).
type waitingMemStream struct{ *memStream }

func (s waitingMemStream) WaitInput() (bool, error) {
	if s.peeked != nil {
		return false, nil
	}
	select {
	case m := <-s.in:
		s.peeked = &m
		return false, nil
	case <-s.kick:
		return true, nil
	case <-s.done:
		return false, nil
	}
}

func (s waitingMemStream) Interrupt() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *memStream) ReadMessage() (wire.Message, error) {
	if m := s.peeked; m != nil {
		s.peeked = nil
		return *m, nil
	}
	select {
	case m := <-s.in:
		return m, nil
	case <-s.done:
		return wire.Message{}, io.EOF
	}
}

func (s *memStream) WriteMessage(m wire.Message) error {
	if s.tap != nil {
		s.tap(m)
	}
	select {
	case s.out <- m:
		return nil
	case <-s.done:
		return io.ErrClosedPipe
	}
}

func (s *memStream) Close() error { s.closeOnce.Do(func() { close(s.done) }); return nil }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Two Go peers: each serves the Go values it hands the other.
func connPair(t *testing.T, rootA any) (a, b *Conn, sa, sb *memStream) {
	sa, sb = memPair()
	a = NewConn(sa.stream(), Config{Root: rootA})
	b = NewConn(sb.stream(), Config{})
	t.Cleanup(func() { a.Close(); b.Close(); <-a.Done(); <-b.Done() })
	return a, b, sa, sb
}

// A Go func handed to the peer calls back into it, which calls back again: every
// incoming request runs on its own goroutine, so nesting does not deadlock.
func TestNestedCallsReenter(t *testing.T) {
	bothReadings(t, func(t *testing.T) {
		ctx := testCtx(t)
		var pingPong func(args ...any) (any, error)
		pingPong = func(args ...any) (any, error) {
			n := args[0].(int64)
			other := args[1].(*Ref)
			if n == 0 {
				return "bottom", nil
			}
			// hand our own func along: the other side calls us back one level deeper
			return other.Call(ctx, n-1, pingPong)
		}
		_, b, _, _ := connPair(t, pingPong)
		root, err := b.Root(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got, err := root.Call(ctx, int64(9), pingPong)
		if err != nil || got != "bottom" {
			t.Fatalf("nested calls = %v, %v", got, err)
		}
	})
}

type valueErr struct{}

func (valueErr) Error() string                { return "bad value" }
func (valueErr) PythonType() (string, string) { return "builtins", "ValueError" }

// A Go panic or a request Go does not serve becomes the peer's exception; the
// connection goes on.
func TestPanicsAndUnknownHandlersBecomeExceptions(t *testing.T) {
	bothReadings(t, func(t *testing.T) {
		ctx := testCtx(t)
		root := func(args ...any) (any, error) {
			switch args[0] {
			case "panic":
				panic("boom")
			case "typed":
				return nil, valueErr{}
			case "struct":
				return struct{ X, Y int }{1, 2}, nil
			}
			return "ok", nil
		}
		_, b, _, _ := connPair(t, root)
		r, err := b.Root(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var re *RemoteError
		_, err = r.Call(ctx, "panic")
		if !errors.As(err, &re) || re.Type != "RuntimeError" || !strings.Contains(re.Error(), "boom") {
			t.Errorf("panic: %v", err)
		}
		_, err = r.Call(ctx, "typed")
		if !errors.As(err, &re) || re.Type != "ValueError" {
			t.Errorf("typed error: %v", err)
		}
		_, err = b.Request(ctx, wire.HandlePickle, r, int64(2))
		if !errors.As(err, &re) || !strings.Contains(re.Error(), "PICKLE") {
			t.Errorf("unknown handler: %v", err)
		}
		_, err = b.Request(ctx, wire.Handler(99))
		if !errors.As(err, &re) {
			t.Errorf("handler 99: %v", err)
		}
		// HASH and CMP on Go values that are neither pointers nor funcs
		bf, err := r.Call(ctx, "struct")
		if err != nil {
			t.Fatal(err)
		}
		h1, err1 := b.Request(ctx, wire.HandleHash, bf)
		h2, err2 := b.Request(ctx, wire.HandleHash, bf)
		if err1 != nil || err2 != nil || h1 != h2 {
			t.Errorf("hash of a struct value: %v %v, %v %v", h1, err1, h2, err2)
		}
		if eq, err := b.Request(ctx, wire.HandleCmp, bf, bf, "__eq__"); err != nil || eq != true {
			t.Errorf("struct value == itself: %v, %v", eq, err)
		}
		if v, err := r.Call(ctx, "x"); err != nil || v != "ok" {
			t.Errorf("after the failures: %v, %v", v, err)
		}
		if err := b.Ping(ctx); err != nil {
			t.Error(err)
		}
	})
}

// A caller that gives up gets ctx.Err(); the late reply's object is released (DEL 1).
func TestCancelledRequestReleasesLateReply(t *testing.T) {
	bothReadings(t, func(t *testing.T) {
		sa, sb := memPair()
		conn := NewConn(sa.stream(), Config{})
		t.Cleanup(func() { conn.Close(); <-conn.Done() })
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { _, err := conn.Request(ctx, wire.HandleGetRoot); errc <- err }()
		req, err := sb.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("Request after cancel: %v", err)
		}
		idPack := brine.Tuple{"builtins.dict", int64(10), int64(20)}
		sb.WriteMessage(wire.Message{Type: wire.MsgReply, Seq: req.Seq,
			Body: brine.Tuple{int64(wire.LabelRemoteRef), idPack}})
		del, err := sb.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		want := brine.Tuple{int64(wire.HandleDel), brine.Tuple{int64(wire.LabelTuple), brine.Tuple{
			brine.Tuple{int64(wire.LabelLocalRef), idPack}, brine.Tuple{int64(wire.LabelValue), int64(1)}}}}
		if del.Type != wire.MsgRequest || !deepEqual(del.Body, want) {
			t.Fatalf("after the late reply: %+v, want DEL %v", del, want)
		}
	})
}

// Async requests are awaitable; StopIteration arrives as ErrStopIteration.
func TestAsyncAndStopIteration(t *testing.T) {
	bothReadings(t, func(t *testing.T) {
		sa, sb := memPair()
		conn := NewConn(sa.stream(), Config{})
		t.Cleanup(func() { conn.Close(); <-conn.Done() })
		ctx := testCtx(t)
		a1 := conn.Async(wire.HandlePing, "one")
		a2 := conn.Async(wire.HandlePing, "two")
		m1, _ := sb.ReadMessage()
		m2, _ := sb.ReadMessage()
		// answered out of order: replies are routed by seq
		sb.WriteMessage(wire.Message{Type: wire.MsgException, Seq: m2.Seq, Body: int64(1)})
		sb.WriteMessage(wire.Message{Type: wire.MsgReply, Seq: m1.Seq, Body: brine.Tuple{int64(wire.LabelValue), "one"}})
		if v, err := a1.Wait(ctx); err != nil || v != "one" {
			t.Errorf("a1 = %v, %v", v, err)
		}
		if _, err := a2.Wait(ctx); err != ErrStopIteration {
			t.Errorf("a2: %v, want StopIteration", err)
		}
	})
}

// Refs received from many goroutines while the GC runs: the DEL counts Go sends add
// up exactly to the number of times the peer sent the object, and the peer's table
// of objects held for us empties.
func TestRefCacheDelBalanceUnderGCChurn(t *testing.T) {
	bothReadings(t, func(t *testing.T) {
		ctx := testCtx(t)
		shared := &struct{ x int }{}
		var sentRefs, delTotal atomic.Int64
		root := func(args ...any) (any, error) { return shared, nil }
		a, b, sa, sb := connPair(t, root)
		// a boxes shared as REMOTE_REF each time; b answers with DEL(count)
		sa.tap = func(m wire.Message) {
			if m.Type == wire.MsgReply {
				if t, ok := m.Body.(brine.Tuple); ok && t[0] == int64(wire.LabelRemoteRef) && t[1].(brine.Tuple)[0] == "builtins.object" {
					sentRefs.Add(1)
				}
			}
		}
		sb.tap = func(m wire.Message) {
			if m.Type == wire.MsgRequest {
				body := m.Body.(brine.Tuple)
				if body[0] == int64(wire.HandleDel) {
					args := body[1].(brine.Tuple)[1].(brine.Tuple)
					if args[0].(brine.Tuple)[1].(brine.Tuple)[0] == "builtins.object" {
						delTotal.Add(args[1].(brine.Tuple)[1].(int64))
					}
				}
			}
		}
		r, err := b.Root(ctx)
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		var gcs sync.WaitGroup
		gcs.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					runtime.GC()
				}
			}
		})
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Go(func() {
				for i := 0; i < 200; i++ {
					v, err := r.Call(ctx)
					if err != nil {
						t.Error(err)
						return
					}
					if i%7 == 0 {
						v.(*Ref).Close()
					}
				}
			})
		}
		wg.Wait()
		close(stop)
		gcs.Wait()
		baseline := int64(1) // the root func b keeps
		for a.objects.len() != int(baseline) || delTotal.Load() != sentRefs.Load() {
			if ctx.Err() != nil {
				t.Fatalf("a holds %d objects (want %d); sent %d refs, got DEL totals %d",
					a.objects.len(), baseline, sentRefs.Load(), delTotal.Load())
			}
			runtime.GC()
			time.Sleep(5 * time.Millisecond)
		}
		if sentRefs.Load() != 1600 {
			t.Errorf("sent %d refs, want 1600", sentRefs.Load())
		}
	})
}

func deepEqual(a, b any) bool {
	ta, ok1 := a.(brine.Tuple)
	tb, ok2 := b.(brine.Tuple)
	if ok1 != ok2 {
		return false
	}
	if !ok1 {
		return a == b
	}
	if len(ta) != len(tb) {
		return false
	}
	for i := range ta {
		if !deepEqual(ta[i], tb[i]) {
			return false
		}
	}
	return true
}

type fieldHolder struct{ Field int }

// A Ref used in a request stays alive until the request is on its way: the collector
// cannot release it (send DEL) between boxing it and sending the request that names it,
// which would make the peer drop the object the request is about.
func TestRefInUseIsNotReleasedBeforeItsRequestIsSent(t *testing.T) {
	bothReadings(t, func(t *testing.T) {
		ctx := testCtx(t)
		a, b, _, sb := connPair(t, func() *fieldHolder { return &fieldHolder{Field: 7} })
		_ = a
		root, err := b.Root(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// every request but a DEL is held while the collector runs and cleanups happen
		sb.tap = func(m wire.Message) {
			if body, ok := m.Body.(brine.Tuple); ok && m.Type == wire.MsgRequest && len(body) == 2 && body[0] != int64(wire.HandleDel) {
				for range 3 {
					runtime.GC()
					time.Sleep(5 * time.Millisecond)
				}
			}
		}
		for i := range 20 {
			v, err := root.Call(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// v is not used after this call: only the request in flight keeps it alive
			if f, err := v.(*Ref).Attr(ctx, "Field"); err != nil || f != 7 { // in memory: the Go int itself
				t.Fatalf("round %d: %v, %v", i, f, err)
			}
		}
	})
}

// A reference named by four items (rpyc-ng's id_pack, which pybridge serve sends until
// it knows the client's version) is kept with the first three, as rpyc 5.x/6.x clients
// keep it, and named so in what Go sends back.
func TestFourItemIDPackKeptAsThree(t *testing.T) {
	bothReadings(t, func(t *testing.T) {
		ctx := testCtx(t)
		client, server := memPair()
		c := NewConn(client.stream(), Config{})
		t.Cleanup(func() { c.Close(); <-c.Done() })
		go func() {
			m, err := server.ReadMessage() // GETROOT
			if err != nil {
				return
			}
			root := brine.Tuple{"m.Root", int64(1), int64(2), int64(3)}
			server.WriteMessage(wire.Message{Type: wire.MsgReply, Seq: m.Seq, Body: brine.Tuple{int64(wire.LabelRemoteRef), root}})
			if m, err = server.ReadMessage(); err != nil { // GETATTR(root, "x")
				return
			}
			server.WriteMessage(wire.Message{Type: wire.MsgReply, Seq: m.Seq, Body: brine.Tuple{int64(wire.LabelValue), m.Body}})
		}()
		root, err := c.Root(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := brine.Tuple{"m.Root", int64(1), int64(2)}
		if !deepEqual(root.IDPack(), want) {
			t.Fatalf("IDPack() = %v, want %v", root.IDPack(), want)
		}
		echoed, err := root.Attr(ctx, "x")
		if err != nil {
			t.Fatal(err)
		}
		args := echoed.(brine.Tuple)[1].(brine.Tuple)[1].(brine.Tuple)
		if first := args[0].(brine.Tuple); !deepEqual(first[1], want) {
			t.Fatalf("the request named the object %v, want %v", first[1], want)
		}
	})
}

// Many goroutines call at once, the peer answers out of order, some callers give up
// early and some have a ctx that cannot end: each caller gets its own reply or its ctx's error, whoever reads the stream,
// and the connection still serves afterwards.
func TestConcurrentCallersEachGetTheirReply(t *testing.T) {
	bothReadings(t, func(t *testing.T) {
		ctx := testCtx(t)
		echoLater := func(n int64) int64 {
			time.Sleep(time.Duration(n%7) * 100 * time.Microsecond)
			return n
		}
		_, b, _, _ := connPair(t, echoLater)
		root, err := b.Root(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for g := range int64(32) {
			wg.Go(func() {
				for i := range int64(60) {
					n := g*1000 + i
					callCtx, cancel := ctx, context.CancelFunc(func() {})
					switch i % 9 {
					case 4:
						callCtx, cancel = context.WithTimeout(ctx, 50*time.Microsecond)
					case 7:
						callCtx = context.Background() // cannot end: read without waiting first
					}
					got, err := root.Call(callCtx, n)
					cancel()
					switch {
					case err == nil && got == n:
					case err != nil && callCtx != ctx && errors.Is(err, context.DeadlineExceeded):
					default:
						errs <- fmt.Errorf("call %d: %v, %v", n, got, err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if got, err := root.Call(ctx, int64(5)); err != nil || got != int64(5) {
			t.Fatalf("after: %v, %v", got, err)
		}
	})
}
