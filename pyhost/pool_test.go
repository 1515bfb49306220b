package pyhost

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/pybridge/pybridge/bridge/wire"
)

func pids(ws []*Worker) map[int]bool {
	m := map[int]bool{}
	for _, w := range ws {
		m[w.Pid()] = true
	}
	return m
}

func TestPoolSharedSpreadsAndReplacesCrashed(t *testing.T) {
	ctx, cancel := contextWithTimeout(t, 60*time.Second)
	defer cancel()
	cfg := fakeConfig(t, newLogRecorder())
	cfg.Workers = 2
	cfg.PingInterval = 50 * time.Millisecond
	p, err := NewPool(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(ctx)
	if st := p.Stats(); st != (PoolStats{Alive: 2}) {
		t.Errorf("stats of a new pool: %+v", st)
	}
	a, err := p.Open(ctx, OpenOptions{Mode: "go"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Open(ctx, OpenOptions{Mode: "go"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Worker() == b.Worker() {
		t.Fatal("two connections on one worker while another was idle")
	}
	before := pids(p.Workers())
	crashed := a.Worker().Pid()
	a.WriteMessage(wire.Message{Type: wire.MsgRequest, Seq: 1, Body: "segv"})
	if _, err := a.ReadMessage(); !errors.As(err, new(*WorkerExitError)) {
		t.Fatalf("crashed worker's channel: %v", err)
	}
	// the other worker's connection never notices
	if m, err := request(t, b, 2, "still here"); err != nil || m.Body != "still here" {
		t.Fatalf("other worker: %+v %v", m, err)
	}
	eventually(t, 20*time.Second, "replacement worker", func() bool {
		now := pids(p.Workers())
		return len(now) == 2 && !now[crashed]
	})
	if !before[b.Worker().Pid()] || !pids(p.Workers())[b.Worker().Pid()] {
		t.Error("the healthy worker was replaced too")
	}
	eventually(t, 20*time.Second, "stats after the replacement", func() bool {
		return p.Stats() == PoolStats{Alive: 2, Restarts: 1}
	})
	c, err := p.Open(ctx, OpenOptions{Mode: "go"})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := request(t, c, 3, "new"); err != nil || m.Body != "new" {
		t.Fatalf("connection to the replacement: %+v %v", m, err)
	}
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Open(ctx, OpenOptions{Mode: "go"}); !errors.Is(err, ErrHostClosed) {
		t.Errorf("open after shutdown: %v", err)
	}
	eventually(t, 20*time.Second, "no worker alive after shutdown", func() bool { return p.Stats().Alive == 0 })
	noChildrenLeft(t)
}

func TestPoolConnectionIsolation(t *testing.T) {
	ctx, cancel := contextWithTimeout(t, 60*time.Second)
	defer cancel()
	cfg := fakeConfig(t, newLogRecorder())
	cfg.Isolation = "connection"
	cfg.Workers = 1
	p, err := NewPool(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(ctx)
	a, err := p.Open(ctx, OpenOptions{Mode: "go"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Open(ctx, OpenOptions{Mode: "go"}) // waits for the next spare
	if err != nil {
		t.Fatal(err)
	}
	if a.Worker() == b.Worker() {
		t.Fatal("two connections share a worker under isolation connection")
	}
	if m, err := request(t, a, 1, "x"); err != nil || m.Body != "x" {
		t.Fatalf("%+v %v", m, err)
	}
	pa := a.Worker().Pid()
	a.Close()
	<-a.Worker().Done()
	if we := a.Worker().Err().(*WorkerExitError); !we.Shutdown {
		t.Errorf("retired worker: %v", we)
	}
	if alive(pa) {
		t.Errorf("retired worker %d still exists", pa)
	}
	// a worker whose hosted code closes the connection is retired as well
	b.WriteMessage(wire.Message{Type: wire.MsgRequest, Seq: 1, Body: "close"})
	if _, err := b.ReadMessage(); !errors.As(err, new(*ClosedError)) {
		t.Fatal(err)
	}
	<-b.Worker().Done()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	noChildrenLeft(t)
}

func TestPoolKillsUnresponsiveWorker(t *testing.T) {
	ctx, cancel := contextWithTimeout(t, 60*time.Second)
	defer cancel()
	logs := newLogRecorder()
	cfg := fakeConfig(t, logs)
	cfg.PingInterval = 20 * time.Millisecond
	cfg.PingTimeout = 50 * time.Millisecond
	cfg.PingFailures = 2
	p, err := NewPool(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(ctx)
	w := p.Workers()[0]
	ch, _ := p.Open(ctx, OpenOptions{Mode: "go"})
	if err := stopProcess(w.Pid()); err != nil { // alive but answering nothing
		t.Fatal(err)
	}
	// a write larger than the socket buffer blocks until the worker is killed; the
	// health pings must not wait behind it
	wrote := make(chan error, 1)
	go func() {
		wrote <- ch.WriteMessage(wire.Message{Type: wire.MsgRequest, Seq: 1, Body: make([]byte, 8<<20)})
	}()
	var we *WorkerExitError
	if _, err := ch.ReadMessage(); !errors.As(err, &we) || we.Cause == nil || we.Signal == 0 {
		t.Fatalf("hung worker's channel: %v", err)
	}
	if err := <-wrote; err == nil {
		t.Error("a write to the killed worker succeeded")
	}
	eventually(t, 20*time.Second, "replacement", func() bool {
		ws := p.Workers()
		return len(ws) == 1 && ws[0] != w
	})
}

// Connections opened at the same instant spread over the workers: the pick counts a
// connection being opened before the next pick looks.
func TestPoolSpreadsSimultaneousOpens(t *testing.T) {
	ctx, cancel := contextWithTimeout(t, 60*time.Second)
	defer cancel()
	cfg := fakeConfig(t, newLogRecorder())
	cfg.Workers = 2
	p, err := NewPool(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(ctx)
	for round := range 20 {
		var wg sync.WaitGroup
		chans := make([]*Channel, 2)
		start := make(chan struct{})
		for i := range chans {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				ch, err := p.Open(ctx, OpenOptions{Mode: "go"})
				if err != nil {
					t.Error(err)
					return
				}
				chans[i] = ch
			}()
		}
		close(start)
		wg.Wait()
		if t.Failed() {
			return
		}
		if chans[0].Worker() == chans[1].Worker() {
			t.Fatalf("round %d: both connections on worker %d", round, chans[0].Worker().ID())
		}
		for _, ch := range chans {
			ch.Close()
		}
	}
}

// Health pings wake a worker only while a connection waits for it: an idle worker (its
// last request answered) is left asleep; one with a request unanswered is pinged.
func TestPoolPingsOnlyAWorkerAConnectionWaitsFor(t *testing.T) {
	ctx, cancel := contextWithTimeout(t, 60*time.Second)
	defer cancel()
	cfg := fakeConfig(t, newLogRecorder())
	cfg.PingInterval = 20 * time.Millisecond
	p, err := NewPool(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(ctx)
	w := p.Workers()[0]
	ch, err := p.Open(ctx, OpenOptions{Mode: "go"})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := request(t, ch, 1, "hello"); err != nil || m.Body != "hello" {
		t.Fatalf("request: %+v %v", m, err)
	}
	pings := func() int64 {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.nextPing
	}
	time.Sleep(2 * cfg.PingInterval) // a ping a tick started while the request waited
	before := pings()
	time.Sleep(15 * cfg.PingInterval)
	if n := pings() - before; n > 0 {
		t.Fatalf("an idle worker was pinged %d times in 15 intervals", n)
	}
	// a request sent and its reply not read yet: the connection waits for the worker
	if err := ch.WriteMessage(wire.Message{Type: wire.MsgRequest, Seq: 2, Body: "pending"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "a ping while a request waits", func() bool { return pings() > before })
	if m, err := ch.ReadMessage(); err != nil || m.Body != "pending" {
		t.Fatalf("reply: %+v %v", m, err)
	}
}
