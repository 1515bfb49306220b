//go:build cgo

package pyhost

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pybridge/pybridge/bridge"
	"github.com/pybridge/pybridge/bridge/brine"
)

// embeddedPython is the interpreter this test process embeds (one per process):
// PYBRIDGE_TEST_PYTHON (make test runs the package under 3.9, 3.11, 3.13 and Debian's
// python3), else the rpyc6 venv, so that a venv's own packages are seen.
func embeddedPython(t testing.TB) string {
	if p := os.Getenv("PYBRIDGE_TEST_PYTHON"); p != "" {
		return p
	}
	p, _ := filepath.Abs("../.venv/rpyc6/bin/python")
	if _, err := os.Stat(p); err != nil {
		t.Skip("no rpyc6 venv (run make setup)")
	}
	return p
}

var embedHost struct {
	once sync.Once
	h    *Host
	err  error
}

// embeddedTestConn connects to the process's embedded interpreter (started once).
func embeddedTestConn(t testing.TB) *bridge.Conn {
	t.Helper()
	python := embeddedPython(t)
	embedHost.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		embedHost.h, embedHost.err = Start(ctx, Config{Python: python, Isolation: IsolationEmbedded})
	})
	if embedHost.err != nil {
		t.Fatal(embedHost.err)
	}
	ctx, cancel := contextWithTimeout(t, 10*time.Second)
	defer cancel()
	c, err := embedHost.h.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestEmbeddedCallsPython(t *testing.T) {
	conn := embeddedTestConn(t)
	ctx, cancel := contextWithTimeout(t, 30*time.Second)
	defer cancel()
	m, err := conn.Import(ctx, "math")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := m.CallAttr(ctx, "sqrt", 2.0); err != nil || r != 1.4142135623730951 {
		t.Errorf("math.sqrt(2) = %v, %v", r, err)
	}
	if r, err := m.CallAttr(ctx, "fsum", []float64{0.1, 0.2, 0.3}); err != nil || r != 0.6 {
		t.Errorf("math.fsum([.1,.2,.3]) = %v, %v (a Go slice by value)", r, err)
	}
	if pi, err := m.Attr(ctx, "pi"); err != nil || pi != 3.141592653589793 {
		t.Errorf("math.pi = %v, %v", pi, err)
	}
	builtins, err := conn.Import(ctx, "builtins")
	if err != nil {
		t.Fatal(err)
	}
	// keyword arguments, and a Go func Python calls back
	r, err := builtins.CallAttr(ctx, "sorted", brine.Tuple{int64(3), int64(1), int64(2)},
		bridge.Kwargs{"key": func(x int64) int64 { return -x }, "reverse": false})
	if err != nil {
		t.Fatal(err)
	}
	lst, ok := r.(*bridge.Ref)
	if !ok {
		t.Fatalf("sorted returned %T, want a Ref to the list", r)
	}
	if v, err := conn.Value(ctx, lst); err != nil || !reflect.DeepEqual(v, []any{int64(3), int64(2), int64(1)}) {
		t.Errorf("sorted(..., key=-x) = %v, %v", v, err)
	}
	if n, err := lst.Len(ctx); err != nil || n != 3 {
		t.Errorf("len = %v, %v", n, err)
	}
	if err := lst.SetItem(ctx, 0, "x"); err != nil {
		t.Fatal(err)
	}
	if v, err := lst.Item(ctx, 0); err != nil || v != "x" {
		t.Errorf("lst[0] = %v, %v", v, err)
	}
	var items []any
	for v, err := range lst.Iter(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, v)
	}
	if !reflect.DeepEqual(items, []any{"x", int64(2), int64(1)}) {
		t.Errorf("iterated %v", items)
	}
	if s, err := lst.Repr(ctx); err != nil || s != "['x', 2, 1]" {
		t.Errorf("repr = %q, %v", s, err)
	}
	if names, err := lst.Dir(ctx); err != nil || !contains(names, "append") {
		t.Errorf("dir = %v, %v", names, err)
	}
	if err := conn.Execute(ctx, "class P:\n    pass\np = P()"); err != nil {
		t.Fatal(err)
	}
	p, err := conn.Eval(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	pr := p.(*bridge.Ref)
	if err := pr.SetAttr(ctx, "x", int64(5)); err != nil {
		t.Fatal(err)
	}
	if v, err := conn.Eval(ctx, "p.x * 2"); err != nil || v != int64(10) {
		t.Errorf("p.x * 2 = %v, %v", v, err)
	}
	if err := pr.DelAttr(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if v, err := conn.Eval(ctx, "hasattr(p, 'x')"); err != nil || v != false {
		t.Errorf("after delattr: %v, %v", v, err)
	}
	// a tuple of a value and an object: the object by reference, the rest by value
	tv, err := conn.Eval(ctx, "(1, [2], frozenset([3]))")
	if err != nil {
		t.Fatal(err)
	}
	tup := tv.(brine.Tuple)
	if _, ok := tup[1].(*bridge.Ref); !ok || tup[0] != int64(1) || !reflect.DeepEqual(tup[2], brine.FrozenSet{int64(3)}) {
		t.Errorf("(1, [2], frozenset([3])) = %#v", tv)
	}
	if id := pr.IDPack(); len(id) != 3 || !strings.HasSuffix(id[0].(string), ".P") {
		t.Errorf("IDPack = %v", id)
	}
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// A Python exception is the same typed error as from a worker: type, args, traceback.
func TestEmbeddedExceptions(t *testing.T) {
	conn := embeddedTestConn(t)
	ctx, cancel := contextWithTimeout(t, 30*time.Second)
	defer cancel()
	m, err := conn.Import(ctx, "math")
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.CallAttr(ctx, "sqrt", -1.0)
	var re *bridge.RemoteError
	if !errors.As(err, &re) || re.Type != "ValueError" || !reflect.DeepEqual(re.Args, []any{"math domain error"}) {
		t.Fatalf("math.sqrt(-1): %#v", err)
	}
	if !strings.Contains(re.Traceback, "ValueError: math domain error") {
		t.Errorf("traceback %q", re.Traceback)
	}
	if err := conn.Execute(ctx, "def fails(x):\n    raise KeyError(x)"); err != nil {
		t.Fatal(err)
	}
	fails, _ := conn.Eval(ctx, "fails")
	_, err = fails.(*bridge.Ref).Call(ctx, "k")
	if !errors.As(err, &re) || re.Type != "KeyError" || !strings.Contains(re.Traceback, "Traceback (most recent call last)") ||
		!strings.Contains(re.Traceback, "in fails") {
		t.Errorf("KeyError from Python code: %#v", err)
	}
	if _, err := m.Attr(ctx, "nope"); !errors.As(err, &re) || re.Type != "AttributeError" {
		t.Errorf("math.nope: %v", err)
	}
	if _, err := conn.Eval(ctx, "1/0"); !errors.As(err, &re) || re.Type != "ZeroDivisionError" {
		t.Errorf("1/0: %v", err)
	}
	// a Go func's error reaches Python as an exception, and comes back as it
	builtins, err := conn.Import(ctx, "builtins")
	if err != nil {
		t.Fatal(err)
	}
	it, _ := builtins.CallAttr(ctx, "map", func(x int64) (int64, error) { return 0, errors.New("go says no") }, brine.Tuple{int64(1)})
	_, err = builtins.CallAttr(ctx, "list", it)
	if !errors.As(err, &re) || !strings.Contains(re.Error(), "go says no") {
		t.Errorf("list(map(failing Go func)): %v", err)
	}
}

// A cancelled context interrupts Python at its next bytecode boundary; the connection
// stays usable and no stray exception surfaces later.
func TestEmbeddedCancelInterruptsPython(t *testing.T) {
	conn := embeddedTestConn(t)
	ctx, cancel := contextWithTimeout(t, 30*time.Second)
	defer cancel()
	short, cancel2 := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel2()
	start := time.Now()
	_, err := conn.Eval(short, "[0 for _ in iter(int, 1)]") // loops forever
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("interrupted loop: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the loop ran for %v after its deadline", d)
	}
	for range 50 {
		if v, err := conn.Eval(ctx, "sum(range(1000))"); err != nil || v != int64(499500) {
			t.Fatalf("after the cancelled call: %v, %v", v, err)
		}
	}
	// a context that ends after the call finished cancels nothing
	quick, cancel3 := context.WithCancel(ctx)
	if v, err := conn.Eval(quick, "2 + 2"); err != nil || v != int64(4) {
		t.Fatalf("2 + 2 = %v, %v", v, err)
	}
	cancel3()
	time.Sleep(20 * time.Millisecond)
	if v, err := conn.Eval(ctx, "sum(range(100000))"); err != nil || v != int64(4999950000) {
		t.Fatalf("a later call: %v, %v", v, err)
	}
}

// A Ref holds the Python object: Close releases it at once, and a Ref the garbage
// collector finds unreachable releases it too.
func TestEmbeddedRefsReleased(t *testing.T) {
	conn := embeddedTestConn(t)
	ctx, cancel := contextWithTimeout(t, 30*time.Second)
	defer cancel()
	if err := conn.Execute(ctx, "import weakref\nclass Thing: pass\nalive = weakref.WeakSet()\ndef make():\n    t = Thing()\n    alive.add(t)\n    return t"); err != nil {
		t.Fatal(err)
	}
	make1, err := conn.Eval(ctx, "make")
	if err != nil {
		t.Fatal(err)
	}
	mk := make1.(*bridge.Ref)
	thing, err := mk.Call(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := conn.Eval(ctx, "len(alive)"); n != int64(1) {
		t.Fatalf("alive = %v", n)
	}
	thing.(*bridge.Ref).Close()
	if n, _ := conn.Eval(ctx, "len(alive)"); n != int64(0) {
		t.Fatalf("after Close: alive = %v", n)
	}
	for range 10 {
		if _, err := mk.Call(ctx); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "unreachable Refs released", func() bool {
		runtime.GC()
		n, _ := conn.Eval(ctx, "len(alive)")
		return n == int64(0)
	})
}

// sys.executable, sys.prefix and the packages are the named interpreter's, a venv's
// included; Python installed no signal handlers.
func TestEmbeddedInterpreterIsTheNamedOne(t *testing.T) {
	conn := embeddedTestConn(t)
	ctx, cancel := contextWithTimeout(t, 30*time.Second)
	defer cancel()
	python := embeddedPython(t)
	out, err := exec.Command(python, "-c", "import sys; print(sys.executable); print(sys.prefix)").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Split(strings.TrimSpace(string(out)), "\n")
	v, err := conn.Eval(ctx, "(__import__('sys').executable, __import__('sys').prefix)")
	if err != nil {
		t.Fatal(err)
	}
	if got := v.(brine.Tuple); got[0] != want[0] || got[1] != want[1] {
		t.Errorf("embedded sys.executable, sys.prefix = %v, want %v", got, want)
	}
	if sig, err := conn.Eval(ctx, "__import__('signal').getsignal(__import__('signal').SIGINT) is None"); err != nil || sig != true {
		t.Errorf("Python has a SIGINT handler: %v, %v", sig, err)
	}
	if strings.Contains(python, "/.venv/rpyc6/") {
		if v, err := conn.Eval(ctx, "__import__('rpyc').__version__"); err != nil || v != "6.0.2" {
			t.Errorf("the venv's rpyc: %v, %v", v, err)
		}
	}
}

// One interpreter per process: another one is refused with a clear error.
func TestEmbeddedSecondInterpreterRefused(t *testing.T) {
	embeddedTestConn(t)
	other, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3 on PATH")
	}
	running := embedHost.h.Embedded().Executable()
	info, err := exec.Command(other, "-c", "import sys; print(sys.executable)").Output()
	if err != nil || strings.TrimSpace(string(info)) == running {
		t.Skip("python3 on PATH is the embedded interpreter itself")
	}
	ctx, cancel := contextWithTimeout(t, 30*time.Second)
	defer cancel()
	_, err = Start(ctx, Config{Python: other, Isolation: IsolationEmbedded})
	if err == nil || !strings.Contains(err.Error(), "one interpreter per process") {
		t.Fatalf("second interpreter: %v", err)
	}
	again, err := Start(ctx, Config{Python: embeddedPython(t), Isolation: IsolationEmbedded})
	if err != nil {
		t.Fatalf("the same interpreter again: %v", err)
	}
	again.Close()
}

// Many goroutines call Python at once on one connection and on several.
func TestEmbeddedConcurrentCalls(t *testing.T) {
	conns := []*bridge.Conn{embeddedTestConn(t), embeddedTestConn(t)}
	ctx, cancel := contextWithTimeout(t, 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := conns[i%2]
			m, err := c.Import(ctx, "math")
			if err != nil {
				errs <- err
				return
			}
			for j := range 300 {
				r, err := m.CallAttr(ctx, "factorial", int64(j%20))
				if err != nil {
					errs <- err
					return
				}
				if j%20 == 5 && r != int64(120) {
					errs <- errors.New("wrong factorial")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
