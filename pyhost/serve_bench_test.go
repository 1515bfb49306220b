//go:build cgo

package pyhost

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/pybridge/pybridge/bridge/brine"
	"github.com/pybridge/pybridge/bridge/wire"
)

// scriptedClient is an rpyc 5.x classic client living inside the server's reads: each
// time the server wants bytes and has none, the client reads the server's last reply
// and writes its next request. It measures the embedded serve path (framing, brine,
// the Python peer) without a socket or a second thread.
type scriptedClient struct {
	b       *testing.B
	req     bytes.Buffer // client -> server
	rep     bytes.Buffer // server -> client
	client  *wire.FrameStream
	step    int
	n       int // GETATTRs left
	id      any // the last id_pack the server returned
	closed  bool
	request func() brine.Tuple
	frame   []byte // the repeated request's bytes
}

func (s *scriptedClient) Read(p []byte) (int, error) {
	if s.req.Len() == 0 {
		if s.closed {
			return 0, io.EOF
		}
		s.next()
		if s.req.Len() == 0 {
			return 0, io.EOF
		}
	}
	return s.req.Read(p)
}

func (s *scriptedClient) Write(p []byte) (int, error) { return s.rep.Write(p) }
func (s *scriptedClient) Close() error                { s.closed = true; return nil }

type clientSide struct{ s *scriptedClient }

func (c clientSide) Read(p []byte) (int, error)  { return c.s.rep.Read(p) }
func (c clientSide) Write(p []byte) (int, error) { return c.s.req.Write(p) }
func (c clientSide) Close() error                { return nil }

func ref(id any) brine.Tuple { return brine.Tuple{int64(wire.LabelLocalRef), id} }
func val(v any) brine.Tuple  { return brine.Tuple{int64(wire.LabelValue), v} }
func args(items ...any) brine.Tuple {
	return brine.Tuple{int64(wire.LabelTuple), brine.Tuple(items)}
}

func (s *scriptedClient) next() {
	if s.frame != nil {
		// the steady state: the same request again, the reply dropped unread
		s.rep.Reset()
		if s.n == 0 {
			return
		}
		s.n--
		if s.n == 0 {
			s.b.StopTimer()
		}
		s.req.Write(s.frame)
		return
	}
	if s.step > 0 {
		m, err := s.client.ReadMessage()
		if err != nil {
			s.b.Fatal(err)
		}
		body, _ := m.Body.(brine.Tuple)
		if m.Type != wire.MsgReply || len(body) != 2 {
			s.b.Fatalf("step %d: %v", s.step, m)
		}
		if label, _ := body[0].(int64); wire.Label(label) == wire.LabelRemoteRef {
			s.id = body[1]
		}
	}
	var body brine.Tuple
	switch s.step {
	case 0:
		body = brine.Tuple{int64(wire.HandleGetRoot), args()}
	case 1:
		body = brine.Tuple{int64(wire.HandleGetAttr), args(ref(s.id), val("getmodule"))}
	case 2:
		body = brine.Tuple{int64(wire.HandleCall), args(ref(s.id), args(val("math")), args())}
	default:
		body = s.request()
	}
	s.step++
	if err := s.client.WriteMessage(wire.Message{Type: wire.MsgRequest, Seq: int64(s.step), Body: body}); err != nil {
		s.b.Fatal(err)
	}
	if s.step > 3 {
		s.frame = bytes.Clone(s.req.Bytes())
		s.n--
		s.b.ResetTimer()
	}
}

// BenchmarkEmbeddedServe: one classic client's math.pi (GETATTR answered by value)
// through the embedded serve path, per request.
func BenchmarkEmbeddedServe(b *testing.B) {
	python := embeddedPython(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	e, err := StartEmbedded(ctx, Config{Python: python})
	if err != nil {
		b.Fatal(err)
	}
	s := &scriptedClient{b: b, n: b.N}
	s.request = func() brine.Tuple {
		return brine.Tuple{int64(wire.HandleGetAttr), args(ref(s.id), val("pi"))}
	}
	s.client = wire.NewFrameStream(clientSide{s}, wire.Dialect5, wire.DefaultLimits())
	srv := wire.NewFrameStream(s, wire.Dialect5, wire.DefaultLimits())
	b.ReportAllocs()
	if err := e.Serve(ctx, srv, OpenOptions{Mode: "classic", Dialect: "5"}); err != nil && !errors.Is(err, io.EOF) {
		b.Fatal(err)
	}
}
