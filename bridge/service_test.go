package bridge_test

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pybridge/pybridge/bridge"
	"github.com/pybridge/pybridge/bridge/brine"
	"github.com/pybridge/pybridge/bridge/wire"
)

// greeter is the Go side's root: the service rpyc's server reaches as conn.root.
type greeter struct{ Prefix string }

func (g *greeter) Greet(name string) string { return g.Prefix + name }

// poll retries cond until it holds or 30 s pass (DELs travel asynchronously).
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 30 s", what)
		}
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
}

// A user's rpyc.Service (testdata/rpyc_server.py's EchoService) under rpyc 5.3.1 and
// 6.0.2: exposed methods with kwargs, its exceptions, async calls, a cancelled call whose
// late reply is released, and the service calling back the Go side's root.
func TestCustomService(t *testing.T) {
	for _, venv := range []string{"rpyc5", "rpyc6"} {
		t.Run(venv, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()
			network, addr := startRpycServer(t, venv, "service", "")
			g := &greeter{Prefix: "hello "}
			conn, err := bridge.Dial(ctx, network, addr, bridge.WithConfig(bridge.Config{Root: g}))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			root, err := conn.Root(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if v, err := root.CallAttr(ctx, "add", int64(40), bridge.Kwargs{"b": int64(2)}); err != nil || v != int64(42) {
				t.Errorf("root.add(40, b=2) = %v, %v", v, err)
			}

			_, err = root.CallAttr(ctx, "fail", "missing-key")
			var re *bridge.RemoteError
			if !errors.As(err, &re) || re.Type != "KeyError" || len(re.Args) != 1 || re.Args[0] != "missing-key" ||
				!strings.Contains(re.Traceback, "exposed_fail") {
				t.Errorf("root.fail: %#v", err)
			}

			// the service calls the Go root: a method, a field read, a field write
			if v, err := root.CallAttr(ctx, "greet_client", "world"); err != nil || v != "hello world" {
				t.Errorf("conn.root.Greet from Python = %v, %v", v, err)
			}
			if v, err := root.CallAttr(ctx, "client_root_attr", "Prefix"); err != nil || v != "hello " {
				t.Errorf("conn.root.Prefix from Python = %v, %v", v, err)
			}
			if _, err := root.CallAttr(ctx, "set_client_root_attr", "Prefix", "hi "); err != nil || g.Prefix != "hi " {
				t.Errorf("setattr(conn.root, 'Prefix') from Python: %q, %v", g.Prefix, err)
			}
			if _, err := root.CallAttr(ctx, "client_root_attr", "nope"); !errors.As(err, &re) || re.Type != "AttributeError" {
				t.Errorf("a missing Go attribute from Python: %v", err)
			}

			// async: both requests in flight, each reply to its own waiter
			slow, err := root.Attr(ctx, "slow")
			if err != nil {
				t.Fatal(err)
			}
			a := slow.(*bridge.Ref).CallAsync(0.2, "first")
			b := slow.(*bridge.Ref).CallAsync(0.0, "second")
			if v, err := b.Wait(ctx); err != nil || v != "second" {
				t.Errorf("async second = %v, %v", v, err)
			}
			if v, err := a.Wait(ctx); err != nil || v != "first" {
				t.Errorf("async first = %v, %v", v, err)
			}

			// a cancelled call returns ctx's error; the object its late reply carries is
			// released, so the server's table returns to where it was
			held := func() int64 {
				v, err := root.CallAttr(ctx, "held")
				if err != nil {
					t.Fatal(err)
				}
				return v.(int64)
			}
			before := held()
			obj, err := root.Attr(ctx, "add") // a fresh bound method: one more object held
			if err != nil {
				t.Fatal(err)
			}
			short, stop := context.WithTimeout(ctx, 50*time.Millisecond)
			_, err = slow.(*bridge.Ref).Call(short, 0.5, obj)
			stop()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("cancelled call: %v", err)
			}
			obj.(*bridge.Ref).Close()
			poll(t, "server's objects after a late reply", func() bool { return held() == before })
			runtime.KeepAlive(slow) // held in the baseline

			// a Go func Python keeps and drops: DEL brings Go's table back
			goBefore := bridge.HeldObjects(conn)
			if _, err := root.CallAttr(ctx, "keep", func() {}); err != nil {
				t.Fatal(err)
			}
			if n := bridge.HeldObjects(conn); n != goBefore+1 {
				t.Errorf("Go objects held by Python after keep: %d, want %d", n, goBefore+1)
			}
			if _, err := root.CallAttr(ctx, "drop"); err != nil {
				t.Fatal(err)
			}
			poll(t, "Go's objects after Python dropped them", func() bool { return bridge.HeldObjects(conn) == goBefore })
		})
	}
}

// Unix sockets, and a named dialect instead of the probe; the wrong one fails, it does
// not hang.
func TestDialUnixAndNamedDialect(t *testing.T) {
	for _, c := range []struct {
		venv         string
		right, wrong wire.Dialect
	}{{"rpyc5", wire.Dialect5, wire.Dialect6}, {"rpyc6", wire.Dialect6, wire.Dialect5}} {
		t.Run(c.venv, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			network, addr := startRpycServer(t, c.venv, "classic", filepath.Join(t.TempDir(), "rpyc.sock"))
			conn, err := bridge.Dial(ctx, network, addr, bridge.WithDialect(c.right))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if v, err := conn.Eval(ctx, "(6 * 7, 'unix')"); err != nil || !equalTuple(v, brine.Tuple{int64(42), "unix"}) {
				t.Errorf("eval over a Unix socket = %v, %v", v, err)
			}
			wrong, err := bridge.Dial(ctx, network, addr, bridge.WithDialect(c.wrong))
			if err != nil {
				t.Fatal(err)
			}
			defer wrong.Close()
			short, stop := context.WithTimeout(ctx, 10*time.Second)
			defer stop()
			if _, err := wrong.Eval(short, "1"); err == nil || errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("the other dialect's request: %v, want the connection dropped", err)
			}
		})
	}
}
