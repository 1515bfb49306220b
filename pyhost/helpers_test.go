package pyhost

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func contextWithTimeout(t testing.TB, d time.Duration) (context.Context, context.CancelFunc) {
	t.Helper()
	return context.WithTimeout(context.Background(), d)
}

// logRecorder is a slog handler that keeps the records, for tests of what workers log.
type logRecorder struct {
	mu    *sync.Mutex
	buf   *bytes.Buffer
	attrs []slog.Attr
}

func newLogRecorder() *logRecorder { return &logRecorder{mu: new(sync.Mutex), buf: new(bytes.Buffer)} }

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf.WriteString(rec.Level.String() + " " + rec.Message)
	for _, a := range r.attrs {
		r.buf.WriteString(" " + a.String())
	}
	rec.Attrs(func(a slog.Attr) bool { r.buf.WriteString(" " + a.String()); return true })
	r.buf.WriteByte('\n')
	return nil
}
func (r *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{mu: r.mu, buf: r.buf, attrs: append(append([]slog.Attr{}, r.attrs...), as...)}
}
func (r *logRecorder) WithGroup(string) slog.Handler { return r }
func (r *logRecorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

// children lists the processes whose parent is this test process (zombies included).
func children(t testing.TB) []int {
	t.Helper()
	me := os.Getpid()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:]) // state, ppid, …
		if len(f) > 1 && f[1] == strconv.Itoa(me) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// alive reports whether pid exists (a zombie counts).
func alive(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

// noChildrenLeft fails the test if any child process of this test process remains.
// Workers are reaped before Shutdown returns, so there is nothing to wait for.
func noChildrenLeft(t testing.TB) {
	t.Helper()
	if pids := children(t); len(pids) > 0 {
		t.Errorf("child processes left behind: %v", pids)
	}
}

// eventually polls cond until it holds or the bound passes (for supervision events
// that happen on their own goroutines).
func eventually(t testing.TB, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, bound)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stopProcess freezes pid (SIGSTOP): it stays alive but answers nothing.
func stopProcess(pid int) error { return syscall.Kill(pid, syscall.SIGSTOP) }

// testPython is the interpreter the worker tests run (make setup builds it):
// PYBRIDGE_TEST_PYTHON, else the rpyc6 venv.
func testPython(t testing.TB) string {
	if p := os.Getenv("PYBRIDGE_TEST_PYTHON"); p != "" {
		return p
	}
	p, err := filepath.Abs("../.venv/rpyc6/bin/python")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Skipf("no test interpreter (run make setup): %v", err)
	}
	return p
}
