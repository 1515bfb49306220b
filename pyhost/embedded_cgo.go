//go:build cgo

package pyhost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pybridge/pybridge/bridge/brine"
	"github.com/pybridge/pybridge/bridge/wire"
	"github.com/pybridge/pybridge/internal/sched"
	"github.com/pybridge/pybridge/pyhost/internal/cpython"
)

// Embedded is the CPython interpreter inside this process: isolation "embedded". It
// runs the same Python peer as a worker, with the same semantics, without a process
// hop: Go reads a client's frames and hands each message to Python as Python values on
// the connection's own thread.
//
// One process embeds one interpreter, for its whole life. A crash in hosted code (a
// segfault, os._exit) ends the process, as it ends rpyc's own server; the spawned
// isolations are the choice for crash isolation and for Python on several cores.
type Embedded struct {
	info    cpython.Info
	log     *slog.Logger
	serveFn cpython.Object // pybridge.embedded.serve

	helpersOnce sync.Once
	helpers     pyHelpers
	helpersErr  error

	typesMu sync.Mutex
	types   map[uintptr]bool // type address -> controls attribute access

	probeOnce sync.Once
	probe     *cpython.GILProbe // Responsive
	probeErr  error
}

var embeddedInterp struct {
	mu sync.Mutex
	e  *Embedded
}

// As for a worker (python -m pybridge.worker): the working directory first on
// sys.path, then the pybridge package.
const embeddedSetup = `
import os, sys
sys.argv = [""]
sys.path[0:0] = [os.getcwd(), %q]
import pybridge.embedded
`

// StartEmbedded loads the shared library of cfg.Python (found with that interpreter's
// own sysconfig) into this process and initialises it as that interpreter: its
// sys.executable, sys.prefix and site-packages, a venv's included. The first call
// starts Python; later calls with the same interpreter return it, and any other
// interpreter is refused. Python installs no signal handlers. Config.Env, Dir,
// PythonArgs, Workers and MemoryLimit do not apply: Python shares this process.
func StartEmbedded(ctx context.Context, cfg Config) (*Embedded, error) {
	cfg = cfg.withDefaults()
	startErr := func(err error) error { return &StartError{Python: cfg.Python, Err: err, Embedded: true} }
	info, err := cpython.Probe(ctx, cfg.Python)
	if err != nil {
		return nil, startErr(err)
	}
	embeddedInterp.mu.Lock()
	defer embeddedInterp.mu.Unlock()
	if e := embeddedInterp.e; e != nil {
		if e.info.Executable != info.Executable {
			return nil, startErr(&cpython.SecondInterpreterError{Running: e.info.Executable, Asked: info.Executable})
		}
		return e, nil
	}
	if err := info.Check(); err != nil {
		return nil, startErr(fmt.Errorf("%w: %w", ErrCannotEmbed, err))
	}
	pkgDir := cfg.PackageDir
	if pkgDir == "" {
		if pkgDir, err = embeddedPackageDir(); err != nil {
			return nil, startErr(err)
		}
	}
	slow := time.AfterFunc(slowStart, func() {
		cfg.Logger.Info("pyhost: Python is slow to start (site-packages, .pth files); waiting for it", "python", info.Executable)
	})
	_, err = cpython.Start(info, fmt.Sprintf(embeddedSetup, pkgDir))
	slow.Stop()
	if err != nil {
		return nil, startErr(err)
	}
	e := &Embedded{info: info, log: cfg.Logger}
	cpython.Enter()
	defer cpython.Leave()
	mod, err := cpython.Import("pybridge.embedded")
	if err == nil {
		e.serveFn, err = mod.Attr("serve")
		mod.DecRef()
	}
	if err != nil {
		return nil, startErr(err)
	}
	embeddedInterp.e = e
	cfg.Logger.Debug("pyhost: embedded interpreter started", "python", info.Version, "executable", info.Executable, "library", info.Library)
	return e, nil
}

// Python is the embedded interpreter's version, e.g. "3.11.7".
func (e *Embedded) Python() string { return e.info.Version }

// Executable is the interpreter's sys.executable.
func (e *Embedded) Executable() string { return e.info.Executable }

// Library is the path of the libpython the process loaded.
func (e *Embedded) Library() string { return e.info.Library }

// Serve runs one RPyC connection over t until it ends, on the calling goroutine, which
// stays pinned to its OS thread (the connection's thread, as under rpyc's
// ThreadedServer) meanwhile; the GIL is released whenever that thread is in Go (socket
// I/O, framing, brine). It returns nil when the peer went away cleanly (io.EOF), else
// why the connection ended. When ctx ends, t is closed and the connection ends.
func (e *Embedded) Serve(ctx context.Context, t Transport, opts OpenOptions) error {
	c := &embeddedConn{t: t, dec: cpython.Decoder{Lists: opts.Mode == "go", Types: true}}
	if ls, ok := t.(loadingStream); ok && opts.Mode != "go" {
		c.loading, c.brine = ls, &cpython.Brine{}
		c.loader = c.loadBody
	}
	stop := context.AfterFunc(ctx, func() {
		c.fail(ctx.Err())
		t.Close()
	})
	defer stop()

	defer sched.Outside()()
	cpython.Enter()
	defer cpython.Leave()
	if c.brine != nil {
		defer c.brine.Close()
	}
	var err error
	if cs, ok := t.(channelStream); ok && c.loading != nil {
		// frames on a blocking socket: read and written in C on this thread (the
		// descriptor kept open meanwhile)
		if cs.HoldFd(func(fd int) { err = e.serve(c, opts, cs, fd) }) {
			return err
		}
	}
	return e.serve(c, opts, nil, -1)
}

// serve runs the connection in Python, with a C channel on fd when cs is set.
func (e *Embedded) serve(c *embeddedConn, opts OpenOptions, cs channelStream, fd int) error {
	var objs []cpython.Object // dropped at the end
	defer func() {
		for _, o := range objs {
			o.DecRef()
		}
	}()
	for _, fn := range []cpython.Func{c.recv, c.send, c.close, c.sendRecv} {
		o, err := cpython.NewFunc(fn)
		if err != nil {
			return err
		}
		objs = append(objs, o)
	}
	args := append([]cpython.Object(nil), objs...)
	var serveInCArg cpython.Object // the channel's serve_in_c, if any
	if cs != nil {
		awaiting, serving := cs.Counters()
		// without a channel (no memory for one) Go serves the connection alone
		if ch, sendRecv, err := cpython.NewChannel(fd, awaiting, serving, objs[3], objs[0]); err == nil {
			objs, args[3] = append(objs, sendRecv), sendRecv
			c.ch, c.cs = ch, cs
			cs.SetWriteLock(ch)
			defer c.releaseChannel()
			c.handOver()
			if serveInC, err := ch.ServeInC(); err == nil {
				objs, serveInCArg = append(objs, serveInC), serveInC
			}
		}
	}
	o, err := c.enc.Object(openBody(opts))
	if err != nil {
		return err
	}
	objs = append(objs, o)
	args = append(args, o) // serve(recv, send, close, send_recv, opts[, serve_in_c])
	if !serveInCArg.IsNil() {
		args = append(args, serveInCArg)
	}
	r, err := e.serveFn.Call(args, cpython.Object{})
	if err != nil {
		return fmt.Errorf("pyhost: embedded connection: %w", takeException(err))
	}
	r.DecRef()
	c.t.Close()
	return c.result()
}

// takeException turns a Python exception into a plain error (dropping its references).
func takeException(err error) error {
	var exc *cpython.Exception
	if errors.As(err, &exc) {
		exc.Release()
		return errors.New(exc.Error())
	}
	return err
}

// embeddedConn is the Go half of one embedded connection's transport: the functions
// Python calls to receive, send and close.
type embeddedConn struct {
	t   Transport
	enc cpython.Encoder
	dec cpython.Decoder

	// a stream that hands over encoded bodies: brine goes straight between bytes and
	// Python objects (cpython.Brine), the Encoder and Decoder serve what it refuses
	loading loadingStream
	brine   *cpython.Brine

	mu  sync.Mutex
	err error // why the connection ended, first reason wins

	// the connection's goroutine lives in one long call into Python (see sched)
	yield sched.Yielder

	// frames on a blocking socket read and written in C by the connection's thread
	// (Python's send_recv), taking turns with Go's reads of cs; nil: Go only
	chMu     sync.Mutex // over ch between Go's turns and the channel's release
	ch       *cpython.Channel
	cs       channelStream
	observed bool // the stream's observer sees the channel's messages

	// recv's state: the GIL released for the read, and whether loadBody took it back
	recvTS   cpython.ThreadState
	recvHeld bool
	loader   wire.BodyLoader // c.loadBody, bound once
}

func (c *embeddedConn) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
}

func (c *embeddedConn) result() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil || errors.Is(c.err, io.EOF) || errors.Is(c.err, errClosedHere) {
		return nil
	}
	return c.err
}

var errClosedHere = errors.New("closed by the Python side")

// recv(timeout) -> (kind, seq, body) | None; EOFError once the peer is gone. Python
// calls it from one thread at a time (the connection's receive lock).
func (c *embeddedConn) recv(args cpython.Object) (cpython.Object, error) {
	wait := cpython.SecondsArg(args)
	c.recvTS, c.recvHeld = cpython.Release(), false
	return c.receive(wait)
}

// send_recv(kind, seq, body) -> (kind, seq, body): send, then recv(None), with the GIL
// released once for both. The connection's thread sends a request's reply this way
// and waits for the next message (pybridge.protocol's serve loop): one call from
// Python and one GIL hand-off per request less, where threads of several connections
// contend for it. A reply that cannot be encoded raises TypeError and nothing is read.
func (c *embeddedConn) sendRecv(args cpython.Object) (cpython.Object, error) {
	if c.brine != nil {
		var werr error
		dumped, _ := c.brine.Dump(args, func(kind, seq int64, body []byte) error {
			c.recvTS, c.recvHeld = cpython.Release(), false
			werr = c.t.WriteMessage(wire.Message{Type: wire.MsgType(kind), Seq: seq, Body: brine.Raw(body)})
			return werr
		})
		if dumped {
			if werr != nil {
				c.recvTS.Reacquire()
				return c.sent(werr)
			}
			return c.receive(-1)
		}
	}
	if _, err := c.sendValues(args); err != nil {
		return cpython.Object{}, err
	}
	c.recvTS, c.recvHeld = cpython.Release(), false
	return c.receive(-1)
}

// receive is recv once the GIL is released (c.recvTS): the next message, waiting up to
// wait (less than 0: for ever).
func (c *embeddedConn) receive(wait time.Duration) (cpython.Object, error) {
	var err error
	c.yield.Tick()
	if c.takeBack() {
		defer c.handOver()
	}
	ready := true
	var m wire.Message
	for {
		if wait >= 0 {
			ready, err = c.t.WaitMessage(wait)
		}
		if ready && err == nil {
			if c.loading != nil {
				m, err = c.loading.ReadMessageLoading(c.loader)
			} else {
				m, err = c.t.ReadMessage()
			}
		}
		if err == nil {
			break
		}
		// a message over a value limit fails alone: the request's EXCEPTION goes back
		// to the client, a reply over the limit reaches Python as an EXCEPTION
		ol := overLimit(err)
		if ol == nil {
			break
		}
		failed := ol.Reply()
		if ol.Type != wire.MsgRequest {
			m, err = failed, nil
			break
		}
		if c.recvHeld {
			c.recvTS, c.recvHeld = cpython.Release(), false
		}
		if err = c.t.WriteMessage(failed); err != nil {
			break
		}
	}
	if !c.recvHeld {
		c.recvTS.Reacquire()
	}
	if err != nil {
		c.fail(err)
		return cpython.Object{}, &cpython.Raise{Class: "EOFError", Msg: err.Error()}
	}
	if !ready {
		return cpython.None(), nil
	}
	var o cpython.Object
	if body, ok := m.Body.(cpython.Object); ok {
		o, err = c.brine.Message(int64(m.Type), m.Seq, body)
	} else {
		o, err = c.enc.Object(brine.Tuple{int64(m.Type), m.Seq, m.Body})
	}
	if err != nil {
		// a message the limits let through that Python cannot take (an int over the
		// digits hosted code set with sys.set_int_max_str_digits): the connection ends,
		// as a malformed one does, and nothing but EOFError comes from the receiving
		// half (send_recv's caller tells a reply that could not be sent by its class)
		err = fmt.Errorf("pyhost: %v %d cannot be made Python objects: %w", m.Type, m.Seq, takeException(err))
		c.fail(err)
		return cpython.Object{}, &cpython.Raise{Class: "EOFError", Msg: err.Error()}
	}
	return o, nil
}

// takeBack starts a turn of Go's reading: the bytes the C channel read and did not use
// are the stream's again. false: there is no channel (any more).
func (c *embeddedConn) takeBack() bool {
	c.chMu.Lock()
	defer c.chMu.Unlock()
	if c.ch == nil {
		return false
	}
	c.cs.TakeBack(c.ch.Take())
	return true
}

// releaseChannel lets the C channel go once the serve loop returned: a thread of hosted
// code may still receive (Go alone, from now on).
func (c *embeddedConn) releaseChannel() {
	c.chMu.Lock()
	defer c.chMu.Unlock()
	c.cs.SetWriteLock(nil)
	c.ch.Release()
	c.ch = nil
}

// handOver ends a turn of Go's reading: the bytes it read ahead go to the C channel,
// with how to read and write the messages.
func (c *embeddedConn) handOver() {
	c.chMu.Lock()
	defer c.chMu.Unlock()
	if c.ch == nil {
		return
	}
	h := c.cs.HandOver()
	layout := 0
	switch h.Dialect {
	case wire.Dialect5:
		layout = 5
	case wire.Dialect6, wire.DialectNG:
		layout = 6
	}
	if !c.ch.Give(h.Buffered) {
		c.cs.TakeBack(h.Buffered)
		layout = 0
	}
	if obs := h.Observer; obs != nil && !c.observed {
		// the channel's messages shown to the stream's observer (metrics) as the stream
		// shows its own
		c.observed = true
		c.ch.SetObserver(func(sent bool, kind, seq int64, handler, frameBytes int) {
			if sent {
				c.yield.Tick() // in Go again (see sched); the GIL is released here
				obs.Sent(wire.MsgType(kind), seq, frameBytes)
			} else {
				obs.Received(wire.MsgType(kind), seq, wire.ValidHandler(handler), frameBytes)
			}
		})
	}
	c.ch.Set(layout, h.Threshold, h.Limits.MaxFrame, h.Limits.Value)
}

// loadBody is recv's wire.BodyLoader: it takes the GIL back (if recv has not yet) and
// makes the body Python objects at once.
func (c *embeddedConn) loadBody(body []byte, lim brine.Limits) (any, bool) {
	if !c.recvHeld {
		c.recvTS.Reacquire()
		c.recvHeld = true
	}
	return c.brine.Load(body, lim)
}

func overLimit(err error) *wire.OverLimitError {
	var ol *wire.OverLimitError
	if errors.As(err, &ol) {
		return ol
	}
	return nil
}

// send(kind, seq, body)
func (c *embeddedConn) send(args cpython.Object) (cpython.Object, error) {
	if c.brine != nil {
		dumped, werr := c.brine.Dump(args, func(kind, seq int64, body []byte) error {
			ts := cpython.Release()
			err := c.t.WriteMessage(wire.Message{Type: wire.MsgType(kind), Seq: seq, Body: brine.Raw(body)})
			ts.Reacquire()
			return err
		})
		if dumped {
			return c.sent(werr)
		}
	}
	return c.sendValues(args)
}

// sendValues is send for a message brine.c refused to dump: through Go values, which
// decide (and report what brine cannot carry).
func (c *embeddedConn) sendValues(args cpython.Object) (cpython.Object, error) {
	a, err := c.dec.Value(args)
	if err != nil {
		return cpython.Object{}, err
	}
	t, _ := a.(brine.Tuple)
	if len(t) != 3 {
		return cpython.Object{}, &cpython.Raise{Class: "TypeError", Msg: "send(kind, seq, body)"}
	}
	kind, _ := t[0].(int64)
	seq, _ := t[1].(int64)
	ts := cpython.Release()
	err = c.t.WriteMessage(wire.Message{Type: wire.MsgType(kind), Seq: seq, Body: t[2]})
	ts.Reacquire()
	return c.sent(err)
}

// sent is send's result once the message is written (or not).
func (c *embeddedConn) sent(err error) (cpython.Object, error) {
	if err != nil {
		var ute *brine.UnsupportedTypeError
		if errors.As(err, &ute) {
			return cpython.Object{}, &cpython.Raise{Class: "TypeError", Msg: err.Error()}
		}
		c.fail(err)
		return cpython.Object{}, &cpython.Raise{Class: "EOFError", Msg: err.Error()}
	}
	return cpython.Object{}, nil
}

// close(reason): the connection ended at the Python side.
func (c *embeddedConn) close(args cpython.Object) (cpython.Object, error) {
	c.fail(errClosedHere)
	ts := cpython.Release()
	c.t.Close()
	ts.Reacquire()
	return cpython.Object{}, nil
}

// loadingStream is a Transport that hands over message bodies still encoded
// (*wire.FrameStream).
type loadingStream interface {
	ReadMessageLoading(wire.BodyLoader) (wire.Message, error)
}

// channelStream is a Transport whose frames a C channel may read and write in turns
// with it, on a blocking socket (*wire.FrameStream; see wire.Handover).
type channelStream interface {
	HoldFd(f func(fd int)) bool
	HandOver() wire.Handover
	TakeBack(b []byte)
	Counters() (awaiting, serving *atomic.Int32)
	SetWriteLock(l sync.Locker)
}

// Responsive takes the GIL and gives it back (a serving worker's answer to a PING):
// nil once it could, or ctx's error while hosted code holds the GIL (a C call that
// does not release it, or a hang).
//
// The GIL is taken by a thread of its own, not Go's (cpython.GILProbe): a probe wakes
// that thread and nothing else, where taking it from Go would keep Go's runtime awake
// for a second (sched.Busy), and a probe of an idle server would cost ~60 wake-ups.
func (e *Embedded) Responsive(ctx context.Context) error {
	e.probeOnce.Do(func() { e.probe, e.probeErr = cpython.StartGILProbe() })
	if e.probeErr != nil {
		return e.probeErr
	}
	return e.probe.Probe(ctx)
}

// CanEmbed reports whether the interpreter python could be embedded (its shared
// library found and loadable) without starting it: nil, or an error that wraps
// ErrCannotEmbed.
func CanEmbed(ctx context.Context, python string) error {
	info, err := cpython.Probe(ctx, python)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCannotEmbed, err)
	}
	if err := info.Check(); err != nil {
		return fmt.Errorf("%w: %w", ErrCannotEmbed, err)
	}
	return nil
}
