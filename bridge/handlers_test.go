package bridge_test

import (
	"context"
	"testing"

	"github.com/pybridge/pybridge/bridge"
	"github.com/pybridge/pybridge/bridge/brine"
	"github.com/pybridge/pybridge/bridge/wire"
)

// The handlers Ref has no method for, through Conn.Request, against both rpyc versions.
func TestEveryHandlerFromGo(t *testing.T) {
	forEachRpyc(t, func(t *testing.T, ctx context.Context, conn *bridge.Conn) {
		if err := conn.Execute(ctx, "class Ctx:\n    def __enter__(self): return self\n    def __exit__(self, *a): self.exited = True; return False\nctx = Ctx()\nnums = [5, 6, 7, 8]"); err != nil {
			t.Fatal(err)
		}
		nums, _ := conn.Eval(ctx, "nums")
		n := nums.(*bridge.Ref)
		cases := []struct {
			h    wire.Handler
			args []any
			want any
		}{
			{wire.HandleStr, []any{n}, "[5, 6, 7, 8]"},
			{wire.HandleCmp, []any{n, n, "__eq__"}, true},
			{wire.HandleBuffIter, []any{n, int64(3)}, brine.Tuple{int64(5), int64(6), int64(7)}},
			{wire.HandleOldSlicing, []any{n, "__getitem__", "__getslice__", int64(1), int64(3), brine.Tuple{}}, nil},
			{wire.HandlePing, []any{"echo"}, "echo"},
		}
		for _, c := range cases {
			v, err := conn.Request(ctx, c.h, c.args...)
			if err != nil {
				t.Errorf("%v: %v", c.h, err)
				continue
			}
			switch want := c.want.(type) {
			case nil:
				if _, ok := v.(*bridge.Ref); !ok {
					t.Errorf("%v = %v, want a list", c.h, v)
				}
			case brine.Tuple:
				if !equalTuple(v, want) {
					t.Errorf("%v = %v, want %v", c.h, v, want)
				}
			default:
				if v != want {
					t.Errorf("%v = %v, want %v", c.h, v, want)
				}
			}
		}
		if v, err := conn.Request(ctx, wire.HandleHash, "x"); err != nil {
			t.Errorf("HASH: %v", err)
		} else if _, ok := v.(int64); !ok {
			t.Errorf("HASH = %T", v)
		}
		if v, err := conn.Request(ctx, wire.HandleInspect, n.IDPack()); err != nil || len(v.(brine.Tuple)) == 0 {
			t.Errorf("INSPECT = %v, %v", v, err)
		}
		if v, err := conn.Request(ctx, wire.HandlePickle, n, int64(2)); err != nil || len(v.([]byte)) == 0 {
			t.Errorf("PICKLE = %v, %v", v, err)
		}
		listCls, _ := conn.Eval(ctx, "list")
		if v, err := conn.Request(ctx, wire.HandleInstanceCheck, listCls, n.IDPack()); err != nil {
			t.Errorf("INSTANCECHECK: %v", err)
		} else if _, ok := v.(bool); !ok {
			t.Errorf("INSTANCECHECK = %v", v)
		}
		c, _ := conn.Eval(ctx, "ctx")
		if _, err := conn.Request(ctx, wire.HandleCtxExit, c, nil); err != nil {
			t.Errorf("CTXEXIT: %v", err)
		}
		if v, _ := conn.Eval(ctx, "ctx.exited"); v != true {
			t.Errorf("CTXEXIT did not call __exit__")
		}
	})
}

// Round trips against rpyc's own classic server, each dialect named: GETATTR of a
// value (math.pi), CALLATTR on a held Ref (math.sqrt(2)), and CALL of a Python function
// that calls a Go func back (two round trips, one each way).
func BenchmarkRoundTrip(b *testing.B) {
	for _, v := range []struct {
		venv    string
		dialect wire.Dialect
	}{{"rpyc5", wire.Dialect5}, {"rpyc6", wire.Dialect6}} {
		ctx := context.Background()
		conn, err := bridge.Dial(ctx, "tcp", startRpyc(b, v.venv), bridge.WithDialect(v.dialect))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		math, err := conn.Import(ctx, "math")
		if err != nil {
			b.Fatal(err)
		}
		apply, err := conn.Eval(ctx, "lambda f, x: f(x)")
		if err != nil {
			b.Fatal(err)
		}
		double := func(x int64) int64 { return 2 * x }
		b.Run(v.venv+"/getattr", func(b *testing.B) {
			for b.Loop() {
				if _, err := math.Attr(ctx, "pi"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(v.venv+"/callattr", func(b *testing.B) {
			for b.Loop() {
				if _, err := math.CallAttr(ctx, "sqrt", 2.0); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(v.venv+"/call-with-go-callback", func(b *testing.B) {
			for b.Loop() {
				if r, err := apply.(*bridge.Ref).Call(ctx, double, int64(21)); err != nil || r != int64(42) {
					b.Fatal(r, err)
				}
			}
		})
	}
}
