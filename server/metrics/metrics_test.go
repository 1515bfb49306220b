package metrics

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pybridge/pybridge/bridge/brine"
	"github.com/pybridge/pybridge/bridge/wire"
)

func request(h wire.Handler) wire.Handler { return h }

// A connection is open under dialect none until its dialect is known, then under that
// dialect; it is counted in the total once, either way.
func TestConnLifecycle(t *testing.T) {
	m := New(nil)
	a := m.Conn(TCP)
	b := m.Conn(Stdio)
	if got := testutil.ToFloat64(m.open[dialectNone][TCP]); got != 1 {
		t.Errorf("open none/tcp before the first frame = %v", got)
	}
	a.Settled(wire.Dialect5)
	a.Settled(wire.Dialect6) // settled once
	if got := testutil.ToFloat64(m.open[dialect5][TCP]); got != 1 {
		t.Errorf("open 5.x/tcp = %v", got)
	}
	if got := testutil.ToFloat64(m.open[dialectNone][TCP]); got != 0 {
		t.Errorf("open none/tcp after settling = %v", got)
	}
	if got := testutil.ToFloat64(m.opened[dialect5][TCP]); got != 1 {
		t.Errorf("total 5.x/tcp = %v", got)
	}
	a.Close(nil)
	a.Close(errors.New("twice")) // closed once
	b.Close(nil)                 // closed before its first frame
	for _, c := range []struct {
		what string
		got  float64
		want float64
	}{
		{"open 5.x/tcp", testutil.ToFloat64(m.open[dialect5][TCP]), 0},
		{"open none/stdio", testutil.ToFloat64(m.open[dialectNone][Stdio]), 0},
		{"total 5.x/tcp", testutil.ToFloat64(m.opened[dialect5][TCP]), 1},
		{"total none/stdio", testutil.ToFloat64(m.opened[dialectNone][Stdio]), 1},
		{"total 6.x/tcp", testutil.ToFloat64(m.opened[dialect6][TCP]), 0},
		{"errors", testutil.ToFloat64(m.errors[KindOther]), 0},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
}

// Requests are counted by handler and timed to their reply, whichever order replies
// come in; callbacks to the client and its replies count as bytes only.
func TestConnRequests(t *testing.T) {
	m := New(nil)
	c := m.Conn(TCP)
	c.Received(wire.MsgRequest, 1, request(wire.HandleGetAttr), 100)
	c.Received(wire.MsgRequest, 2, request(wire.HandleCallAttr), 50)
	c.Received(wire.MsgRequest, 3, wire.Handler(99), 10) // unknown handler
	c.Sent(wire.MsgRequest, 7, 30)                       // a callback
	c.Received(wire.MsgReply, 7, 0, 20)                  // its reply
	c.Sent(wire.MsgException, 2, 400)
	c.Sent(wire.MsgReply, 1, 40)
	c.Sent(wire.MsgReply, 3, 10)
	c.Sent(wire.MsgReply, 1, 10) // answered already: bytes only
	c.Refused(wire.MsgRequest, 5)
	for _, x := range []struct {
		what      string
		got, want float64
	}{
		{"GETATTR requests", testutil.ToFloat64(m.requests[wire.HandleGetAttr]), 1},
		{"CALLATTR requests", testutil.ToFloat64(m.requests[wire.HandleCallAttr]), 1},
		{"OTHER requests", testutil.ToFloat64(m.requests[0]), 1},
		{"CALLATTR exceptions", testutil.ToFloat64(m.exceptions[wire.HandleCallAttr]), 1},
		{"GETATTR exceptions", testutil.ToFloat64(m.exceptions[wire.HandleGetAttr]), 0},
		{"bytes in", testutil.ToFloat64(m.bytesIn), 100 + 50 + 10 + 20 + 5},
		{"bytes out", testutil.ToFloat64(m.bytesOut), 30 + 400 + 40 + 10 + 10},
		{"over_limit errors", testutil.ToFloat64(m.errors[KindOverLimit]), 1},
	} {
		if x.got != x.want {
			t.Errorf("%s = %v, want %v", x.what, x.got, x.want)
		}
	}
	if c.n != 0 {
		t.Errorf("%d requests still pending after their replies", c.n)
	}
	text := scrape(t, m.Handler(false), "/metrics", http.StatusOK)
	for _, want := range []string{
		`pybridge_request_duration_seconds_count{handler="GETATTR"} 1`,
		`pybridge_request_duration_seconds_count{handler="CALLATTR"} 1`,
		`pybridge_request_duration_seconds_count{handler="OTHER"} 1`,
		`pybridge_request_duration_seconds_bucket{handler="GETATTR",le="1e-05"}`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
}

// A burst of requests past what is timed at once is still counted, and timing resumes
// once replies come.
func TestConnPendingOverflow(t *testing.T) {
	m := New(nil)
	c := m.Conn(TCP)
	for seq := range int64(2 * maxPending) {
		c.Received(wire.MsgRequest, seq, request(wire.HandleDel), 1)
	}
	for seq := range int64(2 * maxPending) {
		c.Sent(wire.MsgReply, seq, 1)
	}
	if got := testutil.ToFloat64(m.requests[wire.HandleDel]); got != 2*maxPending {
		t.Errorf("DEL requests = %v", got)
	}
	c.Received(wire.MsgRequest, 1000, request(wire.HandlePing), 1)
	c.Sent(wire.MsgReply, 1000, 1)
	text := scrape(t, m.Handler(false), "/metrics", http.StatusOK)
	for _, want := range []string{
		fmt.Sprintf(`pybridge_request_duration_seconds_count{handler="DEL"} %d`, maxPending),
		`pybridge_request_duration_seconds_count{handler="PING"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
}

// A request costs no allocation: the metrics are on the path of every message.
func TestConnAllocatesNothing(t *testing.T) {
	m := New(nil)
	c := m.Conn(TCP)
	body := request(wire.HandleGetAttr)
	seq := int64(0)
	if n := testing.AllocsPerRun(1000, func() {
		seq++
		c.Received(wire.MsgRequest, seq, body, 60)
		c.Sent(wire.MsgReply, seq, 40)
	}); n != 0 {
		t.Errorf("%v allocations per request", n)
	}
}

func TestClassify(t *testing.T) {
	crashed := &workerExit{crashed: true}
	for _, c := range []struct {
		err  error
		kind ErrorKind
		ok   bool
	}{
		{nil, 0, false},
		{context.Canceled, 0, false},
		{&workerExit{}, 0, false}, // stopped on shutdown
		{fmt.Errorf("relay: %w", crashed), KindWorkerCrash, true},
		{&wire.FrameError{Msg: "truncated header"}, KindMalformedFrame, true},
		{&wire.DialectError{Msg: "fits neither"}, KindMalformedFrame, true},
		{&wire.DialectError{Msg: "mismatch", Err: wire.ErrDialectMismatch}, KindDialectMismatch, true},
		{fmt.Errorf("%w: 9 bytes", wire.ErrFrameTooLarge), KindOverLimit, true},
		{wire.ErrInflateTooLarge, KindOverLimit, true},
		{&wire.OverLimitError{}, KindOverLimit, true},
		{errors.Join(ErrNoWorker, errors.New("host closed")), KindNoWorker, true},
		{tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, KindTLS, true},
		{errors.New("tls: client didn't provide a certificate"), KindTLS, true},
		{io.ErrUnexpectedEOF, KindOther, true},
	} {
		k, ok := Classify(c.err)
		if k != c.kind || ok != c.ok {
			t.Errorf("Classify(%v) = %v, %v; want %v, %v", c.err, k, ok, c.kind, c.ok)
		}
	}
}

type workerExit struct{ crashed bool }

func (e *workerExit) Error() string { return "worker exited" }
func (e *workerExit) Crashed() bool { return e.crashed }

// Through a real FrameStream: bytes are the frames' sizes on the wire, both ways.
func TestFrameStreamObserved(t *testing.T) {
	m := New(func() Workers { return Workers{Alive: 3, Restarts: 2} })
	clientSide, serverSide := net.Pipe()
	in, out := &countingConn{Conn: serverSide, written: &atomic.Int64{}}, &atomic.Int64{}
	srv := wire.DetectFrameStream(in, wire.DefaultLimits(), wire.Dialect6, 0)
	c := m.Conn(TCP)
	srv.SetObserver(c)
	client := wire.NewFrameStream(&countingConn{Conn: clientSide, written: out}, wire.Dialect5, wire.DefaultLimits())
	go func() {
		client.WriteMessage(wire.Message{Type: wire.MsgRequest, Seq: 1, Body: brine.Tuple{int64(wire.HandleGetAttr), brine.Tuple{"x", strings.Repeat("y", 5000)}}})
		client.ReadMessage()
		client.Close()
	}()
	r, err := srv.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.WriteMessage(wire.Message{Type: wire.MsgReply, Seq: r.Seq, Body: brine.Tuple{int64(wire.LabelValue), "ok"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.ReadMessage(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the client closed: %v", err)
	}
	c.Close(nil)
	if got, want := testutil.ToFloat64(m.bytesIn), float64(out.Load()); got != want {
		t.Errorf("bytes in = %v, the client wrote %v", got, want)
	}
	if got, want := testutil.ToFloat64(m.bytesOut), float64(in.written.Load()); got != want || got == 0 {
		t.Errorf("bytes out = %v, the server wrote %v", got, want)
	}
	if got := testutil.ToFloat64(m.opened[dialect5][TCP]); got != 1 {
		t.Errorf("5.x connections = %v", got)
	}
	text := scrape(t, m.Handler(false), "/metrics", http.StatusOK)
	for _, want := range []string{"pybridge_workers_alive 3", "pybridge_worker_restarts_total 2", "go_goroutines ", "process_cpu_seconds_total "} {
		if !strings.Contains(text, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}

type countingConn struct {
	net.Conn
	written *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

// Go's profiles are served only when asked for.
func TestHandlerPprof(t *testing.T) {
	m := New(nil)
	scrape(t, m.Handler(false), "/debug/pprof/", http.StatusNotFound)
	scrape(t, m.Handler(false), "/debug/pprof/heap", http.StatusNotFound)
	if text := scrape(t, m.Handler(true), "/debug/pprof/", http.StatusOK); !strings.Contains(text, "goroutine") {
		t.Errorf("pprof index:\n%s", text)
	}
	scrape(t, m.Handler(true), "/metrics", http.StatusOK)
	scrape(t, m.Handler(true), "/", http.StatusNotFound)
}

func scrape(t *testing.T, h http.Handler, path string, status int) string {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
	}
	if resp.StatusCode != status {
		t.Errorf("GET %s: %s, want %d", path, resp.Status, status)
	}
	return b.String()
}

// What the metrics add to each request: go test -run '^$' -bench . ./server/metrics
func BenchmarkConnRequest(b *testing.B) {
	m := New(nil)
	c := m.Conn(TCP)
	c.Settled(wire.Dialect5)
	body := request(wire.HandleGetAttr)
	b.ReportAllocs()
	for i := range b.N {
		seq := int64(i)
		c.Received(wire.MsgRequest, seq, body, 60)
		c.Sent(wire.MsgReply, seq, 40)
	}
}
