package pyhost

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/pybridge/pybridge/bridge"
)

// Host runs Python for a Go program: a Pool of workers whose connections are
// bridge.Conns in mode "go", or, with Config.Isolation "embedded", the interpreter
// inside this process.
type Host struct {
	pool *Pool
	emb  *Embedded
	cfg  Config

	mu     sync.Mutex
	closed bool
	conns  map[*bridge.Conn]struct{} // embedded: open connections, closed with the host
}

// Start starts cfg.Workers workers (default 1, interpreter "python3") and returns
// once all of them are ready; with Isolation "embedded" it loads the interpreter into
// this process instead (StartEmbedded). Close it to stop them.
func Start(ctx context.Context, cfg Config) (*Host, error) {
	cfg = cfg.withDefaults()
	if cfg.Isolation == IsolationEmbedded {
		e, err := StartEmbedded(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return &Host{emb: e, cfg: cfg, conns: map[*bridge.Conn]struct{}{}}, nil
	}
	if len(cfg.ServingWorker) > 0 {
		return nil, fmt.Errorf("pyhost: Start: %w (a Host's connections are Go's own: Config.ServingWorker is for pools that serve clients)", ErrNotServing)
	}
	p, err := NewPool(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Host{pool: p, cfg: cfg}, nil
}

// Connect opens a connection in mode "go" (a classic root plus lists and dicts by
// value) and returns the RPyC peer on it. Close the Conn when done: the worker then
// drops every object the connection held. In embedded isolation each request runs on
// the calling goroutine through the C API, and a Ref holds the Python object itself.
func (h *Host) Connect(ctx context.Context) (*bridge.Conn, error) {
	if h.emb != nil {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.closed {
			return nil, ErrHostClosed
		}
		c, err := h.emb.Connect(ctx)
		if err != nil {
			return nil, err
		}
		h.conns[c] = struct{}{}
		go func() {
			<-c.Done()
			h.mu.Lock()
			delete(h.conns, c)
			h.mu.Unlock()
		}()
		return c, nil
	}
	ch, err := h.pool.Open(ctx, OpenOptions{Mode: "go"})
	if err != nil {
		return nil, err
	}
	return bridge.NewConn(ch, bridge.Config{ByValue: true, Logger: h.cfg.Logger}), nil
}

// Open opens a raw channel with other options (mode "classic" or "service"), for
// callers that run their own peer or relay on it. Spawned isolations only.
func (h *Host) Open(ctx context.Context, opts OpenOptions) (*Channel, error) {
	if h.pool == nil {
		return nil, errors.New("pyhost: Open needs a spawned isolation (embedded connections are bridge.Conns: use Connect)")
	}
	return h.pool.Open(ctx, opts)
}

// Pool is the host's worker pool (nil in embedded isolation).
func (h *Host) Pool() *Pool { return h.pool }

// Embedded is the host's interpreter in embedded isolation (else nil).
func (h *Host) Embedded() *Embedded { return h.emb }

// Shutdown stops every worker (SHUTDOWN, then SIGKILL when ctx is done) and returns
// when all are reaped. Open connections fail with a *WorkerExitError. In embedded
// isolation it closes the host's connections; the interpreter stays loaded (a process
// cannot unload Python), ready for another host on the same interpreter.
func (h *Host) Shutdown(ctx context.Context) error {
	if h.emb != nil {
		h.mu.Lock()
		h.closed = true
		conns := make([]*bridge.Conn, 0, len(h.conns))
		for c := range h.conns {
			conns = append(conns, c)
		}
		h.mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
		return nil
	}
	return h.pool.Shutdown(ctx)
}

// Close is Shutdown bounded by Config.ShutdownTimeout.
func (h *Host) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.ShutdownTimeout)
	defer cancel()
	return h.Shutdown(ctx)
}
