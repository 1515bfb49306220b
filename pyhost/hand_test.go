package pyhost

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// servingWorkerEnv makes this test binary a serving worker (TestMain): a stand-in for
// `pybridge serve --worker-fd 3` that answers each line a handed client sends with
// "<pid> <pings seen> <line>", and exits with status 3 on the line "crash".
const servingWorkerEnv = "PYHOST_TEST_SERVING_WORKER"

func fakeServingWorker() int {
	var pings atomic.Int64
	ln, err := ListenHanded(3, Hello{Python: "fake"}, func(context.Context) error { pings.Add(1); return nil })
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() {
		<-ln.Done()
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			return 0
		}
		go func() {
			defer ln.Ended(c)
			defer c.Close()
			rd := bufio.NewReader(c)
			for {
				line, err := rd.ReadString('\n')
				if err != nil {
					return
				}
				line = strings.TrimSpace(line)
				if line == "crash" {
					os.Exit(3)
				}
				fmt.Fprintf(c, "%d %d %s\n", os.Getpid(), pings.Load(), line)
			}
		}()
	}
}

func servingConfig(t *testing.T) Config {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return Config{ServingWorker: []string{exe}, Env: append(os.Environ(), servingWorkerEnv+"=1"),
		Logger: slog.New(newLogRecorder()), RestartBackoff: 10 * time.Millisecond}
}

// servingPool starts a pool of cfg's serving workers, shut down when the test ends.
func servingPool(t *testing.T, ctx context.Context, cfg Config) *Pool {
	t.Helper()
	p, err := NewPool(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	return p
}

// client is a handed connection seen from the client's side.
type client struct {
	c  net.Conn
	rd *bufio.Reader
}

// handTo connects a client to a fresh listener, hands the server's side to p and
// returns the client's side.
func handTo(t *testing.T, ctx context.Context, p *Pool) (*client, *Worker) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	w, err := p.Hand(ctx, s)
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	return &client{c, bufio.NewReader(c)}, w
}

// ask sends line and returns the worker's pid and pings seen, as it answered.
func (c *client) ask(line string) (pid, pings int, err error) {
	c.c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := fmt.Fprintln(c.c, line); err != nil {
		return 0, 0, err
	}
	answer, err := c.rd.ReadString('\n')
	if err != nil {
		return 0, 0, err
	}
	var echoed string
	if _, err := fmt.Sscanf(answer, "%d %d %s", &pid, &pings, &echoed); err != nil || echoed != line {
		return 0, 0, fmt.Errorf("answer %q to %q", answer, line)
	}
	return pid, pings, nil
}

func TestPoolHandsClientsToServingWorkers(t *testing.T) {
	ctx, cancel := contextWithTimeout(t, 60*time.Second)
	defer cancel()
	cfg := servingConfig(t)
	cfg.Workers = 2
	p := servingPool(t, ctx, cfg)
	a, wa := handTo(t, ctx, p)
	b, wb := handTo(t, ctx, p)
	if wa == wb {
		t.Fatal("two clients handed to one worker while another was idle")
	}
	pa, _, err := a.ask("hello")
	if err != nil || pa != wa.Pid() {
		t.Fatalf("client a: served by pid %d (its worker: %d): %v", pa, wa.Pid(), err)
	}
	if pb, _, err := b.ask("hello"); err != nil || pb != wb.Pid() {
		t.Fatalf("client b: served by pid %d (its worker: %d): %v", pb, wb.Pid(), err)
	}
	if wa.Load() != 1 {
		t.Errorf("a worker serving one handed client: load %d", wa.Load())
	}
	// the worker's end of the connection is counted off when it says ENDED
	a.c.Close()
	eventually(t, 20*time.Second, "the ended connection counted off", func() bool { return wa.Load() == 0 })

	// a crash takes only its own worker's clients along; the pool replaces the worker
	c, wc := handTo(t, ctx, p)
	if wc != wa {
		t.Fatalf("the idle worker was not picked")
	}
	if _, _, err := c.ask("crash"); err == nil {
		t.Fatal("the crashed worker's client still got an answer")
	}
	<-wa.Done()
	var we *WorkerExitError
	if !errors.As(wa.Err(), &we) || we.Code != 3 || we.Shutdown {
		t.Errorf("crashed worker's error: %v", wa.Err())
	}
	if pb, _, err := b.ask("still-here"); err != nil || pb != wb.Pid() {
		t.Fatalf("the other worker's client after the crash: pid %d: %v", pb, err)
	}
	eventually(t, 20*time.Second, "a replacement worker", func() bool {
		st := p.Stats()
		return st.Restarts == 1 && len(p.Workers()) == 2
	})
	d, _ := handTo(t, ctx, p)
	if _, _, err := d.ask("after"); err != nil {
		t.Fatal(err)
	}
}

func TestPoolPingsServingWorkersWithClients(t *testing.T) {
	ctx, cancel := contextWithTimeout(t, 60*time.Second)
	defer cancel()
	cfg := servingConfig(t)
	cfg.PingInterval = 20 * time.Millisecond
	p := servingPool(t, ctx, cfg)
	c, _ := handTo(t, ctx, p)
	eventually(t, 20*time.Second, "pings answered by the serving worker", func() bool {
		_, pings, err := c.ask("pings?")
		if err != nil {
			t.Fatal(err)
		}
		return pings >= 3
	})
	if st := p.Stats(); st.Restarts != 0 {
		t.Errorf("a worker answering its pings was replaced: %+v", st)
	}
}

func TestPoolHandConnectionIsolation(t *testing.T) {
	ctx, cancel := contextWithTimeout(t, 60*time.Second)
	defer cancel()
	cfg := servingConfig(t)
	cfg.Isolation = IsolationConnection
	p := servingPool(t, ctx, cfg)
	a, wa := handTo(t, ctx, p)
	b, wb := handTo(t, ctx, p)
	pa, _, err := a.ask("a")
	if err != nil {
		t.Fatal(err)
	}
	pb, _, err := b.ask("b")
	if err != nil {
		t.Fatal(err)
	}
	if wa == wb || pa == pb {
		t.Fatalf("two connections in one process (pids %d, %d)", pa, pb)
	}
	// the connection's end retires its worker (a clean shutdown, not a crash)
	a.c.Close()
	select {
	case <-wa.Done():
	case <-ctx.Done():
		t.Fatal("the worker of a closed connection was not retired")
	}
	var we *WorkerExitError
	if !errors.As(wa.Err(), &we) || !we.Shutdown {
		t.Errorf("retired worker: %v", wa.Err())
	}
	if _, _, err := b.ask("b-again"); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Restarts != 0 {
		t.Errorf("a retired worker counted as a crash: %+v", st)
	}
}

func TestPoolHandAndOpenNeedTheirKindOfWorker(t *testing.T) {
	ctx, cancel := contextWithTimeout(t, 60*time.Second)
	defer cancel()
	p := servingPool(t, ctx, servingConfig(t))
	if _, err := p.Open(ctx, OpenOptions{Mode: "go"}); !errors.Is(err, ErrNotServing) {
		t.Errorf("Open on a pool of serving workers: %v", err)
	}
	q, err := NewPool(ctx, fakeConfig(t, newLogRecorder()))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Shutdown(ctx)
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	if _, err := q.Hand(ctx, c1); !errors.Is(err, ErrNotServing) {
		t.Errorf("Hand on a pool of Python workers: %v", err)
	}
}

func TestStartRefusesServingWorkers(t *testing.T) {
	ctx, cancel := contextWithTimeout(t, 30*time.Second)
	defer cancel()
	if h, err := Start(ctx, servingConfig(t)); !errors.Is(err, ErrNotServing) {
		if h != nil {
			h.Close()
		}
		t.Fatalf("Start with serving workers: %v", err)
	}
}

func TestPoolKillsAnUnresponsiveServingWorker(t *testing.T) {
	ctx, cancel := contextWithTimeout(t, 60*time.Second)
	defer cancel()
	cfg := servingConfig(t)
	cfg.PingInterval = 20 * time.Millisecond
	cfg.PingTimeout = 50 * time.Millisecond
	cfg.PingFailures = 2
	p := servingPool(t, ctx, cfg)
	c, w := handTo(t, ctx, p)
	if _, _, err := c.ask("before"); err != nil {
		t.Fatal(err)
	}
	if err := stopProcess(w.Pid()); err != nil { // alive but answering nothing
		t.Fatal(err)
	}
	select {
	case <-w.Done():
	case <-ctx.Done():
		t.Fatal("a serving worker that answers no ping was not killed")
	}
	var we *WorkerExitError
	if !errors.As(w.Err(), &we) || we.Cause == nil || we.Signal == 0 {
		t.Fatalf("hung serving worker: %v", w.Err())
	}
	// its client is cut off (the worker held the only other end), and a new one is served
	c.c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.rd.ReadString('\n'); err == nil {
		t.Error("the killed worker's client still reads")
	}
	d, _ := handTo(t, ctx, p)
	if _, _, err := d.ask("after"); err != nil {
		t.Fatal(err)
	}
}
