package registry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pybridge/pybridge/bridge/brine"
)

// clock is a settable time for pruning tests.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func dump(v any) []byte {
	b, err := brine.Dump(v)
	if err != nil {
		panic(err)
	}
	return b
}

func load(t *testing.T, b []byte) any {
	t.Helper()
	v, err := brine.Load(b)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func req(cmd string, args ...any) []byte {
	return dump(brine.Tuple{"RPYC", cmd, brine.Tuple(args)})
}

func names(vs ...string) brine.Tuple {
	t := brine.Tuple{}
	for _, v := range vs {
		t = append(t, v)
	}
	return t
}

func mustHandle(t *testing.T, r *Registry, b []byte, host string) any {
	t.Helper()
	out, err := r.Handle(b, host)
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	return load(t, out)
}

func TestHandleCommands(t *testing.T) {
	r := New(Config{Logger: quiet(), AllowListing: true})
	if got := mustHandle(t, r, req("REGISTER", names("echo", "Other"), 18861), "10.0.0.1"); got != "OK" {
		t.Fatalf("REGISTER: %v", got)
	}
	mustHandle(t, r, req("register", names("ECHO"), 18862), "10.0.0.2") // commands are case-insensitive
	got := mustHandle(t, r, req("QUERY", "Echo"), "10.9.9.9")
	want := brine.Tuple{brine.Tuple{"10.0.0.1", int64(18861)}, brine.Tuple{"10.0.0.2", int64(18862)}}
	if !equal(got, want) {
		t.Fatalf("QUERY: %v, want %v", got, want)
	}
	if got := mustHandle(t, r, req("QUERY", "nobody"), "h"); !equal(got, brine.Tuple{}) {
		t.Fatalf("QUERY of an unknown name: %v", got)
	}
	if got := mustHandle(t, r, req("LIST", brine.Tuple{nil}), "h"); !equal(got, names("ECHO", "OTHER")) {
		t.Fatalf("LIST: %v", got)
	}
	if got := mustHandle(t, r, req("LIST", brine.Tuple{"10.0.0.2"}), "h"); !equal(got, names("ECHO")) {
		t.Fatalf("LIST for a host: %v", got)
	}
	// UNREGISTER removes the sender's host and port under every name
	if got := mustHandle(t, r, req("UNREGISTER", 18861), "10.0.0.1"); got != "OK" {
		t.Fatalf("UNREGISTER: %v", got)
	}
	if got := mustHandle(t, r, req("QUERY", "echo"), "h"); !equal(got, brine.Tuple{brine.Tuple{"10.0.0.2", int64(18862)}}) {
		t.Fatalf("QUERY after UNREGISTER: %v", got)
	}
	if got := mustHandle(t, r, req("LIST", brine.Tuple{""}), "h"); !equal(got, names("ECHO")) {
		t.Fatalf("LIST after UNREGISTER: %v", got)
	}
	// another host's UNREGISTER of the same port removes nothing
	mustHandle(t, r, req("UNREGISTER", 18862), "10.0.0.1")
	if got := r.Services(); len(got["ECHO"]) != 1 {
		t.Fatalf("services: %v", got)
	}
	// a Unix socket's path as the port, as rpyc's servers register it
	mustHandle(t, r, req("REGISTER", names("unix"), "/tmp/s.sock"), "")
	if got := mustHandle(t, r, req("QUERY", "UNIX"), "h"); !equal(got, brine.Tuple{brine.Tuple{"", "/tmp/s.sock"}}) {
		t.Fatalf("QUERY of a path: %v", got)
	}
}

func TestListingDisabledRepliesNone(t *testing.T) {
	r := New(Config{Logger: quiet()})
	mustHandle(t, r, req("REGISTER", names("a"), 1), "h")
	out, err := r.Handle(req("LIST", brine.Tuple{nil}), "h")
	if err != nil || !bytes.Equal(out, dump(nil)) {
		t.Fatalf("LIST: %x %v, want None", out, err)
	}
}

func TestQueryOldestFirstAndRenewalKeepsPlace(t *testing.T) {
	clk := &clock{now: time.Unix(1000, 0)}
	r := New(Config{Logger: quiet(), Now: clk.Now})
	mustHandle(t, r, req("REGISTER", names("s"), 1), "a")
	clk.Add(time.Second)
	mustHandle(t, r, req("REGISTER", names("s"), 2), "b")
	clk.Add(time.Second)
	mustHandle(t, r, req("REGISTER", names("s"), 1), "a") // renewed: now the newest
	got := mustHandle(t, r, req("QUERY", "s"), "x")
	want := brine.Tuple{brine.Tuple{"b", int64(2)}, brine.Tuple{"a", int64(1)}}
	if !equal(got, want) {
		t.Fatalf("QUERY: %v, want %v", got, want)
	}
}

func TestPruning(t *testing.T) {
	clk := &clock{now: time.Unix(1000, 0)}
	r := New(Config{Logger: quiet(), Now: clk.Now, PruningTimeout: 10 * time.Second, AllowListing: true})
	mustHandle(t, r, req("REGISTER", names("stale", "both"), 1), "a")
	clk.Add(6 * time.Second)
	mustHandle(t, r, req("REGISTER", names("live", "both"), 2), "b")
	clk.Add(4 * time.Second) // a is exactly at the timeout: kept (rpyc drops only older)
	if got := mustHandle(t, r, req("QUERY", "both"), "x"); len(got.(brine.Tuple)) != 2 {
		t.Fatalf("at the timeout: %v", got)
	}
	clk.Add(time.Millisecond)
	if got := mustHandle(t, r, req("QUERY", "both"), "x"); !equal(got, brine.Tuple{brine.Tuple{"b", int64(2)}}) {
		t.Fatalf("after the timeout: %v", got)
	}
	// every name is pruned, not just the one asked for: LIST no longer shows "STALE"
	if got := mustHandle(t, r, req("LIST", brine.Tuple{nil}), "x"); !equal(got, names("BOTH", "LIVE")) {
		t.Fatalf("LIST: %v", got)
	}
	// a renewal keeps a registration alive past the timeout of its first one
	clk.Add(5 * time.Second)
	mustHandle(t, r, req("REGISTER", names("live", "both"), 2), "b")
	clk.Add(9 * time.Second)
	if got := mustHandle(t, r, req("QUERY", "live"), "x"); len(got.(brine.Tuple)) != 1 {
		t.Fatalf("renewed: %v", got)
	}
	// a pruned server registering again is new again
	clk.Add(11 * time.Second)
	if got := r.Services(); len(got) != 0 {
		t.Fatalf("all stale: %v", got)
	}
	mustHandle(t, r, req("REGISTER", names("live"), 2), "b")
	if got := r.Services(); !slices.Equal(got["LIVE"], []Endpoint{{"b", 2}}) {
		t.Fatalf("registered again: %v", got)
	}
}

// malformed are requests rpyc's registry would not answer either; none may change the
// state or stop the next request from being served.
var malformed = []struct {
	name string
	b    func() []byte
}{
	{"empty", func() []byte { return nil }},
	{"not brine", func() []byte { return []byte("GET / HTTP/1.0\r\n\r\n") }},
	{"truncated", func() []byte { b := req("QUERY", "x"); return b[:len(b)-1] }},
	{"trailing bytes", func() []byte { return append(req("QUERY", "x"), 0) }},
	{"not a tuple", func() []byte { return dump("RPYC") }},
	{"two items", func() []byte { return dump(brine.Tuple{"RPYC", "QUERY"}) }},
	{"bad magic", func() []byte { return dump(brine.Tuple{"RPYX", "QUERY", brine.Tuple{"x"}}) }},
	{"bytes magic", func() []byte { return dump(brine.Tuple{[]byte("RPYC"), "QUERY", brine.Tuple{"x"}}) }},
	{"command not str", func() []byte { return dump(brine.Tuple{"RPYC", 7, brine.Tuple{}}) }},
	{"unknown command", func() []byte { return req("DELETE_ALL") }},
	{"private name", func() []byte { return req("_remove_service", "X", brine.Tuple{"h", 1}) }},
	{"args not a tuple", func() []byte { return dump(brine.Tuple{"RPYC", "QUERY", "x"}) }},
	{"query arity", func() []byte { return req("QUERY") }},
	{"query name int", func() []byte { return req("QUERY", 5) }},
	{"register arity", func() []byte { return req("REGISTER", names("x")) }},
	{"register names str", func() []byte { return req("REGISTER", "ECHO", 1) }},
	{"register name bytes", func() []byte { return req("REGISTER", brine.Tuple{[]byte("x")}, 1) }},
	{"register port float", func() []byte { return req("REGISTER", names("x"), 1.5) }},
	{"register port None", func() []byte { return req("REGISTER", names("x"), nil) }},
	{"unregister arity", func() []byte { return req("UNREGISTER", 1, 2) }},
	{"unregister port tuple", func() []byte { return req("UNREGISTER", brine.Tuple{1}) }},
	{"list filter None", func() []byte { return req("LIST", nil) }},
	{"list filter empty", func() []byte { return req("LIST", brine.Tuple{}) }},
	{"list host int", func() []byte { return req("LIST", brine.Tuple{3}) }},
	{"deep nesting", func() []byte {
		var v any = "x"
		for range 100 {
			v = brine.Tuple{v}
		}
		return dump(brine.Tuple{"RPYC", "QUERY", v})
	}},
	{"int of 100 digits", func() []byte {
		return dump(brine.Tuple{"RPYC", "UNREGISTER", brine.Tuple{bigInt(100)}})
	}},
	{"length claim past the end", func() []byte { return []byte{0x15 /* tuple, 4-byte length */, 0x7f, 0xff, 0xff, 0xff} }},
}

func TestMalformedRequestsGetNoReply(t *testing.T) {
	r := New(Config{Logger: quiet(), AllowListing: true})
	mustHandle(t, r, req("REGISTER", names("keep"), 1), "h")
	for _, m := range malformed {
		out, err := r.Handle(m.b(), "h")
		var re *RequestError
		if !errors.As(err, &re) || out != nil {
			t.Errorf("%s: reply %x, err %v; want no reply and a *RequestError", m.name, out, err)
		}
	}
	if got := r.Services(); len(got) != 1 || !slices.Equal(got["KEEP"], []Endpoint{{"h", 1}}) {
		t.Fatalf("state changed: %v", got)
	}
}

func startUDP(t *testing.T, r *Registry, addr string) (*net.UDPConn, func()) {
	t.Helper()
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.ServeUDP(ctx, pc) }()
	return pc.(*net.UDPConn), func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeUDP: %v", err)
		}
	}
}

func startTCP(t *testing.T, r *Registry, addr string) (net.Listener, func()) {
	t.Helper()
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.ServeTCP(ctx, ln) }()
	return ln, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeTCP: %v", err)
		}
	}
}

func TestUDPSurvivesMalformedDatagrams(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	r := New(Config{AllowListing: true, Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))})
	pc, stop := startUDP(t, r, "127.0.0.1:0")
	defer stop()
	c, err := net.DialUDP("udp4", nil, pc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, m := range malformed {
		if b := m.b(); len(b) > 0 {
			if _, err := c.Write(b); err != nil {
				t.Fatal(err)
			}
		}
	}
	// the datagrams are handled in order: the reply to this one comes after them all
	if _, err := c.Write(req("REGISTER", names("x"), 5)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := load(t, buf[:n]); got != "OK" {
		t.Fatalf("reply %v: a malformed datagram was answered", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "ignored a registry request") {
		t.Fatalf("nothing logged:\n%s", logs.String())
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func TestTCPSlowAndBrokenClientsDoNotBlockOthers(t *testing.T) {
	r := New(Config{Logger: quiet(), TCPTimeout: 200 * time.Millisecond})
	ln, stop := startTCP(t, r, "127.0.0.1:0")
	defer stop()
	addr := ln.Addr().String()
	// one says nothing, one sends half a request and waits, one sends junk and closes
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	half, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	full := req("QUERY", "x")
	if _, err := half.Write(full[:3]); err != nil {
		t.Fatal(err)
	}
	junk, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = junk.Write([]byte("\x00\x01\x02junk"))
	junk.Close()

	c := &Client{Network: "tcp", Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, Timeout: 30 * time.Second}
	if err := c.Register(context.Background(), []string{"svc"}, 4242); err != nil {
		t.Fatal(err)
	}
	got, err := c.Discover(context.Background(), "SVC")
	if err != nil || !slices.Equal(got, []Endpoint{{"127.0.0.1", 4242}}) {
		t.Fatalf("Discover: %v %v", got, err)
	}
	// the half-sent request gets no reply: the server closes it at its deadline
	_ = half.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, err := half.Read(make([]byte, 10))
	var ne net.Error
	if n != 0 || err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("half request: %d bytes, %v; want the connection closed", n, err)
	}
}

func bigInt(digits int) *big.Int {
	i, _ := new(big.Int).SetString(strings.Repeat("9", digits), 10)
	return i
}

func TestClientAndRegistryOverUDPAndTCP(t *testing.T) {
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			r := New(Config{Logger: quiet(), AllowListing: true})
			var port int
			if network == "udp" {
				pc, stop := startUDP(t, r, "127.0.0.1:0")
				defer stop()
				port = pc.LocalAddr().(*net.UDPAddr).Port
			} else {
				ln, stop := startTCP(t, r, "127.0.0.1:0")
				defer stop()
				port = ln.Addr().(*net.TCPAddr).Port
			}
			ctx := context.Background()
			c := &Client{Network: network, Host: "127.0.0.1", Port: port, Local: "127.0.0.1", Timeout: 30 * time.Second}
			if err := c.Register(ctx, []string{"ECHO", "alias"}, 18861); err != nil {
				t.Fatal(err)
			}
			got, err := c.Discover(ctx, "echo")
			if err != nil || !slices.Equal(got, []Endpoint{{"127.0.0.1", 18861}}) {
				t.Fatalf("Discover: %v %v", got, err)
			}
			ls, err := c.List(ctx, "")
			if err != nil || !slices.Equal(ls, []string{"ECHO", "ALIAS"}) {
				t.Fatalf("List: %v %v", ls, err)
			}
			if ls, err := c.List(ctx, "10.1.1.1"); err != nil || len(ls) != 0 {
				t.Fatalf("List for another host: %v %v", ls, err)
			}
			if err := c.Unregister(ctx, 18861); err != nil {
				t.Fatal(err)
			}
			if got, err := c.Discover(ctx, "ALIAS"); err != nil || len(got) != 0 {
				t.Fatalf("Discover after Unregister: %v %v", got, err)
			}
		})
	}
}

func TestListDisabled(t *testing.T) {
	r := New(Config{Logger: quiet()})
	pc, stop := startUDP(t, r, "127.0.0.1:0")
	defer stop()
	c := &Client{Host: "127.0.0.1", Port: pc.LocalAddr().(*net.UDPAddr).Port, Timeout: 30 * time.Second}
	if _, err := c.List(context.Background(), ""); !errors.Is(err, ErrListingDisabled) {
		t.Fatalf("List: %v", err)
	}
}

func TestClientWithoutRegistryFails(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0") // a port nobody answers on
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c := &Client{Host: "127.0.0.1", Port: pc.LocalAddr().(*net.UDPAddr).Port, Timeout: 50 * time.Millisecond}
	if err := c.Register(context.Background(), []string{"x"}, 1); err == nil {
		t.Fatal("Register succeeded without a registry")
	}
	tc := &Client{Network: "tcp", Host: "127.0.0.1", Port: pc.LocalAddr().(*net.UDPAddr).Port, Timeout: time.Second}
	if err := tc.Register(context.Background(), []string{"x"}, 1); err == nil {
		t.Fatal("TCP Register succeeded without a registry")
	}
	// a server on IPv6 cannot register with an IPv4 registry (it would record the
	// wrong address)
	c6 := &Client{Host: "127.0.0.1", Port: 1, Local: "::1"}
	if err := c6.Register(context.Background(), []string{"x"}, 1); err == nil || !strings.Contains(err.Error(), "cannot reach") {
		t.Fatalf("mixed families: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAnnounceRegistersRenewsAndUnregisters(t *testing.T) {
	r := New(Config{Logger: quiet()})
	pc, stop := startUDP(t, r, "127.0.0.1:0")
	port := pc.LocalAddr().(*net.UDPAddr).Port
	c := &Client{Host: "127.0.0.1", Port: port, Local: "127.0.0.1", Timeout: 5 * time.Second}
	a := c.Announce([]string{"SLAVE"}, 18812, AnnounceOptions{Interval: 20 * time.Millisecond, Retry: 20 * time.Millisecond, Logger: quiet()})
	registered := func(r *Registry) func() bool {
		return func() bool { return slices.Equal(r.Services()["SLAVE"], []Endpoint{{"127.0.0.1", 18812}}) }
	}
	waitFor(t, "registration", registered(r))

	// the registry restarts empty on the same port: the renewal registers again
	stop()
	r2 := New(Config{Logger: quiet()})
	_, stop2 := startUDP(t, r2, pc.LocalAddr().String())
	defer stop2()
	waitFor(t, "registration with the new registry", registered(r2))

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if got := r2.Services(); len(got) != 0 {
		t.Fatalf("after Close: %v", got)
	}
	if err := a.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
}

func TestAnnounceNeverAcknowledgedStillSendsUnregister(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0") // receives, never replies
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c := &Client{Host: "127.0.0.1", Port: pc.LocalAddr().(*net.UDPAddr).Port, Timeout: 20 * time.Millisecond}
	a := c.Announce([]string{"x"}, 77, AnnounceOptions{Logger: quiet()})
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v (a registrar that was never acknowledged does not wait)", err)
	}
	_ = pc.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 1500)
	for {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no UNREGISTER arrived: %v", err)
		}
		if equal(load(t, buf[:n]), brine.Tuple{"RPYC", "UNREGISTER", brine.Tuple{int64(77)}}) {
			return
		}
	}
}

func TestBroadcastRule(t *testing.T) {
	for host, want := range map[string]bool{"255.255.255.255": true, "10.0.255.255": true, "127.0.0.1": false, "registry.local": false, "::1": false} {
		if broadcast(host) != want {
			t.Errorf("broadcast(%q) = %v", host, !want)
		}
	}
}

func equal(a, b any) bool {
	ab, err1 := brine.Dump(a)
	bb, err2 := brine.Dump(b)
	return err1 == nil && err2 == nil && bytes.Equal(ab, bb)
}

func FuzzHandle(f *testing.F) {
	f.Add([]byte{})
	for _, m := range malformed {
		f.Add(m.b())
	}
	f.Add(req("REGISTER", names("a", "b"), 1))
	f.Add(req("QUERY", "a"))
	f.Add(req("LIST", brine.Tuple{nil}))
	f.Add(req("UNREGISTER", 1))
	r := New(Config{Logger: quiet(), AllowListing: true})
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := r.Handle(in, "h")
		if err == nil {
			if _, derr := brine.Load(out); derr != nil {
				t.Fatalf("reply is not brine: %v", derr)
			}
		} else if out != nil {
			t.Fatal("an error with a reply")
		}
		if e := (*RequestError)(nil); errors.As(err, &e) && strings.HasPrefix(e.Msg, "internal error") {
			t.Fatal(e)
		}
	})
}
