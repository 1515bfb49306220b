package pyhost

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pybridge/pybridge/bridge/wire"
)

// fakeConfig runs testdata/fakeworker (the frame layer of the protocol, echoing
// requests) instead of the real worker: it tests process handling alone.
func fakeConfig(t *testing.T, logs *logRecorder) Config {
	return Config{
		Python:       testPython(t),
		PackageDir:   "testdata/fakeworker",
		StartTimeout: 20 * time.Second,
		Logger:       slog.New(logs),
	}
}

func request(t *testing.T, ch *Channel, seq int64, body any) (wire.Message, error) {
	t.Helper()
	if err := ch.WriteMessage(wire.Message{Type: wire.MsgRequest, Seq: seq, Body: body}); err != nil {
		return wire.Message{}, err
	}
	return ch.ReadMessage()
}

func TestWorkerServesChannelsAndShutsDown(t *testing.T) {
	logs := newLogRecorder()
	ctx, cancel := contextWithTimeout(t, 30*time.Second)
	defer cancel()
	w, err := StartWorker(ctx, fakeConfig(t, logs))
	if err != nil {
		t.Fatal(err)
	}
	if h := w.Hello(); h.Pid != w.Pid() || h.Protocol != protocolVersion {
		t.Errorf("hello %+v, pid %d", h, w.Pid())
	}
	a, err := w.Open(ctx, OpenOptions{Mode: "go"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := w.Open(ctx, OpenOptions{Mode: "classic"})
	if err != nil {
		t.Fatal(err)
	}
	if a.ID() == b.ID() || w.Load() != 2 {
		t.Fatalf("ids %d %d, load %d", a.ID(), b.ID(), w.Load())
	}
	m, err := request(t, a, 7, "for a")
	if err != nil || m.Type != wire.MsgReply || m.Seq != 7 || m.Body != "for a" {
		t.Fatalf("a: %+v %v", m, err)
	}
	m, err = request(t, b, 8, "print")
	if err != nil || m.Body != "printed" {
		t.Fatalf("b: %+v %v", m, err)
	}
	if err := w.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ReadMessage(); !errors.Is(err, ErrChannelClosed) {
		t.Errorf("read after Close: %v", err)
	}
	if w.Load() != 1 {
		t.Errorf("load after close: %d", w.Load())
	}

	pid := w.Pid()
	if err := w.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	var we *WorkerExitError
	if _, err := a.ReadMessage(); !errors.As(err, &we) || !we.Shutdown || we.Code != 0 || we.Crashed() {
		t.Errorf("open channel after shutdown: %v", err)
	}
	if alive(pid) {
		t.Errorf("worker %d still exists after Shutdown", pid)
	}
	noChildrenLeft(t)
	out := logs.String()
	for _, want := range []string{"INFO hello from the worker worker=1 stream=stdout", "INFO and on stderr worker=1 stream=stderr"} {
		want = strings.Replace(want, "worker=1", "worker="+strconv.Itoa(w.ID()), 1)
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestWorkerDeathFailsItsChannels(t *testing.T) {
	cases := []struct {
		name   string
		kill   func(*Worker, *Channel)
		code   int
		signal syscall.Signal
	}{
		{"os._exit", func(_ *Worker, ch *Channel) {
			ch.WriteMessage(wire.Message{Type: wire.MsgRequest, Seq: 1, Body: "exit"})
		}, 3, 0},
		{"segfault", func(_ *Worker, ch *Channel) {
			ch.WriteMessage(wire.Message{Type: wire.MsgRequest, Seq: 1, Body: "segv"})
		}, -1, syscall.SIGSEGV},
		{"SIGKILL", func(w *Worker, _ *Channel) { syscall.Kill(w.Pid(), syscall.SIGKILL) }, -1, syscall.SIGKILL},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := contextWithTimeout(t, 30*time.Second)
			defer cancel()
			w, err := StartWorker(ctx, fakeConfig(t, newLogRecorder()))
			if err != nil {
				t.Fatal(err)
			}
			defer w.Shutdown(ctx)
			victim, _ := w.Open(ctx, OpenOptions{Mode: "go"})
			other, _ := w.Open(ctx, OpenOptions{Mode: "go"})
			c.kill(w, victim)
			for _, ch := range []*Channel{victim, other} {
				var we *WorkerExitError
				_, err := ch.ReadMessage()
				if !errors.As(err, &we) || !we.Crashed() || we.Code != c.code || we.Signal != c.signal || we.Pid != w.Pid() {
					t.Errorf("channel %d: got %v, want exit code %d signal %v", ch.ID(), err, c.code, c.signal)
				}
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("%v does not wrap io.ErrUnexpectedEOF", err)
				}
				if err := ch.WriteMessage(wire.Message{Type: wire.MsgRequest, Seq: 2, Body: "x"}); !errors.As(err, &we) {
					t.Errorf("write after death: %v", err)
				}
			}
			<-w.Done()
			if _, err := w.Open(ctx, OpenOptions{Mode: "go"}); !errors.As(err, new(*WorkerExitError)) {
				t.Errorf("open on a dead worker: %v", err)
			}
			if alive(w.Pid()) {
				t.Errorf("dead worker %d not reaped", w.Pid())
			}
		})
	}
	noChildrenLeft(t)
}

func TestWorkerClosesConnection(t *testing.T) {
	ctx, cancel := contextWithTimeout(t, 30*time.Second)
	defer cancel()
	w, err := StartWorker(ctx, fakeConfig(t, newLogRecorder()))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown(ctx)
	ch, _ := w.Open(ctx, OpenOptions{Mode: "go"})
	ch.WriteMessage(wire.Message{Type: wire.MsgRequest, Seq: 1, Body: "before"})
	ch.WriteMessage(wire.Message{Type: wire.MsgRequest, Seq: 2, Body: "close"})
	// the reply sent before CLOSE is still delivered, then the close
	if m, err := ch.ReadMessage(); err != nil || m.Body != "before" {
		t.Fatalf("%+v %v", m, err)
	}
	_, err = ch.ReadMessage()
	var ce *ClosedError
	if !errors.As(err, &ce) || ce.Reason != "closed by hosted code" || !errors.Is(err, io.EOF) {
		t.Fatalf("got %v, want a *ClosedError with the reason", err)
	}
	if w.Load() != 0 {
		t.Errorf("load %d after CLOSE", w.Load())
	}
	if err := w.Ping(ctx); err != nil {
		t.Errorf("worker unhealthy after a connection closed: %v", err)
	}
}

func TestWorkerStartErrors(t *testing.T) {
	ctx, cancel := contextWithTimeout(t, 30*time.Second)
	defer cancel()
	cfg := fakeConfig(t, newLogRecorder())
	cfg.Python = "/nonexistent/python3"
	var se *StartError
	if _, err := StartWorker(ctx, cfg); !errors.As(err, &se) {
		t.Errorf("missing interpreter: %v", err)
	}
	cfg = fakeConfig(t, newLogRecorder())
	cfg.PackageDir = t.TempDir() // no pybridge in it
	cfg.Env = []string{"PATH=/usr/bin:/bin"}
	_, err := StartWorker(ctx, cfg)
	if !errors.As(err, &se) || !strings.Contains(se.Stderr, "No module named") {
		t.Errorf("missing package: %v", err)
	}
	cfg = fakeConfig(t, newLogRecorder())
	short, cancel2 := context.WithTimeout(ctx, time.Millisecond)
	defer cancel2()
	if _, err := StartWorker(short, cfg); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("canceled start: %v", err)
	}
	noChildrenLeft(t)
}

// processState is the state letter of pid from /proc ("" when it does not exist).
func processState(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return f[0]
}

func TestWorkerProcessGroupAndLimits(t *testing.T) {
	ctx, cancel := contextWithTimeout(t, 30*time.Second)
	defer cancel()
	cfg := fakeConfig(t, newLogRecorder())
	cfg.MemoryLimit = 4 << 30
	w, err := StartWorker(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown(ctx)
	limits, err := os.ReadFile("/proc/" + strconv.Itoa(w.Pid()) + "/limits")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`Max address space\s+4294967296\s+4294967296`).Match(limits) {
		t.Errorf("RLIMIT_AS not applied:\n%s", limits)
	}
	if pgid, err := syscall.Getpgid(w.Pid()); err != nil || pgid != w.Pid() {
		t.Errorf("worker pgid %d (%v), want its own group %d", pgid, err, w.Pid())
	}
	// a process hosted code started dies with the worker
	ch, _ := w.Open(ctx, OpenOptions{Mode: "go"})
	m, err := request(t, ch, 1, "spawn")
	if err != nil {
		t.Fatal(err)
	}
	grandchild := int(m.Body.(int64))
	if processState(grandchild) == "" {
		t.Fatalf("hosted code's child %d not running", grandchild)
	}
	syscall.Kill(w.Pid(), syscall.SIGKILL)
	<-w.Done()
	// SIGKILLed with the group (delivery is asynchronous: poll, bounded); a zombie
	// awaits only its new parent's wait
	eventually(t, 10*time.Second, "hosted code's child dies with its worker", func() bool {
		s := processState(grandchild)
		return s == "" || s == "Z"
	})
}

// A worker slow to start is logged as waited for, rather than StartTimeout of silence.
func TestWorkerSlowStartIsLogged(t *testing.T) {
	logs := newLogRecorder()
	ctx, cancel := contextWithTimeout(t, 30*time.Second)
	defer cancel()
	cfg := fakeConfig(t, logs)
	cfg.Env = append(os.Environ(), "FAKE_HELLO_DELAY=2.5")
	w, err := StartWorker(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown(ctx)
	if !strings.Contains(logs.String(), "slow to start") {
		t.Errorf("nothing said while waiting:\n%s", logs.String())
	}
}
