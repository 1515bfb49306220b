package bridge

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/pybridge/pybridge/bridge/wire"
	"github.com/pybridge/pybridge/internal/sched"
)

// InputWaiter is a MessageStream whose input can be waited for without reading it, and
// whose wait can be interrupted (a worker's channel, pyhost.Channel). A Conn over one
// lets the goroutine that waits for a reply read the stream itself.
type InputWaiter interface {
	// WaitInput returns when a message (or the stream's end) can be read, or when
	// Interrupt is called (interrupted); an Interrupt that came while nobody waited
	// ends the next wait at once.
	WaitInput() (interrupted bool, err error)
	Interrupt()
}

// idleGrace is how long a Conn's stream goes unread once no call waits for a reply,
// before its background reader takes over: within it, the next call reads its own
// reply; a request of the peer's (Python calling a Go func) waits at most this long
// while Go calls nothing.
const idleGrace = time.Millisecond

// readRole is who reads a Conn's stream (leader/follower). A reader goroutine of its
// own would cost every reply two thread wake-ups: the reader's, then the caller's it
// hands the reply to. Here the caller waiting for a reply reads the stream itself, so
// the reply wakes the caller's own thread. One goroutine at a time holds the role; it
// routes every message it reads as a reader goroutine would (the peer's requests to
// goroutines of their own, replies to their callers) until its own reply comes, then
// hands the role to the next caller waiting for one. While no call waits, the
// background reader takes the role after idleGrace (and keeps it until a caller comes
// and a message is read: a caller that comes while it reads gets its reply from it).
type readRole struct {
	w InputWaiter

	mu      sync.Mutex
	held    bool            // by a caller or the background reader
	callers int             // goroutines waiting for a reply
	queue   []chan struct{} // callers waiting for the role, in order; signalled when it is handed to them
	idle    *time.Timer     // idleGrace after the last caller: the background reader's turn
	wake    chan struct{}   // the background reader's turn may have come

	yield sched.Yielder // used by whoever holds the role (see sched)
}

func newReadRole(w InputWaiter) *readRole {
	r := &readRole{w: w, wake: make(chan struct{}, 1)}
	r.idle = time.AfterFunc(time.Hour, r.poke)
	r.idle.Stop()
	r.poke() // nobody calls yet
	return r
}

func (r *readRole) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// enter and exit bracket a caller's wait for its reply.
func (r *readRole) enter() {
	r.mu.Lock()
	r.callers++
	if r.callers == 1 {
		r.idle.Stop()
	}
	r.mu.Unlock()
}

func (r *readRole) exit() {
	r.mu.Lock()
	r.callers--
	if r.callers == 0 && !r.held {
		r.idle.Reset(idleGrace)
	}
	r.mu.Unlock()
}

// take gives a caller the role (nil) or queues it: the channel returned is signalled
// once the role is handed to it.
func (r *readRole) take() (turn chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.held {
		r.held = true
		return nil
	}
	turn = make(chan struct{}, 1)
	r.queue = append(r.queue, turn)
	return turn
}

// leave takes a queued caller that stops waiting out of the queue; if the role was
// handed to it meanwhile, it hands the role on.
func (r *readRole) leave(turn chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i := slices.Index(r.queue, turn); i >= 0 {
		r.queue = slices.Delete(r.queue, i, i+1)
		return
	}
	r.releaseLocked()
}

// release hands the role to the first queued caller, else lets it go.
func (r *readRole) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.releaseLocked()
}

func (r *readRole) releaseLocked() {
	if len(r.queue) > 0 {
		turn := r.queue[0]
		r.queue = slices.Delete(r.queue, 0, 1)
		turn <- struct{}{} // held still: by that caller now
		return
	}
	r.held = false
	if r.callers == 0 {
		r.idle.Reset(idleGrace)
	}
}

// takeIdle gives the background reader the role if nobody holds it and no call waits.
func (r *readRole) takeIdle() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held || r.callers > 0 {
		return false
	}
	r.held = true
	return true
}

// yieldToCallers: the background reader lets the role go if a call waits.
func (r *readRole) yieldToCallers() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.callers == 0 {
		return false
	}
	r.releaseLocked()
	return true
}

// backgroundReader reads the stream while no call does.
func (c *Conn) backgroundReader() {
	r := c.role
	for {
		select {
		case <-r.wake:
		case <-c.done:
			r.idle.Stop()
			return
		}
		if !r.takeIdle() {
			continue
		}
		for {
			r.yield.Tick()
			m, err := c.stream.ReadMessage()
			if !c.route(m, err) {
				r.release()
				return
			}
			if r.yieldToCallers() {
				break
			}
		}
	}
}

// waitReading is Wait on a Conn with a read role: the caller reads the stream itself
// when the role is free, else waits for its reply or its turn.
func (a *AsyncResult) waitReading(ctx context.Context) (any, error) {
	c := a.conn
	r := c.role
	r.enter()
	defer r.exit()
	select {
	case m := <-a.ch:
		return c.result(m)
	default:
	}
	if turn := r.take(); turn != nil {
		select {
		case m := <-a.ch:
			r.leave(turn)
			return c.result(m)
		case <-turn:
		case <-ctx.Done():
			r.leave(turn)
			return a.gaveUp(ctx)
		case <-c.done:
			r.leave(turn)
			return nil, c.err
		}
	}
	m, err := c.readUntil(ctx, a.ch)
	r.release()
	switch {
	case err == nil:
		return c.result(m)
	case ctx.Err() != nil && err == ctx.Err():
		return a.gaveUp(ctx)
	}
	return nil, err
}

// readUntil reads and routes messages, holding the role, until a reply comes on ch, ctx
// ends (its error) or the connection does (why).
func (c *Conn) readUntil(ctx context.Context, ch chan wire.Message) (wire.Message, error) {
	r := c.role
	// a ctx that can end is watched by waiting for input in WaitInput, which it can
	// interrupt; with one that cannot, ReadMessage waits (one system call less)
	cancellable := ctx.Done() != nil
	if cancellable {
		stop := context.AfterFunc(ctx, r.w.Interrupt)
		defer stop()
	}
	for {
		select {
		case m := <-ch:
			return m, nil
		case <-c.done:
			return wire.Message{}, c.err
		default:
		}
		if err := ctx.Err(); err != nil {
			return wire.Message{}, err
		}
		r.yield.Tick()
		var m wire.Message
		var err error
		if cancellable {
			var interrupted bool
			if interrupted, err = r.w.WaitInput(); err == nil && interrupted {
				continue
			}
		}
		if err == nil {
			m, err = c.stream.ReadMessage()
		}
		if !c.route(m, err) {
			<-c.done
			return wire.Message{}, c.err
		}
	}
}
