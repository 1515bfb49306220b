package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/pybridge/pybridge/bridge/wire"
)

type dialOptions struct {
	tls     *tls.Config
	dialect wire.Dialect
	probe   time.Duration
	limits  wire.Limits
	cfg     Config
}

// DialOption configures Dial.
type DialOption func(*dialOptions)

// WithTLS connects with TLS (an rpyc server started with an SSL authenticator).
func WithTLS(cfg *tls.Config) DialOption { return func(o *dialOptions) { o.tls = cfg } }

// WithDialect names the server's message layout (wire.Dialect5 or wire.Dialect6) instead
// of probing for it.
func WithDialect(d wire.Dialect) DialOption { return func(o *dialOptions) { o.dialect = d } }

// WithProbeTimeout bounds each probe of the message layout (default 10 s): a server
// that neither answers nor drops the connection in that time counts as not speaking it.
func WithProbeTimeout(d time.Duration) DialOption { return func(o *dialOptions) { o.probe = d } }

// WithLimits bounds the frames and values the server may send.
func WithLimits(l wire.Limits) DialOption { return func(o *dialOptions) { o.limits = l } }

// WithConfig configures the Conn (e.g. the root the server may call back).
func WithConfig(cfg Config) DialOption { return func(o *dialOptions) { o.cfg = cfg } }

// Dial connects to an rpyc server ("tcp" or "unix").
//
// Give it the server's version when you know it: WithDialect(wire.Dialect5) or
// wire.Dialect6. Nothing in rpyc negotiates the message layout, so without it Dial
// probes: it pings in rpyc 6.x's layout and, when the server drops the connection (as a
// 5.x server does), connects again in 5.x's. A 5.x server logs that probe as an error
// with a traceback ("client connection terminated abruptly"), and no probe can avoid it:
// a 6.x message starts with its type byte (1, 2 or 3), which rpyc 5.x's brine reads as
// b"", () or True and fails to unpack as (msg, seq, args) before any handler runs, while
// a 6.x server refuses every 5.x message the same way. So Dial probes an address once
// per process: later Dials to it speak the layout found (still checked with a PING; a
// server replaced by the other version is probed afresh), and a 5.x server logs the
// probe's error once, not on every connect.
func Dial(ctx context.Context, network, addr string, opts ...DialOption) (*Conn, error) {
	o := dialOptions{limits: wire.DefaultLimits(), probe: 10 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	if o.dialect != nil {
		return dial(ctx, network, addr, o, o.dialect)
	}
	key := network + " " + addr
	order := []wire.Dialect{wire.Dialect6, wire.Dialect5}
	if d := dialects.get(key); d == wire.Dialect5 {
		order[0], order[1] = wire.Dialect5, wire.Dialect6
	}
	var errs []error
	for _, d := range order {
		c, err := dial(ctx, network, addr, o, d)
		if err != nil {
			return nil, err
		}
		pctx, cancel := context.WithTimeout(ctx, o.probe)
		err = c.Ping(pctx)
		cancel()
		if err == nil {
			dialects.set(key, d)
			return c, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", d.Name(), err))
		c.shutdown(ErrConnClosed)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return nil, fmt.Errorf("bridge: %s speaks neither rpyc 6.x nor 5.x: %w", addr, errors.Join(errs...))
}

// dialects remembers the layout Dial found per network and address.
var dialects = dialectCache{m: map[string]wire.Dialect{}}

type dialectCache struct {
	mu sync.Mutex
	m  map[string]wire.Dialect
}

// maxDialects bounds the cache: past it, it starts over (a probe again per address).
const maxDialects = 1024

func (c *dialectCache) get(key string) wire.Dialect {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key]
}

func (c *dialectCache) set(key string, d wire.Dialect) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; !ok && len(c.m) >= maxDialects {
		clear(c.m)
	}
	c.m[key] = d
}

func dial(ctx context.Context, network, addr string, o dialOptions, d wire.Dialect) (*Conn, error) {
	var nd net.Dialer
	nc, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if o.tls != nil {
		cfg := o.tls
		if cfg.ServerName == "" && network != "unix" {
			// as tls.Dial: verify the host we dialled
			cfg = cfg.Clone()
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, err
		}
		nc = tc
	}
	return NewConn(wire.NewFrameStream(nc, d, o.limits), o.cfg), nil
}
