package bridge_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pybridge/pybridge/bridge"
	"github.com/pybridge/pybridge/bridge/brine"
)

func venvPython(t testing.TB, venv string) string {
	p := venvPath(venv)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s: run `make setup` first: %v", p, err)
	}
	return p
}

// venvPath is the interpreter of one of the repository's venvs (built by make setup).
func venvPath(venv string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", ".venv", venv, "bin", "python")
}

// startRpyc runs rpyc's own classic server from a venv and returns its address.
func startRpyc(t testing.TB, venv string) string {
	_, addr := startRpycServer(t, venv, "classic", "")
	return addr
}

// startRpycServer runs testdata/rpyc_server.py (mode "classic" or "service") on a free
// loopback port, or on the Unix socket unixPath, and returns where it listens. The
// server is killed when the test ends.
func startRpycServer(t testing.TB, venv, mode, unixPath string, env ...string) (network, addr string) {
	t.Helper()
	s := runRpycServer(t, venv, mode, unixPath, env...)
	return s.network, s.addr
}

// runRpycServer is startRpycServer, returning the server (its stderr, to read).
func runRpycServer(t testing.TB, venv, mode, unixPath string, env ...string) *rpycServer {
	t.Helper()
	python := venvPython(t, venv)
	s, err := launchRpyc(python, mode, unixPath, env...)
	t.Cleanup(func() {
		if s == nil {
			return
		}
		s.stop()
		if t.Failed() {
			t.Logf("rpyc server (%s %s) stderr:\n%s", venv, mode, s.stderr.String())
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	s.venv = venv
	return s
}

type rpycServer struct {
	cmd           *exec.Cmd
	venv          string
	network, addr string
	stderr        lockedBuffer // the probe's wrong-layout PING makes rpyc print a traceback
}

// lockedBuffer is the server's stderr, written by exec's copying goroutine and read by
// the test while the server runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (s *rpycServer) stop() { s.cmd.Process.Kill(); s.cmd.Wait() }

// launchRpyc starts the server and waits (30 s at most) until it accepts connections.
// On error the returned server, if any, still needs stop.
func launchRpyc(python, mode, unixPath string, env ...string) (*rpycServer, error) {
	args := []string{"testdata/rpyc_server.py", mode}
	s := &rpycServer{network: "tcp"}
	if unixPath != "" {
		args, s.network = append(args, unixPath), "unix"
	}
	s.cmd = exec.Command(python, args...)
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.Stderr = &s.stderr
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	port := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		port <- strings.TrimSpace(line)
	}()
	select {
	case p := <-port:
		if p == "" {
			return s, errors.New("rpyc server exited before listening")
		}
		s.addr = p
		if s.network == "tcp" {
			s.addr = "127.0.0.1:" + p
		}
	case <-time.After(30 * time.Second):
		return s, errors.New("rpyc server did not start")
	}
	// ThreadedServer binds in __init__ but listens only in start(): wait for it
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout(s.network, s.addr, time.Second)
		if err == nil {
			c.Close()
			return s, nil
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("rpyc server at %s: %w", s.addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func forEachRpyc(t *testing.T, f func(t *testing.T, ctx context.Context, conn *bridge.Conn)) {
	for _, venv := range []string{"rpyc5", "rpyc6"} {
		t.Run(venv, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()
			conn, err := bridge.Dial(ctx, "tcp", startRpyc(t, venv))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			f(t, ctx, conn)
		})
	}
}

func TestAgainstRealRpycServers(t *testing.T) {
	forEachRpyc(t, func(t *testing.T, ctx context.Context, conn *bridge.Conn) {
		math, err := conn.Import(ctx, "math")
		if err != nil {
			t.Fatal(err)
		}
		if v, err := math.CallAttr(ctx, "sqrt", 2.0); err != nil || v != 1.4142135623730951 {
			t.Fatalf("math.sqrt(2) = %v, %v", v, err)
		}
		if v, err := math.Attr(ctx, "pi"); err != nil || v != 3.141592653589793 {
			t.Errorf("math.pi = %v, %v", v, err)
		}
		if v, err := conn.Eval(ctx, "2 ** 100"); err != nil || v.(*big.Int).String() != "1267650600228229401496703205376" {
			t.Errorf("2**100 = %v, %v", v, err)
		}
		kw, err := conn.Eval(ctx, "lambda a, b=0: (a, b)")
		if err != nil {
			t.Fatal(err)
		}
		if v, err := kw.(*bridge.Ref).Call(ctx, 1, bridge.Kwargs{"b": "x"}); err != nil || !equalTuple(v, brine.Tuple{int64(1), "x"}) {
			t.Errorf("call with kwargs = %v, %v", v, err)
		}

		// Python's exception as a typed Go error with the remote traceback
		_, err = conn.Eval(ctx, "1 / 0")
		var re *bridge.RemoteError
		if !errors.As(err, &re) || re.Type != "ZeroDivisionError" || !strings.Contains(re.Traceback, "ZeroDivisionError") {
			t.Errorf("1/0: %v", err)
		}

		// Python calls a Go func: sorted([3, 1, 2], key=<Go>)
		builtins, err := conn.Import(ctx, "builtins")
		if err != nil {
			t.Fatal(err)
		}
		neg := func(x int64) int64 { return -x }
		sorted, err := builtins.CallAttr(ctx, "sorted", brine.Tuple{int64(3), int64(1), int64(2)}, bridge.Kwargs{"key": neg})
		if err != nil {
			t.Fatal(err)
		}
		var got []any
		for v, err := range sorted.(*bridge.Ref).Iter(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, v)
		}
		if len(got) != 3 || got[0] != int64(3) || got[2] != int64(1) {
			t.Errorf("sorted with a Go key = %v", got)
		}

		// a Go error raised in Python, and coming back
		call, _ := conn.Eval(ctx, "lambda f: f()")
		_, err = call.(*bridge.Ref).Call(ctx, func() error { return errors.New("from Go") })
		if !errors.As(err, &re) || re.Type != "RuntimeError" || !strings.Contains(re.Error(), "from Go") {
			t.Errorf("Go error through Python: %v", err)
		}

		// 10 MiB bytes each way: compressed frames
		big := bytes.Repeat([]byte("pybridge"), 10<<20/8)
		echo, _ := conn.Eval(ctx, "lambda x: x")
		if v, err := echo.(*bridge.Ref).Call(ctx, big); err != nil || !bytes.Equal(v.([]byte), big) {
			t.Errorf("10 MiB echo: %v", err)
		}

		// attribute set/del, repr/str/dir/len/item
		if err := conn.Execute(ctx, "class Box: pass\nbox = Box()\nitems = [1, 2, 3]"); err != nil {
			t.Fatal(err)
		}
		box, _ := conn.Eval(ctx, "box")
		b := box.(*bridge.Ref)
		if err := b.SetAttr(ctx, "v", int64(5)); err != nil {
			t.Fatal(err)
		}
		if v, _ := conn.Eval(ctx, "box.v"); v != int64(5) {
			t.Errorf("setattr: box.v = %v", v)
		}
		if err := b.DelAttr(ctx, "v"); err != nil {
			t.Fatal(err)
		}
		if v, _ := conn.Eval(ctx, "hasattr(box, 'v')"); v != false {
			t.Errorf("delattr left v")
		}
		if s, err := b.Repr(ctx); err != nil || !strings.Contains(s, "Box object") {
			t.Errorf("repr = %q, %v", s, err)
		}
		items, _ := conn.Eval(ctx, "items")
		l := items.(*bridge.Ref)
		if n, err := l.Len(ctx); err != nil || n != 3 {
			t.Errorf("len = %d, %v", n, err)
		}
		if v, err := l.Item(ctx, int64(1)); err != nil || v != int64(2) {
			t.Errorf("items[1] = %v, %v", v, err)
		}
		if names, err := l.Dir(ctx); err != nil || !contains(names, "append") {
			t.Errorf("dir = %v, %v", names, err)
		}
		// async: fire and forget, then observe its effect
		if err := l.Conn().AsyncRequest(8, l, "append", brine.Tuple{int64(4)}, brine.Tuple{}); err != nil {
			t.Fatal(err)
		}
		if n, _ := l.Len(ctx); n != 4 {
			t.Errorf("async append: len = %d", n)
		}
	})
}

// Refs received from many goroutines while the GC runs are released exactly: the
// server's table of objects held for us returns to where it started.
func TestRefCacheBalancesUnderGCChurn(t *testing.T) {
	forEachRpyc(t, func(t *testing.T, ctx context.Context, conn *bridge.Conn) {
		root, err := conn.Root(ctx)
		if err != nil {
			t.Fatal(err)
		}
		serverConn, err := root.CallAttr(ctx, "getconn")
		if err != nil {
			t.Fatal(err)
		}
		count, err := conn.Eval(ctx, "lambda c: len(c._local_objects._dict)")
		if err != nil {
			t.Fatal(err)
		}
		held := func() int64 {
			v, err := count.(*bridge.Ref).Call(ctx, serverConn)
			if err != nil {
				t.Fatal(err)
			}
			return v.(int64)
		}
		if err := conn.Execute(ctx, "import math\nshared = [math, {}, []]"); err != nil {
			t.Fatal(err)
		}
		baseline := held()
		stop := make(chan struct{})
		var gcs sync.WaitGroup
		gcs.Add(1)
		go func() {
			defer gcs.Done()
			for {
				select {
				case <-stop:
					return
				default:
					runtime.GC()
				}
			}
		}()
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 40; i++ {
					v, err := conn.Eval(ctx, "shared[0]")
					if err != nil {
						t.Error(err)
						return
					}
					if _, err := v.(*bridge.Ref).Attr(ctx, "pi"); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(stop)
		gcs.Wait()
		// Close releases at once, without waiting for the GC
		closed, err := conn.Eval(ctx, "shared[1]")
		if err != nil {
			t.Fatal(err)
		}
		closed.(*bridge.Ref).Close()
		deadline := time.Now().Add(30 * time.Second)
		for held() != baseline && time.Now().Before(deadline) {
			runtime.GC()
			time.Sleep(20 * time.Millisecond)
		}
		if n := held(); n != baseline {
			t.Fatalf("server holds %d objects for us, %d before: DEL counts do not balance", n, baseline)
		}
	})
}

func equalTuple(v any, want brine.Tuple) bool {
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

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
