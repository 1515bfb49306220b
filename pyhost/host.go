package pyhost

import (
	"context"

	"github.com/pybridge/pybridge/bridge"
)

// Host runs Python workers for a Go program: a Pool whose connections are
// bridge.Conns in mode "go".
type Host struct {
	pool *Pool
	cfg  Config
}

// Start starts cfg.Workers workers (default 1, interpreter "python3") and returns
// once all of them are ready. Close it to stop them.
func Start(ctx context.Context, cfg Config) (*Host, error) {
	cfg = cfg.withDefaults()
	p, err := NewPool(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Host{pool: p, cfg: cfg}, nil
}

// Connect opens a connection in mode "go" (a classic root plus lists and dicts by
// value) and returns the RPyC peer on it. Close the Conn when done: the worker then
// drops every object the connection held.
func (h *Host) Connect(ctx context.Context) (*bridge.Conn, error) {
	ch, err := h.pool.Open(ctx, OpenOptions{Mode: "go"})
	if err != nil {
		return nil, err
	}
	return bridge.NewConn(ch, bridge.Config{ByValue: true}), nil
}

// Open opens a raw channel with other options (mode "classic" or "service"), for
// callers that run their own peer or relay on it.
func (h *Host) Open(ctx context.Context, opts OpenOptions) (*Channel, error) {
	return h.pool.Open(ctx, opts)
}

// Pool is the host's worker pool.
func (h *Host) Pool() *Pool { return h.pool }

// Shutdown stops every worker (SHUTDOWN, then SIGKILL when ctx is done) and returns
// when all are reaped. Open connections fail with a *WorkerExitError.
func (h *Host) Shutdown(ctx context.Context) error { return h.pool.Shutdown(ctx) }

// Close is Shutdown bounded by Config.ShutdownTimeout.
func (h *Host) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.ShutdownTimeout)
	defer cancel()
	return h.pool.Shutdown(ctx)
}
