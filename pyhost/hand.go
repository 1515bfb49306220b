package pyhost

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/pybridge/pybridge/pyhost/internal/workerproto"
)

// A serving worker (Config.ServingWorker) reads and writes its clients' sockets
// itself: Go hands it the accepted socket with OPEN and is out of the request path,
// where a Python worker has every message relayed through Go (two more wake-ups and
// copies per message each way). The worker says ENDED when the client's connection has
// ended, which is how Load and connection isolation count it.

// ErrNotServing is returned by Hand on a pool of Python workers (no
// Config.ServingWorker), and by Open on a pool of serving workers.
var ErrNotServing = errors.New("pyhost: hand needs serving workers (Config.ServingWorker), open needs Python workers")

// Serving reports whether the pool's workers serve handed client sockets
// (Config.ServingWorker).
func (p *Pool) Serving() bool { return len(p.cfg.ServingWorker) > 0 }

// Hand passes the client connection c to a worker of the pool (picked as Open picks)
// and closes c here: the worker serves it from then on, and Hand returns once the
// worker has the socket. c must be a socket (a *net.TCPConn or *net.UnixConn). It
// waits, bounded by ctx, while no worker is live (all restarting) or no spare is ready.
func (p *Pool) Hand(ctx context.Context, c net.Conn) (*Worker, error) {
	if !p.Serving() {
		return nil, ErrNotServing
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("pyhost: hand: %T is no socket", c)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("pyhost: hand: %w", err)
	}
	w, err := p.onWorker(ctx, func(w *Worker) error {
		var ended func()
		if p.cfg.Isolation == "connection" {
			ended = func() { go p.retire(w) }
		}
		var herr error
		if cerr := raw.Control(func(fd uintptr) { herr = w.hand(int(fd), ended) }); cerr != nil {
			return cerr
		}
		return herr
	})
	if err != nil {
		return nil, err
	}
	c.Close() // the worker has its own copy of the socket
	if p.cfg.Isolation == "connection" && w.Err() != nil {
		go p.retire(w) // died before its end was counted: nothing else retires it
	}
	return w, nil
}

// hand sends OPEN with the client's socket fd attached; ended runs when the worker
// says ENDED for it (not when the worker dies).
func (w *Worker) hand(fd int, ended func()) error {
	w.mu.Lock()
	if w.exitErr != nil {
		w.mu.Unlock()
		return w.exitErr
	}
	if w.shutdown {
		w.mu.Unlock()
		return fmt.Errorf("pyhost: worker %d is shutting down: %w", w.id, ErrHostClosed)
	}
	w.nextConn++
	id := w.nextConn
	w.handed[id] = ended
	w.mu.Unlock()
	err := w.sendFD(workerproto.Frame{Kind: workerproto.KindOpen, Conn: id, Body: map[string]any{"client": true}}, fd)
	if err != nil {
		w.mu.Lock()
		delete(w.handed, id)
		w.mu.Unlock()
	}
	return err
}
