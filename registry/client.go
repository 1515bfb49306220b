package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pybridge/pybridge/bridge/brine"
)

// Client is a registrar: it registers servers with an rpyc registry (Register,
// Unregister, Announce) and asks it for them (Discover, List), as rpyc's
// UDPRegistryClient and TCPRegistryClient do. The zero value sends UDP broadcasts to
// port 18811.
type Client struct {
	// Network is "udp" (the default) or "tcp".
	Network string
	// Host is the registry's address or name. UDP: default DefaultBroadcast; an IPv4
	// address with a 255 in it is sent to as a broadcast, as rpyc does. TCP: required.
	Host string
	// Port is the registry's port (default DefaultPort).
	Port int
	// Timeout bounds each request, its reply included (default DefaultTimeout).
	Timeout time.Duration
	// Local is the IP address requests are sent from ("" lets the system choose). A
	// registry records a REGISTER's sender address as the server's host, so a server
	// listening on one address registers from it (rpyc's servers pass their host as
	// the registrar's interface).
	Local string
}

// ErrListingDisabled is List's error when the registry does not allow listing.
var ErrListingDisabled = errors.New("the registry does not allow listing")

func (c *Client) network() string {
	if strings.EqualFold(c.Network, "tcp") {
		return "tcp"
	}
	return "udp"
}

func (c *Client) host() string {
	if c.Host == "" && c.network() == "udp" {
		return DefaultBroadcast
	}
	return c.Host
}

func (c *Client) port() int {
	if c.Port == 0 {
		return DefaultPort
	}
	return c.Port
}

// Addr is the registry's address as "network host:port", for log lines.
func (c *Client) Addr() string {
	return c.network() + " " + net.JoinHostPort(c.host(), strconv.Itoa(c.port()))
}

// broadcast says whether rpyc would send to host as a broadcast: an IPv4 address with a
// component 255.
func broadcast(host string) bool {
	return slices.Contains(strings.Split(host, "."), "255")
}

// Register registers names (a server's service aliases) for the server listening on
// port at the address requests are sent from; it returns nil once a registry replied
// "OK".
func (c *Client) Register(ctx context.Context, names []string, port int) error {
	t := make(brine.Tuple, len(names))
	for i, n := range names {
		t[i] = n
	}
	if _, err := c.request(ctx, "REGISTER", brine.Tuple{t, port}, isOK); err != nil {
		return fmt.Errorf("register with the registry (%s): %w", c.Addr(), err)
	}
	return nil
}

// Unregister removes the server listening on port, at the address requests are sent
// from, under every name; it returns nil once a registry replied "OK" (rpyc's
// registrars do not wait for the reply; waiting tells the caller it took effect).
func (c *Client) Unregister(ctx context.Context, port int) error {
	if _, err := c.request(ctx, "UNREGISTER", brine.Tuple{port}, isOK); err != nil {
		return fmt.Errorf("unregister from the registry (%s): %w", c.Addr(), err)
	}
	return nil
}

// Discover returns the servers registered under name, oldest registration first (those
// registered with a Unix socket path instead of a port are left out). No servers is an
// empty slice, not an error.
func (c *Client) Discover(ctx context.Context, name string) ([]Endpoint, error) {
	v, err := c.request(ctx, "QUERY", brine.Tuple{name}, func(any) bool { return true })
	if err != nil {
		return nil, fmt.Errorf("query the registry (%s): %w", c.Addr(), err)
	}
	t, ok := v.(brine.Tuple)
	if !ok {
		return nil, fmt.Errorf("query the registry (%s): the reply is %s, want a tuple", c.Addr(), describe(v))
	}
	out := []Endpoint{}
	for _, item := range t {
		pair, ok := item.(brine.Tuple)
		if !ok || len(pair) != 2 {
			return nil, fmt.Errorf("query the registry (%s): an item is %s, want (host, port)", c.Addr(), describe(item))
		}
		host, ok1 := pair[0].(string)
		port, ok2 := pair[1].(int64)
		if !ok1 {
			return nil, fmt.Errorf("query the registry (%s): a host is %s", c.Addr(), describe(pair[0]))
		}
		if ok2 {
			out = append(out, Endpoint{Host: host, Port: int(port)})
		}
	}
	return out, nil
}

// List returns the registered names: all of them when host is "", else those of the
// servers at host. A registry that does not allow listing gives ErrListingDisabled.
func (c *Client) List(ctx context.Context, host string) ([]string, error) {
	var filter any
	if host != "" {
		filter = host
	}
	v, err := c.request(ctx, "LIST", brine.Tuple{brine.Tuple{filter}}, func(any) bool { return true })
	if err != nil {
		return nil, fmt.Errorf("list the registry (%s): %w", c.Addr(), err)
	}
	if v == nil {
		return nil, ErrListingDisabled
	}
	t, ok := v.(brine.Tuple)
	if !ok {
		return nil, fmt.Errorf("list the registry (%s): the reply is %s, want a tuple", c.Addr(), describe(v))
	}
	out := make([]string, 0, len(t))
	for _, item := range t {
		if s, ok := item.(string); ok {
			out = append(out, s)
		}
	}
	return out, nil
}

func isOK(v any) bool { return v == "OK" }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// request sends ("RPYC", cmd, args) and returns the first reply accept takes; with a nil
// accept it returns once the request is sent.
func (c *Client) request(ctx context.Context, cmd string, args brine.Tuple, accept func(any) bool) (any, error) {
	req, err := brine.Dump(brine.Tuple{"RPYC", cmd, args})
	if err != nil {
		return nil, err
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	remote, err := c.resolve(ctx)
	if err != nil {
		return nil, err
	}
	var local netip.Addr
	if c.Local != "" {
		if local, err = netip.ParseAddr(c.Local); err != nil {
			return nil, fmt.Errorf("local address %q: %w", c.Local, err)
		}
		local = local.Unmap()
		if local.IsUnspecified() {
			local = netip.Addr{}
		} else if local.Is4() != remote.Is4() {
			return nil, fmt.Errorf("cannot reach the registry at %s from %s (the server's address)", remote, local)
		}
	}
	if c.network() == "tcp" {
		return c.requestTCP(ctx, remote, local, req, accept)
	}
	return c.requestUDP(ctx, remote, local, req, accept)
}

// resolve returns the registry's address, looked up on every request (as rpyc's
// registrars do), preferring the family of Local.
func (c *Client) resolve(ctx context.Context) (netip.Addr, error) {
	host := c.host()
	if host == "" {
		return netip.Addr{}, errors.New("no registry host")
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap(), nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.Addr{}, err
	}
	want4 := true
	if l, err := netip.ParseAddr(c.Local); err == nil && !l.Unmap().Is4() && !l.IsUnspecified() {
		want4 = false
	}
	for _, a := range addrs {
		if a.Unmap().Is4() == want4 {
			return a.Unmap(), nil
		}
	}
	if len(addrs) == 0 {
		return netip.Addr{}, fmt.Errorf("%s: no addresses", host)
	}
	return addrs[0].Unmap(), nil
}

func family(remote netip.Addr, network string) string {
	if remote.Is4() {
		return network + "4"
	}
	return network + "6"
}

func localString(local netip.Addr) string {
	if !local.IsValid() {
		return ":0"
	}
	return netip.AddrPortFrom(local, 0).String()
}

func (c *Client) requestUDP(ctx context.Context, remote, local netip.Addr, req []byte, accept func(any) bool) (any, error) {
	lc := net.ListenConfig{}
	if remote.Is4() && broadcast(c.host()) {
		lc.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1)
			})
			return errors.Join(err, serr)
		}
	}
	pc, err := lc.ListenPacket(ctx, family(remote, "udp"), localString(local))
	if err != nil {
		return nil, err
	}
	defer pc.Close()
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	dl, _ := ctx.Deadline()
	_ = pc.SetDeadline(dl)
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(remote, uint16(c.port())))
	if _, err := pc.WriteTo(req, to); err != nil || accept == nil {
		return nil, err
	}
	buf := make([]byte, maxMessage+1)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || isTimeout(err) {
				return nil, errors.New("no registry replied")
			}
			return nil, err
		}
		if u, ok := from.(*net.UDPAddr); !ok || u.Port != c.port() {
			continue // not from a registry (rpyc's registrar checks the port too)
		}
		v, err := brine.LoadLimited(buf[:n], brine.DefaultLimits)
		if err == nil && accept(v) {
			return v, nil
		}
	}
}

func (c *Client) requestTCP(ctx context.Context, remote, local netip.Addr, req []byte, accept func(any) bool) (any, error) {
	d := net.Dialer{}
	if local.IsValid() {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(local, 0))
	}
	conn, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(remote, uint16(c.port())).String())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	dl, _ := ctx.Deadline()
	_ = conn.SetDeadline(dl)
	if _, err := conn.Write(req); err != nil || accept == nil {
		return nil, err
	}
	data, err := readMessage(conn)
	if err != nil {
		if ctx.Err() != nil || isTimeout(err) {
			return nil, errors.New("the registry did not reply")
		}
		return nil, err
	}
	v, err := brine.LoadLimited(data, brine.DefaultLimits)
	if err != nil {
		return nil, fmt.Errorf("the registry's reply: %w", err)
	}
	if !accept(v) {
		return nil, fmt.Errorf("the registry replied %s", describe(v))
	}
	return v, nil
}

// AnnounceOptions configure Client.Announce.
type AnnounceOptions struct {
	// Interval is how often the registration is renewed (default ReregisterInterval);
	// keep it well under the registry's pruning timeout.
	Interval time.Duration
	// Retry is how soon a failed registration is tried again (default 1s, as rpyc's
	// servers).
	Retry time.Duration
	// Logger gets the registration's progress (default slog.Default()).
	Logger *slog.Logger
}

// An Announcer keeps a server registered: see Client.Announce.
type Announcer struct {
	c     *Client
	names []string
	port  int
	opts  AnnounceOptions
	log   *slog.Logger

	stop       chan struct{}
	done       chan struct{}
	once       sync.Once
	closeErr   error
	registered bool // some registration was acknowledged (written by run before done)
}

// Announce registers names for the server listening on port now, renews the
// registration every opts.Interval and retries a failed one every opts.Retry, in the
// background, as rpyc's servers do with auto_register. Failures are logged, never
// fatal: the first one of a run at warning level, the rest at debug. Close stops it and
// unregisters.
func (c *Client) Announce(names []string, port int, opts AnnounceOptions) *Announcer {
	if opts.Interval <= 0 {
		opts.Interval = ReregisterInterval
	}
	if opts.Retry <= 0 {
		opts.Retry = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	a := &Announcer{c: c, names: slices.Clone(names), port: port, opts: opts, log: opts.Logger,
		stop: make(chan struct{}), done: make(chan struct{})}
	go a.run()
	return a
}

func (a *Announcer) run() {
	defer close(a.done)
	registered, failing := false, false
	for {
		// An attempt is never cut short by Close: its reply then arrives before the
		// UNREGISTER is sent, so a registry cannot record it after the removal.
		err := a.c.Register(context.Background(), a.names, a.port)
		wait := a.opts.Interval
		switch {
		case err == nil && !registered:
			a.log.Info("registered with the registry", "registry", a.c.Addr(), "names", a.names, "port", a.port)
			registered, failing = true, false
			a.registered = true
		case err == nil:
			a.log.Debug("registration renewed", "registry", a.c.Addr())
		case !failing:
			a.log.Warn("registration failed; retrying", "err", err, "every", a.opts.Retry.String())
			registered, failing = false, true
			wait = a.opts.Retry
		default:
			a.log.Debug("registration failed again", "err", err)
			wait = a.opts.Retry
		}
		t := time.NewTimer(wait)
		select {
		case <-a.stop:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Close stops renewing the registration and unregisters the server. Once a registry has
// acknowledged a registration, Close waits for its reply to the UNREGISTER (at most the
// Client's Timeout, after an attempt in progress ends); if none ever did, the UNREGISTER
// is sent anyway (a reply may have been lost) but not waited for, as rpyc's registrars
// do, so a server without a registry stops at once. It returns the unregistration's
// error, also logged; later calls return the same.
func (a *Announcer) Close() error {
	a.once.Do(func() {
		close(a.stop)
		<-a.done
		if !a.registered {
			_, _ = a.c.request(context.Background(), "UNREGISTER", brine.Tuple{a.port}, nil)
			a.log.Debug("never registered: unregistering without waiting", "registry", a.c.Addr())
			return
		}
		a.closeErr = a.c.Unregister(context.Background(), a.port)
		if a.closeErr != nil {
			a.log.Warn("unregistering failed", "err", a.closeErr)
		} else {
			a.log.Info("unregistered from the registry", "registry", a.c.Addr(), "port", a.port)
		}
	})
	return a.closeErr
}
