package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
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

// Dial connects to an rpyc server ("tcp" or "unix"). Nothing in rpyc negotiates the
// message layout, so unless WithDialect names it, Dial pings in rpyc 6.x's layout and,
// when the server drops the connection (as a 5.x server does), connects again in 5.x's.
func Dial(ctx context.Context, network, addr string, opts ...DialOption) (*Conn, error) {
	o := dialOptions{limits: wire.DefaultLimits(), probe: 10 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	if o.dialect != nil {
		return dial(ctx, network, addr, o, o.dialect)
	}
	var errs []error
	for _, d := range []wire.Dialect{wire.Dialect6, wire.Dialect5} {
		c, err := dial(ctx, network, addr, o, d)
		if err != nil {
			return nil, err
		}
		pctx, cancel := context.WithTimeout(ctx, o.probe)
		err = c.Ping(pctx)
		cancel()
		if err == nil {
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
