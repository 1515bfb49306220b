package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pybridge/pybridge/bridge/brine"
)

// Config configures a Registry.
type Config struct {
	// PruningTimeout is how long a registration stays without being renewed (default
	// DefaultPruningTimeout, as rpyc_registry).
	PruningTimeout time.Duration
	// AllowListing answers LIST with the registered names; without it LIST gets None,
	// as from rpyc_registry without --listing.
	AllowListing bool
	// Logger gets registrations, removals and refused requests (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// TCPTimeout bounds how long a TCP client may take to send its request (default 5s).
	TCPTimeout time.Duration
}

// Registry is an rpyc registry server's state and logic; ServeUDP and ServeTCP put it on
// a socket, and several sockets may share one Registry.
type Registry struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	names    []string // in the order they were first registered, as rpyc's dict keeps them
	services map[string][]*entry
}

type entry struct {
	host string
	port any // int64, or str (rpyc registers a Unix socket's path as its "port")
	seen time.Time
}

// New returns an empty Registry.
func New(cfg Config) *Registry {
	if cfg.PruningTimeout <= 0 {
		cfg.PruningTimeout = DefaultPruningTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TCPTimeout <= 0 {
		cfg.TCPTimeout = 5 * time.Second
	}
	return &Registry{cfg: cfg, log: cfg.Logger, services: map[string][]*entry{}}
}

// RequestError says why a request got no reply.
type RequestError struct{ Msg string }

func (e *RequestError) Error() string { return e.Msg }

func refuse(format string, args ...any) error {
	return &RequestError{Msg: fmt.Sprintf(format, args...)}
}

// requestLimits bound a request's brine: the deepest valid one, LIST's, is four levels.
var requestLimits = brine.Limits{MaxDepth: 8, MaxItems: 4096, MaxIntDigits: 64}

// Handle answers one request that came from host (the sender's IP address, which a
// REGISTER records): it returns the reply's brine, or a *RequestError saying why the
// request gets none.
func (r *Registry) Handle(req []byte, host string) (reply []byte, err error) {
	defer func() {
		if p := recover(); p != nil { // never expected; a request must not end the server
			reply, err = nil, refuse("internal error: %v", p)
		}
	}()
	v, err := brine.LoadLimited(req, requestLimits)
	if err != nil {
		return nil, refuse("not brine: %v", err)
	}
	msg, ok := v.(brine.Tuple)
	if !ok || len(msg) != 3 {
		return nil, refuse("want (magic, command, args), got %s", describe(v))
	}
	if magic, _ := msg[0].(string); magic != "RPYC" {
		return nil, refuse("invalid magic: %s", describe(msg[0]))
	}
	cmd, ok := msg[1].(string)
	if !ok {
		return nil, refuse("command is %s, want str", describe(msg[1]))
	}
	args, ok := msg[2].(brine.Tuple)
	if !ok {
		return nil, refuse("%s: args are %s, want a tuple", cmd, describe(msg[2]))
	}
	var out any
	switch strings.ToLower(cmd) {
	case "register":
		out, err = r.register(host, args)
	case "unregister":
		out, err = r.unregister(host, args)
	case "query":
		out, err = r.query(args)
	case "list":
		out, err = r.list(args)
	default:
		return nil, refuse("unknown command: %q", cmd)
	}
	if err != nil {
		return nil, err
	}
	return brine.Dump(out)
}

// describe names a decoded value's Python type, for log lines (never its contents,
// which come from the network).
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case string:
		if len(v) > 32 {
			return fmt.Sprintf("str %q…", v[:32])
		}
		return fmt.Sprintf("str %q", v)
	case brine.Tuple:
		return fmt.Sprintf("a tuple of %d", len(v))
	case int64:
		return "int"
	case []byte:
		return "bytes"
	case bool:
		return "bool"
	case float64:
		return "float"
	}
	return fmt.Sprintf("%T", v)
}

// upper is the name's registry key. rpyc uses str.upper(); strings.ToUpper differs only
// for the few characters whose upper case is several (ß), and registry lookups stay
// consistent either way since every name goes through it.
func upper(name string) string { return strings.ToUpper(name) }

func (r *Registry) register(host string, args brine.Tuple) (any, error) {
	if len(args) != 2 {
		return nil, refuse("REGISTER takes (names, port), got %d arguments", len(args))
	}
	var names []any
	switch v := args[0].(type) {
	case brine.Tuple:
		names = v
	case brine.FrozenSet:
		names = v
	default:
		return nil, refuse("REGISTER: names are %s, want a tuple of str", describe(args[0]))
	}
	keys := make([]string, 0, len(names))
	for _, n := range names {
		s, ok := n.(string)
		if !ok {
			return nil, refuse("REGISTER: a name is %s, want str", describe(n))
		}
		keys = append(keys, upper(s))
	}
	port, err := portArg("REGISTER", args[1])
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.cfg.Now()
	r.pruneLocked(now)
	var added []string
	for _, name := range keys {
		if e := r.findLocked(name, host, port); e != nil {
			e.seen = now
			continue
		}
		if _, ok := r.services[name]; !ok {
			r.names = append(r.names, name)
		}
		r.services[name] = append(r.services[name], &entry{host: host, port: port, seen: now})
		added = append(added, name)
	}
	if len(added) > 0 {
		r.log.Info("registered", "names", added, "host", host, "port", port)
	} else {
		r.log.Debug("registration renewed", "names", keys, "host", host, "port", port)
	}
	return "OK", nil
}

func portArg(cmd string, v any) (any, error) {
	switch v.(type) {
	case int64, string:
		return v, nil
	}
	return nil, refuse("%s: port is %s, want int", cmd, describe(v))
}

func (r *Registry) unregister(host string, args brine.Tuple) (any, error) {
	if len(args) != 1 {
		return nil, refuse("UNREGISTER takes (port,), got %d arguments", len(args))
	}
	port, err := portArg("UNREGISTER", args[0])
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pruneLocked(r.cfg.Now())
	var removed []string
	for _, name := range slices.Clone(r.names) {
		if r.removeLocked(name, func(e *entry) bool { return e.host == host && e.port == port }) > 0 {
			removed = append(removed, name)
		}
	}
	if len(removed) > 0 {
		r.log.Info("unregistered", "names", removed, "host", host, "port", port)
	}
	return "OK", nil
}

func (r *Registry) query(args brine.Tuple) (any, error) {
	if len(args) != 1 {
		return nil, refuse("QUERY takes (name,), got %d arguments", len(args))
	}
	name, ok := args[0].(string)
	if !ok {
		return nil, refuse("QUERY: name is %s, want str", describe(args[0]))
	}
	name = upper(name)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pruneLocked(r.cfg.Now())
	found := slices.Clone(r.services[name])
	slices.SortStableFunc(found, func(a, b *entry) int { return a.seen.Compare(b.seen) })
	out := make(brine.Tuple, len(found))
	for i, e := range found {
		out[i] = brine.Tuple{e.host, e.port}
	}
	r.log.Debug("query", "name", name, "found", len(out))
	return out, nil
}

func (r *Registry) list(args brine.Tuple) (any, error) {
	if len(args) != 1 {
		return nil, refuse("LIST takes ((host,),), got %d arguments", len(args))
	}
	if !r.cfg.AllowListing {
		r.log.Debug("list refused: listing is disabled")
		return nil, nil
	}
	filter, ok := args[0].(brine.Tuple)
	if !ok || len(filter) == 0 {
		return nil, refuse("LIST: filter is %s, want (host,)", describe(args[0]))
	}
	host := ""
	switch h := filter[0].(type) {
	case nil:
	case string:
		host = h
	default:
		return nil, refuse("LIST: host is %s, want str or None", describe(h))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pruneLocked(r.cfg.Now())
	out := brine.Tuple{}
	for _, name := range r.names {
		if host == "" || slices.ContainsFunc(r.services[name], func(e *entry) bool { return e.host == host }) {
			out = append(out, name)
		}
	}
	return out, nil
}

func (r *Registry) findLocked(name, host string, port any) *entry {
	for _, e := range r.services[name] {
		if e.host == host && e.port == port {
			return e
		}
	}
	return nil
}

// removeLocked drops the entries of name that drop says, and the name once it has none
// left; it returns how many it dropped.
func (r *Registry) removeLocked(name string, drop func(*entry) bool) int {
	es := r.services[name]
	n := len(es)
	es = slices.DeleteFunc(es, drop)
	if len(es) == 0 {
		delete(r.services, name)
		r.names = slices.DeleteFunc(r.names, func(s string) bool { return s == name })
	} else {
		r.services[name] = es
	}
	return n - len(es)
}

// pruneLocked drops every registration not renewed within the pruning timeout. rpyc's
// registry prunes only the names a QUERY asks for; pruning everything on every request
// also keeps LIST true and memory bounded.
func (r *Registry) pruneLocked(now time.Time) {
	oldest := now.Add(-r.cfg.PruningTimeout)
	for _, name := range slices.Clone(r.names) {
		r.removeLocked(name, func(e *entry) bool {
			if e.seen.Before(oldest) {
				r.log.Info("pruned a stale registration", "name", name, "host", e.host, "port", e.port,
					"last_seen", now.Sub(e.seen).Round(time.Second).String())
				return true
			}
			return false
		})
	}
}

// Endpoint is a registered server's address.
type Endpoint struct {
	Host string
	Port int
}

func (e Endpoint) String() string { return net.JoinHostPort(e.Host, fmt.Sprint(e.Port)) }

// Services returns what is registered now, stale registrations left out: each name with
// its servers, oldest registration first (those registered with a Unix socket path
// instead of a port are left out).
func (r *Registry) Services() map[string][]Endpoint {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pruneLocked(r.cfg.Now())
	out := map[string][]Endpoint{}
	for _, name := range r.names {
		es := slices.Clone(r.services[name])
		slices.SortStableFunc(es, func(a, b *entry) int { return a.seen.Compare(b.seen) })
		for _, e := range es {
			if p, ok := e.port.(int64); ok {
				out[name] = append(out[name], Endpoint{Host: e.host, Port: int(p)})
			}
		}
	}
	return out
}

// hostOf is the address a registration records for a sender: its IP as Python writes
// it (IPv4-mapped IPv6 addresses as IPv4, an IPv6 zone after %).
func hostOf(addr net.Addr) string {
	var ap netip.AddrPort
	switch a := addr.(type) {
	case *net.UDPAddr:
		ap = a.AddrPort()
	case *net.TCPAddr:
		ap = a.AddrPort()
	default:
		return addr.String()
	}
	return ap.Addr().Unmap().String()
}

// warner logs refused requests, at most a line a second with the count of those left
// out, so a flood of junk cannot flood the log.
type warner struct {
	log        *slog.Logger
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (w *warner) warn(from net.Addr, err error) {
	w.mu.Lock()
	now := time.Now()
	if now.Sub(w.last) < time.Second {
		w.suppressed++
		w.mu.Unlock()
		return
	}
	n := w.suppressed
	w.last, w.suppressed = now, 0
	w.mu.Unlock()
	attrs := []any{"from", from.String(), "reason", err.Error()}
	if n > 0 {
		attrs = append(attrs, "suppressed", n)
	}
	w.log.Warn("ignored a registry request", attrs...)
}

// ServeUDP answers requests arriving on conn until ctx ends (then it closes conn and
// returns nil) or conn fails.
func (r *Registry) ServeUDP(ctx context.Context, conn net.PacketConn) error {
	defer closeOnDone(ctx, conn)()
	w := &warner{log: r.log}
	buf := make([]byte, maxMessage) // more than a datagram holds
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// e.g. an ICMP error reported on the socket: not the socket's end
			r.log.Debug("registry: read", "err", err)
			continue
		}
		reply, err := r.Handle(buf[:n], hostOf(from))
		if err != nil {
			w.warn(from, err)
			continue
		}
		if _, err := conn.WriteTo(reply, from); err != nil {
			r.log.Debug("registry: reply not sent", "to", from.String(), "err", err)
		}
	}
}

// closeOnDone closes c when ctx ends. The function it returns, deferred by a Serve
// method, waits for that close to have finished: when Serve returns, the port is free to
// bind again.
func closeOnDone(ctx context.Context, c io.Closer) (wait func()) {
	closed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		c.Close()
		close(closed)
	})
	return func() {
		if !stop() {
			<-closed
		}
	}
}

// maxTCPClients bounds the TCP connections being read at once; more wait to be accepted.
const maxTCPClients = 128

// ServeTCP answers a request on each connection ln accepts (one request, one reply, then
// the connection is closed, as rpyc's TCPRegistryServer does) until ctx ends (then it
// closes ln, waits for the connections in progress and returns nil) or ln fails.
func (r *Registry) ServeTCP(ctx context.Context, ln net.Listener) error {
	defer closeOnDone(ctx, ln)()
	w := &warner{log: r.log}
	sem := make(chan struct{}, maxTCPClients)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		sem <- struct{}{}
		c, err := ln.Accept()
		if err != nil {
			<-sem
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				r.log.Warn("registry: accept", "err", err)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r.serveTCPConn(ctx, c, w)
		}()
	}
}

func (r *Registry) serveTCPConn(ctx context.Context, c net.Conn, w *warner) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	_ = c.SetDeadline(time.Now().Add(r.cfg.TCPTimeout))
	req, err := readMessage(c)
	if err != nil {
		w.warn(c.RemoteAddr(), err)
		return
	}
	reply, err := r.Handle(req, hostOf(c.RemoteAddr()))
	if err != nil {
		w.warn(c.RemoteAddr(), err)
		return
	}
	if _, err := c.Write(reply); err != nil {
		r.log.Debug("registry: reply not sent", "to", c.RemoteAddr().String(), "err", err)
	}
}

// readMessage reads one brine value from a stream whose writer then waits for the reply
// (rpyc's clients neither frame a request nor close their side after it): it reads until the
// bytes decode, the peer closes, the deadline passes or maxMessage is exceeded.
func readMessage(c io.Reader) ([]byte, error) {
	var buf []byte
	chunk := make([]byte, 4096)
	for {
		n, err := c.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if len(buf) > maxMessage {
			return nil, refuse("more than %d bytes", maxMessage)
		}
		if n > 0 {
			if _, derr := brine.LoadLimited(buf, requestLimits); derr == nil {
				return buf, nil
			}
		}
		if err != nil {
			if len(buf) == 0 {
				return nil, refuse("nothing received: %v", err)
			}
			return buf, nil // Handle says what is wrong with it
		}
	}
}
