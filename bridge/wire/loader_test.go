package wire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/pybridge/pybridge/bridge/brine"
)

type countingObserver struct {
	handlers []Handler
	refused  int
}

func (o *countingObserver) Settled(Dialect) {}
func (o *countingObserver) Received(t MsgType, seq int64, h Handler, n int) {
	o.handlers = append(o.handlers, h)
}
func (o *countingObserver) Sent(MsgType, int64, int) {}
func (o *countingObserver) Refused(MsgType, int)     { o.refused++ }

// ReadMessageLoading hands the loader each body's own bytes, in every layout; what the
// loader refuses the stream decodes itself: a value in the model, or its error. The
// observer sees the same messages and handlers either way.
func TestReadMessageLoading(t *testing.T) {
	getattr := brine.Tuple{int64(HandleGetAttr), brine.Tuple{int64(LabelTuple), brine.Tuple{"x"}}}
	deep := brine.Tuple{int64(HandleCall), brine.Tuple{brine.Tuple{brine.Tuple{brine.Tuple{int64(1)}}}}}
	for _, d := range []Dialect{Dialect5, Dialect6, DialectNG} {
		var buf bytes.Buffer
		fs := NewFrameStream(pipeRWC{&buf, nopCloser{&buf}}, d, DefaultLimits())
		fs.lim.Value.MaxDepth = 4
		obs := &countingObserver{}
		fs.SetObserver(obs)
		msgs := []Message{
			{Type: MsgRequest, Seq: 1, Body: getattr},
			{Type: MsgRequest, Seq: 300, Body: getattr}, // seq past the small ints
			{Type: MsgReply, Seq: 2, Body: brine.Tuple{int64(LabelValue), 1.5}},
			{Type: MsgRequest, Seq: 3, Body: deep},
		}
		for _, m := range msgs {
			if err := fs.WriteMessage(m); err != nil {
				t.Fatal(err)
			}
		}
		var loaded [][]byte
		load := func(body []byte, lim brine.Limits) (any, bool) {
			header := 2 // (seq, body)
			if d == Dialect5 {
				header = 3 // (msg, seq, body)
			}
			if lim.MaxDepth != 3 || lim.MaxItems != DefaultLimits().Value.MaxItems-header {
				t.Errorf("%s: body limits %+v", d.Name(), lim)
			}
			loaded = append(loaded, bytes.Clone(body))
			if len(loaded) == 2 {
				return nil, false // refused: the stream decodes it
			}
			return "loaded", true
		}
		for i, want := range msgs[:3] {
			m, err := fs.ReadMessageLoading(load)
			if err != nil {
				t.Fatalf("%s: %v", d.Name(), err)
			}
			if m.Type != want.Type || m.Seq != want.Seq {
				t.Errorf("%s: read %v %d, want %v %d", d.Name(), m.Type, m.Seq, want.Type, want.Seq)
			}
			if body, _ := brine.Dump(want.Body); !bytes.Equal(loaded[i], body) {
				t.Errorf("%s: loader got %x, want the body %x", d.Name(), loaded[i], body)
			}
			if i == 1 && !reflect.DeepEqual(m.Body, want.Body) || i != 1 && m.Body != "loaded" {
				t.Errorf("%s: message %d body %#v", d.Name(), i, m.Body)
			}
		}
		// over the depth limit: whatever the loader says, the stream's error
		_, err := fs.ReadMessageLoading(func([]byte, brine.Limits) (any, bool) { return nil, false })
		var ol *OverLimitError
		if !errors.As(err, &ol) || ol.Seq != 3 {
			t.Errorf("%s: over a limit: %v", d.Name(), err)
		}
		if want := []Handler{HandleGetAttr, HandleGetAttr, 0}; !reflect.DeepEqual(obs.handlers, want) || obs.refused != 1 {
			t.Errorf("%s: observer saw %v and %d refused", d.Name(), obs.handlers, obs.refused)
		}
	}
}

// Until the dialect is settled (and while a 6.x peer may be rpyc-ng) messages come in
// the value model: the loader is not asked.
func TestReadMessageLoadingWhileDetecting(t *testing.T) {
	var buf bytes.Buffer
	w := NewFrameStream(pipeRWC{&buf, nopCloser{&buf}}, Dialect6, DefaultLimits())
	w.WriteMessage(Message{Type: MsgRequest, Seq: 1, Body: brine.Tuple{int64(HandleGetRoot), brine.Tuple{int64(LabelTuple), brine.Tuple{}}}})
	fs := NewFrameStream(pipeRWC{&buf, nopCloser{&buf}}, nil, DefaultLimits())
	m, err := fs.ReadMessageLoading(func([]byte, brine.Limits) (any, bool) { t.Fatal("loader asked"); return nil, false })
	if err != nil || m.Seq != 1 || fs.Dialect() != Dialect6 {
		t.Fatalf("%v %v %v", m, err, fs.Dialect())
	}
	if _, ok := m.Body.(brine.Tuple); !ok {
		t.Errorf("body %#v", m.Body)
	}
}
