package bridge_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pybridge/pybridge/bridge"
	"github.com/pybridge/pybridge/bridge/brine"
)

// What rpyc's netref for a "builtins.function" asks of a Go func: Python treats it as
// an ordinary function (repr, str, __name__, __doc__, hash, dir, ==, call), and a Go
// error chosen as ValueError is caught as ValueError in Python.
func TestGoFuncSeenFromPython(t *testing.T) {
	forEachRpyc(t, func(t *testing.T, ctx context.Context, conn *bridge.Conn) {
		probe, err := conn.Eval(ctx, `lambda f: (repr(f).startswith("<Go func"), str(f) == repr(f), `+
			`f.__name__.startswith("func"), f.__doc__, hash(f) == hash(f), "__call__" in dir(f), `+
			`f == f, f != f, callable(f), f(20, 22))`)
		if err != nil {
			t.Fatal(err)
		}
		add := func(a, b int64) int64 { return a + b }
		got, err := probe.(*bridge.Ref).Call(ctx, add)
		want := brine.Tuple{true, true, true, nil, true, true, true, false, true, int64(42)}
		if err != nil || !sameTuple(got, want) {
			t.Fatalf("Python's view of a Go func = %v, %v; want %v", got, err, want)
		}

		if err := conn.Execute(ctx, "def catches(f):\n    try:\n        f()\n    except ValueError as e:\n        return 'ValueError: ' + str(e.args[0]) + '\\n' + e._remote_tb\n    return 'nothing'"); err != nil {
			t.Fatal(err)
		}
		catches, _ := conn.Eval(ctx, "catches")
		v, err := catches.(*bridge.Ref).Call(ctx, func() error { return valueError{"bad input"} })
		// the remote traceback Python sees names the Go error, and no version warning
		if s, _ := v.(string); err != nil || !strings.HasPrefix(s, "ValueError: bad input\n") ||
			!strings.Contains(s, "Go error (bridge_test.valueError): bad input") || strings.Contains(s, "WARNING") {
			t.Errorf("Python caught %q, %v", v, err)
		}

		// a Go panic inside a Python callback reaches Go again as a RuntimeError
		apply, _ := conn.Eval(ctx, "lambda f: f()")
		_, err = apply.(*bridge.Ref).Call(ctx, func() error { panic("go panic") })
		var re *bridge.RemoteError
		if !errors.As(err, &re) || re.Type != "RuntimeError" || !strings.Contains(re.Error(), "go panic") {
			t.Errorf("panic through Python: %v", err)
		}
	})
}

type valueError struct{ msg string }

func (e valueError) Error() string                { return e.msg }
func (e valueError) PythonType() (string, string) { return "builtins", "ValueError" }

func sameTuple(v any, want brine.Tuple) bool {
	t, ok := v.(brine.Tuple)
	if !ok || len(t) != len(want) {
		return false
	}
	for i := range t {
		if t[i] != want[i] {
			return false
		}
	}
	return true
}
