// Package server serves rpyc clients from pybridge workers: the body of `pybridge serve`.
//
// For each client connection the server opens a connection in a worker of its pool
// (so a service's on_connect runs at connect time, as under rpyc's ThreadedServer),
// learns the client's dialect (rpyc 5.x or 6.x) from its first frame, and relays
// messages 1:1 between the two (bridge.Relay) until either side ends. The Go process
// executes no Python: every request is answered by the worker.
//
// A worker may speak before the client does (a service whose on_connect calls the
// client's root). Its frames are held until the client's first frame tells the dialect;
// if the client stays silent for Config.HoldTimeout, the default dialect (Config.Default,
// rpyc 6.x unless set) applies, and a client that then speaks the other layout is
// disconnected with an error rather than misread.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/pybridge/pybridge/bridge"
	"github.com/pybridge/pybridge/bridge/wire"
	"github.com/pybridge/pybridge/pyhost"
)

// Config configures a Server. Pool is required.
type Config struct {
	// Pool hosts the connections.
	Pool *pyhost.Pool
	// Open says what each connection serves (Mode, Service, Config); Peer and Dialect
	// are filled in per connection.
	Open pyhost.OpenOptions
	// Dialect forces one message layout for every client; nil detects it per
	// connection from the first frame.
	Dialect wire.Dialect
	// Default is the layout used when a client stays silent for HoldTimeout while its
	// worker has something to say (default wire.Dialect6).
	Default wire.Dialect
	// HoldTimeout bounds how long a worker's first frames wait for the client's
	// (default 2s).
	HoldTimeout time.Duration
	// Limits bound every client's frames and values (default wire.DefaultLimits()).
	Limits *wire.Limits
	// Logger gets connection events (default slog.Default()).
	Logger *slog.Logger
}

// Server relays rpyc clients to workers.
type Server struct {
	cfg    Config
	limits wire.Limits
	log    *slog.Logger
	wg     sync.WaitGroup
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
	return s
}

// Serve accepts connections on ln until ctx ends or ln fails, serving each on its own
// goroutine. When ctx ends it closes ln and every connection and waits for them.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer s.wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			peer := c.RemoteAddr().String()
			if err := s.ServeConn(ctx, c, peer); err != nil {
				s.log.Warn("connection ended", "peer", peer, "err", err)
			}
		}()
	}
}

// ServeConn serves one client over c (a socket, or a pair of pipes in stdio mode) and
// returns when the connection ends: nil when the client closed it cleanly.
func (s *Server) ServeConn(ctx context.Context, c io.ReadWriteCloser, peer string) error {
	opts := s.cfg.Open
	opts.Peer = peer
	if s.cfg.Dialect != nil {
		opts.Dialect = DialectVersion(s.cfg.Dialect)
	}
	ch, err := s.cfg.Pool.Open(ctx, opts)
	if err != nil {
		c.Close()
		return fmt.Errorf("open a worker connection for %s: %w", peer, err)
	}
	log := s.log.With("peer", peer, "worker", ch.Worker().ID())

	var client wire.MessageStream
	if s.cfg.Dialect != nil {
		client = wire.NewFrameStream(c, s.cfg.Dialect, s.limits)
	} else {
		client, err = s.detect(c, ch)
		if err != nil {
			c.Close()
			ch.Close()
			return fmt.Errorf("client %s: %w", peer, err)
		}
	}
	log.Debug("connection open", "dialect", dialectOf(client))
	err = bridge.Relay(ctx, client, ch)
	log.Debug("connection closed", "err", err)
	return err
}

// detect reads the client's first frame to learn its dialect. A worker with something
// to say meanwhile waits up to HoldTimeout; then the default dialect applies to what it
// writes.
func (s *Server) detect(c io.ReadWriteCloser, worker *pyhost.Channel) (wire.MessageStream, error) {
	type accepted struct {
		fs  *wire.FrameStream
		err error
	}
	first := make(chan accepted, 1)
	go func() {
		fs, err := wire.AcceptFrameStream(c, s.limits)
		first <- accepted{fs, err}
	}()
	hold := time.NewTimer(s.cfg.HoldTimeout)
	defer hold.Stop()
	select {
	case a := <-first:
		return a.fs, a.err
	case <-hold.C:
	}
	// The client is silent: write in the default layout from now on, and read the
	// client's frames through the accepted stream once they come.
	w := wire.NewFrameStream(c, s.cfg.Default, s.limits)
	return &heldStream{writer: w, first: func() (wire.MessageStream, error) {
		a := <-first
		if a.err != nil {
			return nil, a.err
		}
		if a.fs.Dialect() != s.cfg.Default {
			return nil, fmt.Errorf("client spoke %s after the server had written %s: %w",
				a.fs.Dialect().Name(), s.cfg.Default.Name(), errDialectChanged)
		}
		return a.fs, nil
	}}, nil
}

var errDialectChanged = errors.New("dialect mismatch")

// heldStream writes through a stream of the default dialect and reads through the one
// accepted from the client's first frame.
type heldStream struct {
	writer *wire.FrameStream
	first  func() (wire.MessageStream, error)
	once   sync.Once
	reader wire.MessageStream
	err    error
}

func (h *heldStream) ReadMessage() (wire.Message, error) {
	h.once.Do(func() { h.reader, h.err = h.first() })
	if h.err != nil {
		return wire.Message{}, h.err
	}
	return h.reader.ReadMessage()
}

func (h *heldStream) WriteMessage(m wire.Message) error { return h.writer.WriteMessage(m) }
func (h *heldStream) Close() error                      { return h.writer.Close() }

// DialectVersion is the rpyc major version a dialect speaks ("5" or "6"), as the worker
// protocol's OPEN names it.
func DialectVersion(d wire.Dialect) string {
	switch d {
	case wire.Dialect5:
		return "5"
	case wire.Dialect6:
		return "6"
	}
	return d.Name()
}

func dialectOf(s wire.MessageStream) string {
	switch s := s.(type) {
	case *wire.FrameStream:
		return DialectVersion(s.Dialect())
	case *heldStream:
		return DialectVersion(s.writer.Dialect())
	}
	return "?"
}
