package pyhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pybridge/pybridge/bridge"
	"github.com/pybridge/pybridge/bridge/brine"
	"github.com/pybridge/pybridge/bridge/wire"
	"golang.org/x/sys/unix"
)

// hostPythons are the interpreters the real worker is tested under: one with the
// msgpack extension, one without (its built-in codec).
func hostPythons(t *testing.T) map[string]string {
	out := map[string]string{}
	for name, codec := range map[string]string{"rpyc6": "msgpack", "pydantic1": "builtin"} {
		p, _ := filepath.Abs("../.venv/" + name + "/bin/python")
		if _, err := os.Stat(p); err != nil {
			t.Skipf("no %s venv (run make setup)", name)
		}
		out[codec] = p
	}
	return out
}

func startHost(t *testing.T, python string, mod func(*Config)) *Host {
	t.Helper()
	ctx, cancel := contextWithTimeout(t, 30*time.Second)
	defer cancel()
	cfg := Config{Python: python, Logger: slog.New(newLogRecorder()), RestartBackoff: 10 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	h, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Close()
		noChildrenLeft(t)
	})
	return h
}

// connectHost starts a host on the interpreter with msgpack and connects to it; the
// ctx, the connection and the host end with the test.
func connectHost(t *testing.T) (context.Context, *bridge.Conn) {
	t.Helper()
	h := startHost(t, hostPythons(t)["msgpack"], nil)
	ctx, cancel := contextWithTimeout(t, 30*time.Second)
	t.Cleanup(cancel)
	conn, err := h.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return ctx, conn
}

// The real worker end to end, under both interpreters: a call, keyword args, values
// by value, a Python exception as a typed error.
func TestHostCallsPython(t *testing.T) {
	for codec, python := range hostPythons(t) {
		t.Run(codec, func(t *testing.T) {
			h := startHost(t, python, nil)
			ctx, cancel := contextWithTimeout(t, 30*time.Second)
			defer cancel()
			if got := h.Pool().Workers()[0].Hello().Codec; got != codec {
				t.Errorf("worker codec %q, want %q", got, codec)
			}
			conn, err := h.Connect(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			m, err := conn.Import(ctx, "math")
			if err != nil {
				t.Fatal(err)
			}
			if r, err := m.CallAttr(ctx, "sqrt", 2.0); err != nil || r != 1.4142135623730951 {
				t.Errorf("math.sqrt(2) = %v, %v", r, err)
			}
			if r, err := m.CallAttr(ctx, "fsum", []any{0.1, 0.2, 0.3}); err != nil || r != 0.6 {
				t.Errorf("math.fsum([.1,.2,.3]) = %v, %v (a Go slice by value)", r, err)
			}
			_, err = m.CallAttr(ctx, "sqrt", -1.0)
			var re *bridge.RemoteError
			if !errors.As(err, &re) || re.Type != "ValueError" {
				t.Errorf("math.sqrt(-1): %v, want a ValueError", err)
			}
		})
	}
}

// A crash (os._exit, SIGKILL, segfault) fails the calls of that worker with a
// *WorkerExitError, and the pool replaces the worker.
func TestHostWorkerCrashes(t *testing.T) {
	python := hostPythons(t)["msgpack"]
	h := startHost(t, python, nil)
	ctx, cancel := contextWithTimeout(t, 60*time.Second)
	defer cancel()
	crashes := map[string]string{
		"os._exit": "__import__('os')._exit(1)",
		"SIGKILL":  "__import__('os').kill(__import__('os').getpid(), 9)",
		"segfault": "__import__('ctypes').string_at(0)",
	}
	for name, code := range crashes {
		t.Run(name, func(t *testing.T) {
			before := h.Pool().Workers()[0]
			conn, err := h.Connect(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_, err = conn.Eval(ctx, code)
			var we *WorkerExitError
			if !errors.As(err, &we) || !we.Crashed() || we.Pid != before.Pid() {
				t.Fatalf("got %v, want a *WorkerExitError of pid %d", err, before.Pid())
			}
			eventually(t, 20*time.Second, "replacement", func() bool {
				ws := h.Pool().Workers()
				return len(ws) == 1 && ws[0] != before
			})
			again, err := h.Connect(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer again.Close()
			if r, err := again.Eval(ctx, "1 + 1"); err != nil || r != int64(2) {
				t.Errorf("replacement worker: %v, %v", r, err)
			}
		})
	}
}

// Canceling a call returns at once; the Python code runs on to its end (as the package
// doc says), and the connection's next call is served after it.
func TestHostCancelCall(t *testing.T) {
	ctx, conn := connectHost(t)
	if _, err := conn.Eval(ctx, "__import__('builtins').__dict__.setdefault('done', [])"); err != nil {
		t.Fatal(err)
	}
	short, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	_, err := conn.Eval(short, "(__import__('time').sleep(0.5), done.append(1))")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("canceled call: %v", err)
	}
	if r, err := conn.Eval(ctx, "len(done)"); err != nil || r != int64(1) {
		t.Errorf("after the canceled call: done has %v items (%v), want 1: the code ran to its end", r, err)
	}
}

// Close leaves no process behind and fails open connections with a shutdown error.
func TestHostCloseLeavesNothing(t *testing.T) {
	h := startHost(t, hostPythons(t)["msgpack"], func(c *Config) { c.Workers = 2 })
	ctx, cancel := contextWithTimeout(t, 30*time.Second)
	defer cancel()
	conn, err := h.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pids := []int{}
	for _, w := range h.Pool().Workers() {
		pids = append(pids, w.Pid())
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	var we *WorkerExitError
	if _, err := conn.Eval(ctx, "1"); !errors.As(err, &we) || !we.Shutdown {
		t.Errorf("call after Close: %v", err)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("worker %d still exists", pid)
		}
	}
	noChildrenLeft(t)
}

// threadSwitches sums the context switches of every thread of pid.
func threadSwitches(t *testing.T, pid int) int {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, task.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
				n, _ := strconv.Atoi(strings.TrimSpace(v))
				total += n
			}
		}
	}
	return total
}

// An idle connection costs the worker nothing: its thread sleeps in a blocking read
// that only the client's next message ends, and no thread of the worker wakes up, not
// even for health pings (sent only while a request waits for the worker).
func TestWorkerIdleConnectionsSleep(t *testing.T) {
	h := startHost(t, hostPythons(t)["msgpack"], func(c *Config) { c.PingInterval = 50 * time.Millisecond })
	ctx, cancel := contextWithTimeout(t, 30*time.Second)
	defer cancel()
	var conns []*bridge.Conn
	for range 3 {
		c, err := h.Connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Eval(ctx, "1"); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	pid := h.Pool().Workers()[0].Pid()
	time.Sleep(300 * time.Millisecond) // let the replies' wake-ups settle
	before := threadSwitches(t, pid)
	time.Sleep(1500 * time.Millisecond)
	if after := threadSwitches(t, pid); after != before {
		t.Errorf("the worker's threads woke up %d times while its connections were idle", after-before)
	}
	if _, err := conns[0].Eval(ctx, "2"); err != nil {
		t.Fatal(err)
	}
}

// Hosted code that blocks in one connection does not hold up another connection in
// the same worker.
func TestWorkerBlockedConnectionDoesNotStallAnother(t *testing.T) {
	h := startHost(t, hostPythons(t)["msgpack"], nil)
	ctx, cancel := contextWithTimeout(t, 30*time.Second)
	defer cancel()
	slow, err := h.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	quick, err := h.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer quick.Close()
	// an event shared by the worker's connections (module state is per worker)
	if err := slow.Execute(ctx, "import builtins, threading\nbuiltins.pb_release = threading.Event()"); err != nil {
		t.Fatal(err)
	}
	blocked := slow.Async(wire.HandleCallAttr, mustRef(t, slow, ctx, "pb_release"), "wait", brine.Tuple{int64(20)}, brine.Tuple{})
	// the other connection is served while the first one's thread blocks, and it is
	// what releases it
	if r, err := quick.Eval(ctx, "6 * 7"); err != nil || r != int64(42) {
		t.Fatalf("the other connection: %v, %v", r, err)
	}
	if _, err := quick.Eval(ctx, "__import__('builtins').pb_release.set()"); err != nil {
		t.Fatal(err)
	}
	if r, err := blocked.Wait(ctx); err != nil || r != true {
		t.Fatalf("wait() on the first connection: %v, %v", r, err)
	}
}

func mustRef(t *testing.T, c *bridge.Conn, ctx context.Context, expr string) *bridge.Ref {
	t.Helper()
	v, err := c.Eval(ctx, expr)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := v.(*bridge.Ref)
	if !ok {
		t.Fatalf("%s is %T, not an object", expr, v)
	}
	return r
}

// A worker busy in a long C call that holds the GIL cannot answer health pings, but it
// is working: it is not killed (a stopped, idle worker is: TestPoolKillsUnresponsiveWorker).
func TestHealthPingsSpareBusyWorkers(t *testing.T) {
	h := startHost(t, hostPythons(t)["msgpack"], func(c *Config) {
		c.PingInterval, c.PingTimeout, c.PingFailures = 50*time.Millisecond, 50*time.Millisecond, 2
	})
	ctx, cancel := contextWithTimeout(t, 60*time.Second)
	defer cancel()
	conn, err := h.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	before := h.Pool().Workers()[0]
	// catastrophic backtracking: seconds inside the re module's C code, GIL held
	if r, err := conn.Eval(ctx, "__import__('re').match(r'(a+)+$', 'a' * 25 + 'b')"); err != nil || r != nil {
		t.Fatalf("busy call: %v, %v", r, err)
	}
	if ws := h.Pool().Workers(); len(ws) != 1 || ws[0] != before {
		t.Error("the busy worker was replaced")
	}
}

// Closing a connection after a loop of calls logs no reply to an unknown request (the
// reply to CLOSE itself is expected).
func TestHostCloseLogsNoStrayReply(t *testing.T) {
	logs := newLogRecorder()
	h := startHost(t, hostPythons(t)["msgpack"], func(c *Config) { c.Logger = slog.New(logs) })
	ctx, cancel := contextWithTimeout(t, 30*time.Second)
	defer cancel()
	for range 5 {
		conn, err := h.Connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m, err := conn.Import(ctx, "math")
		if err != nil {
			t.Fatal(err)
		}
		for range 20 {
			if _, err := m.CallAttr(ctx, "sqrt", 2.0); err != nil {
				t.Fatal(err)
			}
		}
		conn.Close()
	}
	time.Sleep(300 * time.Millisecond) // a stray reply would be logged by now
	if strings.Contains(logs.String(), "reply to no request") {
		t.Errorf("logged:\n%s", logs.String())
	}
}

// Python calls Go while Go calls nothing: a Python thread calls a Go func after the
// call that handed it over returned (the connection's callers read their own replies;
// someone must still read Python's request), and many goroutines call at once.
func TestHostServesPythonCallingGoWhileGoIsIdle(t *testing.T) {
	ctx, conn := connectHost(t)
	if err := conn.Execute(ctx, "import threading\n"+
		"def later(f, n, delay):\n"+
		"    threading.Timer(delay, lambda: [f(i) for i in range(n)]).start()\n"); err != nil {
		t.Fatal(err)
	}
	later, err := conn.Eval(ctx, "later")
	if err != nil {
		t.Fatal(err)
	}
	for _, delay := range []float64{0, 0.0005, 0.05} {
		got := make(chan int64, 10)
		if _, err := later.(*bridge.Ref).Call(ctx, func(i int64) { got <- i }, int64(10), delay); err != nil {
			t.Fatal(err)
		}
		for want := range int64(10) {
			select {
			case i := <-got:
				if i != want {
					t.Fatalf("delay %v: call %d from Python, want %d", delay, i, want)
				}
			case <-ctx.Done():
				t.Fatalf("delay %v: Python's call %d of a Go func was never served", delay, want)
			}
		}
	}
	sqrt, err := conn.Eval(ctx, "__import__('math').sqrt")
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 16)
	for g := range 16 {
		go func() {
			for i := range 50 {
				x := float64(g*100 + i)
				r, err := sqrt.(*bridge.Ref).Call(ctx, x*x)
				if err != nil || r != x {
					errs <- fmt.Errorf("sqrt(%v) = %v, %v", x*x, r, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// A process out of descriptors still gets its replies: the caller that cannot have the
// eventfd a ctx interrupts its wait with reads without it (its ctx is then noticed at
// the next message), and the connection lives on.
func TestHostCallsWithoutDescriptorsToSpare(t *testing.T) {
	ctx, conn := connectHost(t)
	// no call with a ctx that can end has been made on conn yet: its eventfd is not made.
	// Spend every descriptor under a limit just above those open now.
	var limit unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &limit); err != nil {
		t.Fatal(err)
	}
	open, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	low := limit
	low.Cur = uint64(len(open) + 32)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	var spent []*os.File
	for len(spent) < 64 {
		f, err := os.Open(os.DevNull)
		if err != nil {
			break
		}
		spent = append(spent, f)
	}
	r, err := conn.Eval(ctx, "6 * 7")
	for _, f := range spent {
		f.Close()
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &limit); err != nil {
		t.Fatal(err)
	}
	if len(spent) == 64 {
		t.Fatalf("opened 64 files under a limit of %d: the limit did not hold", low.Cur)
	}
	if err != nil || r != int64(42) {
		t.Fatalf("a call while out of descriptors: %v, %v", r, err)
	}
	if r, err := conn.Eval(ctx, "6 * 7"); err != nil || r != int64(42) {
		t.Fatalf("the call after: %v, %v", r, err)
	}
}
