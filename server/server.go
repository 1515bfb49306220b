// Package server serves rpyc clients from pybridge workers: the body of `pybridge serve`.
//
// For each client connection the server opens a connection in a worker of its pool
// (so a service's on_connect runs at connect time, as under rpyc's ThreadedServer),
// learns the client's dialect (rpyc 5.x or 6.x) from its first frame, and relays
// messages 1:1 between the two (bridge.Relay) until either side ends. The Go process
// executes no Python: every request is answered by the worker. With serving workers
// (pyhost.Config.ServingWorker) it hands the accepted socket itself to a worker
// (pyhost.Pool.Hand), which serves it as Config.Embedded does here; a serving worker
// runs this package too, accepting from a pyhost.HandedListener.
//
// rpyc-ng 7.x clients frame as 6.x clients do and their first frame is the same; the
// Python peer answers it in a form every version reads (an id_pack of four items) and
// learns the protocol from the client's next messages, as the client stream does for
// compression (wire.SpotNG).
//
// A worker may speak before the client does (a service whose on_connect calls the
// client's root). Its frames wait for the client's first frame to tell the dialect; if
// the client stays silent for Config.HoldTimeout after that, the default dialect
// (Config.Default, rpyc 6.x unless set) applies, and a client that then speaks the other
// layout is disconnected with an error rather than misread. A client that connects and
// says nothing for a while, while the server has nothing to say either, is fine.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pybridge/pybridge/bridge"
	"github.com/pybridge/pybridge/bridge/wire"
	"github.com/pybridge/pybridge/pyhost"
	"github.com/pybridge/pybridge/server/metrics"
)

func init() {
	wire.OnLargeFrame = func(int) { releaseMemorySoon() }
}

var releasing atomic.Bool

// releaseMemorySoon gives memory back to the OS a moment after a very large frame,
// once its buffers are garbage: a burst of huge messages does not keep the server's
// RSS up (the GC percent pybridge serve runs with would otherwise hold it for long).
func releaseMemorySoon() {
	if releasing.Swap(true) {
		return
	}
	time.AfterFunc(200*time.Millisecond, func() {
		releasing.Store(false)
		debug.FreeOSMemory()
	})
}

// Config configures a Server. One of Pool and Embedded is required.
type Config struct {
	// Pool hosts the connections in spawned workers.
	Pool *pyhost.Pool
	// Embedded hosts them in this process's interpreter (isolation "embedded").
	Embedded *pyhost.Embedded
	// TLS, when set, is the TLS server configuration every accepted connection uses.
	TLS *tls.Config
	// Open says what each connection serves (Mode, Service, Config); Peer, Local and
	// Dialect are filled in per connection.
	Open pyhost.OpenOptions
	// Dialect forces one message layout for every client; nil detects it per
	// connection from the first frame.
	Dialect wire.Dialect
	// Default is the layout used when a client stays silent for HoldTimeout while its
	// worker has something to say (default wire.Dialect6).
	Default wire.Dialect
	// HoldTimeout bounds how long a worker's frames written before the client spoke
	// wait for the client's first frame (default 2s).
	HoldTimeout time.Duration
	// Limits bound every client's frames and values (default wire.DefaultLimits()).
	Limits *wire.Limits
	// Logger gets connection events (default slog.Default()).
	Logger *slog.Logger
	// ShutdownGrace is how long Serve, once its ctx ends, lets connections finish the
	// requests they are serving (default 10s); idle ones are closed at once.
	ShutdownGrace time.Duration
	// OneShot serves the first connection only, and Serve returns when it ends
	// (rpyc's OneShotServer, rpyc_classic --mode oneshot).
	OneShot bool
	// Metrics, when set, count every client connection (package server/metrics); a
	// connection handed to a serving worker is counted there, not here.
	Metrics *metrics.Metrics
	// Ended, when set, is called with each connection Serve accepted once it has ended
	// (a serving worker reports it to its pool: pyhost.HandedListener.Ended).
	Ended func(net.Conn)
}

// Server relays rpyc clients to workers.
type Server struct {
	cfg    Config
	limits wire.Limits
	log    *slog.Logger
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[*wire.FrameStream]struct{} // open client connections (Serve)

	stopping atomic.Bool // Serve is closing its connections: how they end is no news
}

// New returns a server for cfg.
func New(cfg Config) *Server {
	s := &Server{cfg: cfg, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	if cfg.Limits != nil {
		s.limits = *cfg.Limits
	} else {
		s.limits = wire.DefaultLimits()
	}
	if s.cfg.Default == nil {
		s.cfg.Default = wire.Dialect6
	}
	if s.cfg.HoldTimeout <= 0 {
		s.cfg.HoldTimeout = 2 * time.Second
	}
	if s.cfg.ShutdownGrace <= 0 {
		s.cfg.ShutdownGrace = 10 * time.Second
	}
	s.conns = map[*wire.FrameStream]struct{}{}
	return s
}

// Serve accepts connections on ln until ctx ends or ln fails, serving each on its own
// goroutine. When ctx ends it closes ln and every connection and waits for them.
//
// When ctx ends, Serve stops accepting, closes the connections that are idle, lets the
// others finish the requests they are serving for up to Config.ShutdownGrace (closing
// each as it becomes idle), then closes what is left and returns once every connection
// has ended.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	// connections outlive ctx until drained
	connCtx, endConns := context.WithCancel(context.Background())
	defer func() {
		s.stopping.Store(true)
		s.drain()
		endConns()
		s.wg.Wait()
	}()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !temporaryAcceptError(err) {
				return fmt.Errorf("accept: %w", err)
			}
			// out of descriptors (or a connection aborted before it was accepted): wait
			// and try again, as net/http does; connections that end free descriptors
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			if backoff == time.Second || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				s.log.Warn("accept failed; retrying", "err", err, "in", backoff)
			}
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		backoff = 0
		if s.cfg.OneShot {
			ln.Close()
			s.serveAccepted(connCtx, c)
			return nil
		}
		if s.cfg.Pool != nil && s.cfg.Pool.Serving() {
			s.hand(connCtx, c)
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveAccepted(connCtx, c)
		}()
	}
}

// serveAccepted serves a connection the listener accepted: a socket in blocking mode
// (read on the connection's own thread), behind TLS when configured.
func (s *Server) serveAccepted(ctx context.Context, c net.Conn) {
	accepted := c
	peer := c.RemoteAddr().String()
	c = toBlocking(c)
	if s.cfg.TLS != nil {
		c = tls.Server(c, s.cfg.TLS)
	}
	if err := s.ServeConn(ctx, c, peer); err != nil {
		if s.stopping.Load() {
			// closed by the shutdown (drain logs those it closed while busy)
			s.log.Debug("connection closed by the shutdown", "peer", peer, "err", err)
		} else {
			s.log.Warn("connection ended", "peer", peer, "err", err)
		}
	}
	if s.cfg.Ended != nil {
		s.cfg.Ended(accepted)
	}
}

// hand passes an accepted connection to a serving worker of the pool, which serves it
// from then on (TLS included), on a goroutine of its own: waiting for a live worker
// (all restarting) or a spare must not hold up the accept loop.
func (s *Server) hand(ctx context.Context, c net.Conn) {
	peer := c.RemoteAddr().String()
	handOne := func() {
		w, err := s.cfg.Pool.Hand(ctx, c)
		if err != nil {
			c.Close()
			s.log.Warn("cannot hand the connection to a worker", "peer", peer, "err", err)
			return
		}
		s.log.Debug("connection handed", "peer", peer, "worker", w.ID())
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		handOne()
	}()
}

// drain closes idle connections at once and the busy ones as they become idle,
// waiting at most ShutdownGrace (the rest are closed by Serve).
func (s *Server) drain() {
	deadline := time.Now().Add(s.cfg.ShutdownGrace)
	logged := false
	for {
		s.mu.Lock()
		busy := 0
		for fs := range s.conns {
			if fs.Idle() {
				fs.Close()
			} else {
				busy++
			}
		}
		s.mu.Unlock()
		if busy == 0 || time.Now().After(deadline) {
			if busy > 0 {
				s.log.Warn("shutdown: closing connections still serving requests", "connections", busy, "grace", s.cfg.ShutdownGrace)
			}
			return
		}
		if !logged {
			s.log.Info("shutdown: waiting for connections to finish their requests", "connections", busy, "grace", s.cfg.ShutdownGrace)
			logged = true
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Server) track(fs *wire.FrameStream) func() {
	s.mu.Lock()
	s.conns[fs] = struct{}{}
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.conns, fs)
		s.mu.Unlock()
	}
}

// temporaryAcceptError: an accept that may succeed later.
func temporaryAcceptError(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// ServeConn serves one client over c (a socket, or a pair of pipes in stdio mode) and
// returns when the connection ends: nil when the client closed it cleanly. TLS, when
// configured, is up to the caller (Serve does it).
func (s *Server) ServeConn(ctx context.Context, c io.ReadWriteCloser, peer string) error {
	opts := s.cfg.Open
	opts.Peer = peer
	if nc, ok := c.(interface{ LocalAddr() net.Addr }); ok {
		opts.Local = nc.LocalAddr().String() // conn._config["endpoints"] in hosted code
	}
	if s.cfg.Dialect != nil {
		opts.Dialect = DialectVersion(s.cfg.Dialect)
	}
	var mc *metrics.Conn
	if s.cfg.Metrics != nil {
		mc = s.cfg.Metrics.Conn(transportOf(c))
	}
	if s.cfg.Embedded != nil {
		client := s.clientStream(c, mc)
		defer s.track(client)()
		err := hangup(s.cfg.Embedded.Serve(ctx, client, opts))
		mc.Close(err)
		s.log.Debug("connection closed", "peer", peer, "dialect", dialectOf(client), "err", err)
		return err
	}
	ch, err := s.cfg.Pool.Open(ctx, opts)
	if err != nil {
		c.Close()
		mc.Close(errors.Join(metrics.ErrNoWorker, err))
		return fmt.Errorf("open a worker connection for %s: %w", peer, err)
	}
	log := s.log.With("peer", peer, "worker", ch.Worker().ID())
	client := s.clientStream(c, mc)
	defer s.track(client)()
	err = hangup(bridge.Relay(ctx, client, ch))
	mc.Close(err)
	log.Debug("connection closed", "dialect", dialectOf(client), "err", err)
	return err
}

// transportOf is how c reaches the client, for the metrics.
func transportOf(c io.ReadWriteCloser) metrics.Transport {
	switch c := c.(type) {
	case *tls.Conn:
		return metrics.TLS
	case *blockingConn:
		if !c.tcp {
			return metrics.Unix
		}
		return metrics.TCP
	case net.Conn:
		if c.LocalAddr().Network() == "unix" {
			return metrics.Unix
		}
		return metrics.TCP
	}
	return metrics.Stdio
}

// hangup maps a client that went away (EOF, a reset, a write to a closed socket or
// pipe while a reply was under way) to nil: that is how connections normally end.
func hangup(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
		return nil
	}
	return err
}

// clientStream frames c in the configured dialect, or learns it from the client's
// first frame. A worker's write before that waits HoldTimeout, then assumes Default.
// Its traffic is reported to mc, when set.
func (s *Server) clientStream(c io.ReadWriteCloser, mc *metrics.Conn) *wire.FrameStream {
	var fs *wire.FrameStream
	if s.cfg.Dialect != nil {
		fs = wire.NewFrameStream(c, s.cfg.Dialect, s.limits)
	} else {
		fs = wire.DetectFrameStream(c, s.limits, s.cfg.Default, s.cfg.HoldTimeout)
	}
	if mc != nil {
		fs.SetObserver(mc)
	}
	return fs
}

// DialectVersion names a dialect as the worker protocol's OPEN does: "5", "6", or "ng"
// for rpyc-ng.
func DialectVersion(d wire.Dialect) string {
	switch d {
	case wire.Dialect5:
		return "5"
	case wire.Dialect6:
		return "6"
	case wire.DialectNG:
		return "ng"
	}
	return d.Name()
}

func dialectOf(s *wire.FrameStream) string {
	if d := s.Dialect(); d != nil {
		return DialectVersion(d)
	}
	return "none"
}
