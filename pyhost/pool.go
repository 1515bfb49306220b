package pyhost

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Pool keeps Config.Workers workers alive and hands out connections to them.
//
// Isolation "shared": every worker serves many connections (like one rpyc
// ThreadedServer per worker); Open picks the live worker with the fewest open
// connections. Isolation "connection": Workers spare workers are kept started; Open
// takes one for the new connection alone and the worker is shut down when that
// connection closes (like rpyc's ForkingServer, without fork).
//
// Supervision: a worker that dies without being asked (exit, signal, segfault, failed
// health pings) is logged, its connections fail with a *WorkerExitError, and it is
// replaced after a backoff that doubles per consecutive crash. Other workers and their
// connections never notice.
type Pool struct {
	cfg Config
	log *slog.Logger

	ctx     context.Context // supervision; canceled by Shutdown
	cancel  context.CancelFunc
	stopCtx context.Context // Shutdown's ctx, for the supervisors' last shutdowns
	wg      sync.WaitGroup

	mu      sync.Mutex
	live    []*Worker            // shared: the slots' current workers (nil while restarting)
	changed chan struct{}        // closed and replaced whenever live changes
	inUse   map[*Worker]struct{} // connection: workers serving a connection
	closed  bool

	spares chan *Worker // connection: slots hand started workers to Open here

	alive    atomic.Int64  // worker processes started and not gone yet
	restarts atomic.Uint64 // workers replaced after dying unasked
}

// PoolStats says how a pool's workers fare.
type PoolStats struct {
	Alive    int    // worker processes running (spares and retiring ones included)
	Restarts uint64 // workers that died unasked (exit, signal, failed health pings) and were replaced
}

// Stats is the pool's PoolStats now.
func (p *Pool) Stats() PoolStats {
	return PoolStats{Alive: int(p.alive.Load()), Restarts: p.restarts.Load()}
}

// startWorker starts a worker, counted alive until it is gone.
func (p *Pool) startWorker(ctx context.Context) (*Worker, error) {
	w, err := StartWorker(ctx, p.cfg)
	if err == nil {
		p.alive.Add(1)
		go func() {
			<-w.Done()
			p.alive.Add(-1)
		}()
	}
	return w, err
}

// NewPool starts the pool's workers and returns once all of them sent HELLO. If one
// cannot start, the others are stopped and the error (a *StartError) is returned.
func NewPool(ctx context.Context, cfg Config) (*Pool, error) {
	cfg = cfg.withDefaults()
	if cfg.Isolation != "shared" && cfg.Isolation != "connection" {
		return nil, fmt.Errorf("pyhost: isolation %q: want \"shared\" or \"connection\"", cfg.Isolation)
	}
	p := &Pool{
		cfg:     cfg,
		log:     cfg.Logger,
		live:    make([]*Worker, cfg.Workers),
		changed: make(chan struct{}),
		inUse:   make(map[*Worker]struct{}),
		spares:  make(chan *Worker),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())

	workers := make([]*Worker, cfg.Workers)
	errs := make([]error, cfg.Workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			workers[i], errs[i] = p.startWorker(ctx)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, w := range workers {
			if w != nil {
				w.Shutdown(p.shutdownCtx())
			}
		}
		p.cancel()
		return nil, err
	}
	for i, w := range workers {
		p.wg.Add(1)
		if cfg.Isolation == "shared" {
			p.live[i] = w
			go p.superviseShared(i, w)
		} else {
			go p.superviseSpare(w)
		}
	}
	return p, nil
}

// shutdownCtx bounds one worker's shutdown: Config.ShutdownTimeout, and Shutdown's
// ctx while the pool is shutting down.
func (p *Pool) shutdownCtx() context.Context {
	parent := context.Background()
	p.mu.Lock()
	if p.stopCtx != nil {
		parent = p.stopCtx
	}
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(parent, p.cfg.ShutdownTimeout)
	context.AfterFunc(ctx, cancel) // released when it ends; nothing else holds it
	return ctx
}

// setLive records slot i's worker (nil while it is being replaced) and wakes Opens
// waiting for a live worker.
func (p *Pool) setLive(i int, w *Worker) {
	p.mu.Lock()
	p.live[i] = w
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// restart starts a replacement after a crash, waiting backoff first and doubling it
// after each failed start. It returns nil when the pool shuts down meanwhile.
func (p *Pool) restart(backoff *time.Duration) *Worker {
	for {
		select {
		case <-time.After(*backoff):
		case <-p.ctx.Done():
			return nil
		}
		*backoff = min(2**backoff, p.cfg.MaxRestartBackoff)
		w, err := p.startWorker(p.ctx)
		if err == nil {
			return w
		}
		if p.ctx.Err() != nil {
			return nil
		}
		p.log.Error("pyhost: cannot start a replacement worker", "err", err, "retry_in", *backoff)
	}
}

// crashed logs a worker that died unasked and resets the backoff after a long life.
func (p *Pool) crashed(w *Worker, started time.Time, backoff *time.Duration) {
	if time.Since(started) > time.Minute {
		*backoff = p.cfg.RestartBackoff
	}
	p.restarts.Add(1)
	p.log.Warn("pyhost: replacing worker", "worker", w.ID(), "err", w.Err(), "in", *backoff)
}

func (p *Pool) superviseShared(i int, w *Worker) {
	defer p.wg.Done()
	backoff := p.cfg.RestartBackoff
	for w != nil {
		started := time.Now()
		p.setLive(i, w)
		go p.health(w)
		select {
		case <-w.Done():
		case <-p.ctx.Done():
			p.setLive(i, nil)
			w.Shutdown(p.shutdownCtx())
			return
		}
		p.setLive(i, nil)
		if p.ctx.Err() != nil {
			return
		}
		p.crashed(w, started, &backoff)
		w = p.restart(&backoff)
	}
}

func (p *Pool) superviseSpare(w *Worker) {
	defer p.wg.Done()
	backoff := p.cfg.RestartBackoff
	for w != nil {
		started := time.Now()
		go p.health(w)
		select {
		case p.spares <- w:
			backoff = p.cfg.RestartBackoff
			w = p.start(&backoff)
			continue
		case <-w.Done():
			if p.ctx.Err() != nil {
				return
			}
			p.crashed(w, started, &backoff)
			w = p.restart(&backoff)
		case <-p.ctx.Done():
			w.Shutdown(p.shutdownCtx())
			return
		}
	}
}

// start starts a fresh spare at once, falling back to restart's backoff on failure.
func (p *Pool) start(backoff *time.Duration) *Worker {
	w, err := p.startWorker(p.ctx)
	if err == nil {
		return w
	}
	if p.ctx.Err() != nil {
		return nil
	}
	p.log.Error("pyhost: cannot start a spare worker", "err", err)
	return p.restart(backoff)
}

// health pings w until it is gone; PingFailures failures in a row kill it (and the
// supervisor replaces it). A worker nothing waits on (no request unanswered) that
// answered the last ping is not woken: an idle worker makes no wake-ups, and a hung one
// is found once a request of it waits.
func (p *Pool) health(w *Worker) {
	if p.cfg.PingInterval < 0 {
		return
	}
	t := time.NewTicker(p.cfg.PingInterval)
	defer t.Stop()
	failures := 0
	answered := true // the last ping was
	cpu := processCPU(w.Pid())
	for {
		select {
		case <-t.C:
		case <-w.Done():
			return
		}
		if answered && !w.awaited() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.PingTimeout)
		err := w.Ping(ctx)
		cancel()
		if answered = err == nil; answered {
			failures = 0
			cpu = processCPU(w.Pid())
			continue
		}
		if w.Err() != nil {
			return
		}
		// a worker that works (hosted code holding the GIL in a long C call, which
		// keeps the PING from being answered) is busy, not hung: it used CPU since, or
		// a thread of it is running or waiting for a CPU (on a loaded machine a busy
		// worker can go a whole ping without a clock tick of CPU time)
		if now := processCPU(w.Pid()); now > cpu || runnable(w.Pid()) {
			cpu = now
			p.log.Debug("pyhost: worker busy, not answering pings", "worker", w.ID())
			continue
		}
		failures++
		p.log.Warn("pyhost: worker missed a health ping", "worker", w.ID(), "failures", failures, "err", err)
		if failures >= p.cfg.PingFailures {
			w.Kill(fmt.Errorf("%d health pings failed: %w", failures, err))
			return
		}
	}
}

// processCPU is the CPU time a process has used (user + system, clock ticks).
func processCPU(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// fields after the command name, which may hold spaces: state is field 3
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

// runnable reports whether a thread of the process is running or waiting for a CPU
// (state R), as a thread computing is; a hung or stopped one is sleeping (S) or
// stopped (T).
func runnable(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return false
	}
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, t.Name()))
		if err != nil {
			continue
		}
		// the state follows the command name, which may hold spaces and parentheses
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && b[i+2] == 'R' {
			return true
		}
	}
	return false
}

// Open opens a connection in a worker of the pool (see Pool for which one). It waits,
// bounded by ctx, while no worker is live (all restarting) or no spare is ready.
func (p *Pool) Open(ctx context.Context, opts OpenOptions) (*Channel, error) {
	if p.Serving() {
		return nil, ErrNotServing
	}
	var ch *Channel
	w, err := p.onWorker(ctx, func(w *Worker) (err error) {
		ch, err = w.Open(ctx, opts)
		return err
	})
	if err != nil {
		return nil, err
	}
	if p.cfg.Isolation == "connection" {
		ch.mu.Lock()
		ch.onClose = func(*Channel) { go p.retire(w) }
		ch.mu.Unlock()
		if w.Err() != nil { // died before the hook was set: nothing else retires it
			go p.retire(w)
		}
	}
	return ch, nil
}

// onWorker picks a worker (as Open and Hand do) and starts a connection on it with
// start, trying the next one when the picked worker died in between. On any other
// failure a worker picked for that connection alone (isolation "connection") is
// retired.
func (p *Pool) onWorker(ctx context.Context, start func(*Worker) error) (*Worker, error) {
	for {
		w, err := p.pick(ctx)
		if err != nil {
			return nil, err
		}
		err = start(w)
		w.opening.Add(-1) // counted in Load by the connection itself now, or not at all
		if err != nil {
			var we *WorkerExitError
			if errors.As(err, &we) || w.Err() != nil {
				continue // died between pick and start: try the next one
			}
			if p.cfg.Isolation == "connection" {
				p.retire(w)
			}
			return nil, err
		}
		return w, nil
	}
}

func (p *Pool) pick(ctx context.Context) (*Worker, error) {
	if p.cfg.Isolation == "connection" {
		for {
			select {
			case w := <-p.spares:
				if w.Err() != nil {
					continue
				}
				p.mu.Lock()
				if p.closed {
					p.mu.Unlock()
					go w.Shutdown(p.shutdownCtx())
					return nil, ErrHostClosed
				}
				p.inUse[w] = struct{}{}
				w.opening.Add(1)
				p.mu.Unlock()
				return w, nil
			case <-p.ctx.Done():
				return nil, ErrHostClosed
			case <-ctx.Done():
				return nil, fmt.Errorf("pyhost: waiting for a spare worker: %w", ctx.Err())
			}
		}
	}
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrHostClosed
		}
		var best *Worker
		bestLoad := 0
		for _, w := range p.live {
			if w == nil || w.Err() != nil {
				continue
			}
			if l := w.Load(); best == nil || l < bestLoad {
				best, bestLoad = w, l
			}
		}
		if best != nil {
			// counted before the lock is released: a connection opened at the same
			// instant sees this one and picks another worker
			best.opening.Add(1)
		}
		changed := p.changed
		p.mu.Unlock()
		if best != nil {
			return best, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("pyhost: waiting for a live worker: %w", ctx.Err())
		}
	}
}

// retire shuts down a worker whose one connection has closed.
func (p *Pool) retire(w *Worker) {
	w.Shutdown(p.shutdownCtx())
	p.mu.Lock()
	delete(p.inUse, w)
	p.mu.Unlock()
}

// Workers returns the live workers (shared isolation) or the workers serving a
// connection (connection isolation).
func (p *Pool) Workers() []*Worker {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ws []*Worker
	for _, w := range p.live {
		if w != nil {
			ws = append(ws, w)
		}
	}
	for w := range p.inUse {
		ws = append(ws, w)
	}
	return ws
}

// Shutdown stops supervision and shuts every worker down (SHUTDOWN, then SIGKILL when
// ctx is done or after Config.ShutdownTimeout). It returns when every process is
// reaped.
func (p *Pool) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	p.stopCtx = ctx
	inUse := make([]*Worker, 0, len(p.inUse))
	for w := range p.inUse {
		inUse = append(inUse, w)
	}
	p.mu.Unlock()
	p.cancel()
	var wg sync.WaitGroup
	for _, w := range inUse {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.Shutdown(p.shutdownCtx())
		}()
	}
	wg.Wait()
	p.wg.Wait()
	return nil
}
