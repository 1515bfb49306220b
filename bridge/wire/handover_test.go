package wire

import (
	"bytes"
	"io"
	"testing"

	"github.com/pybridge/pybridge/bridge/brine"
)

// readOnly is a connection of frames already sent (writes go nowhere).
type readOnly struct{ io.Reader }

func (readOnly) Write(p []byte) (int, error) { return len(p), nil }
func (readOnly) Close() error                { return nil }

func requestFrame(t *testing.T, d Dialect, seq int64) []byte {
	t.Helper()
	p, err := d.AppendMessage(nil, Message{Type: MsgRequest, Seq: seq, Body: brine.Tuple{int64(HandlePing), brine.Tuple{"x"}}})
	if err != nil {
		t.Fatal(err)
	}
	return frame(p, 0)
}

// Another reader takes turns with the stream: the bytes the stream read ahead are
// handed over whole, and what the other reader gives back is read next, in order.
func TestHandOverAndTakeBackKeepTheOrderOfFrames(t *testing.T) {
	for _, d := range []Dialect{Dialect5, Dialect6} {
		var wire []byte
		for seq := int64(1); seq <= 4; seq++ {
			wire = append(wire, requestFrame(t, d, seq)...)
		}
		fs := NewFrameStream(readOnly{bytes.NewReader(wire)}, d, DefaultLimits())
		if m, err := fs.ReadMessage(); err != nil || m.Seq != 1 {
			t.Fatalf("%s: first message %+v, %v", d.Name(), m, err)
		}
		h := fs.HandOver()
		if h.Dialect != d || h.Threshold != CompressionThreshold || h.Limits != DefaultLimits() {
			t.Fatalf("%s: handover %+v", d.Name(), h)
		}
		rest := wire[len(requestFrame(t, d, 1)):]
		if !bytes.Equal(h.Buffered, rest) {
			t.Fatalf("%s: handed over %d bytes, want the %d after the first frame", d.Name(), len(h.Buffered), len(rest))
		}
		if fs.Buffered() != 0 {
			t.Fatalf("%s: the stream kept %d bytes it handed over", d.Name(), fs.Buffered())
		}
		// the other reader uses the second frame and gives the rest back in two parts
		second := len(requestFrame(t, d, 2))
		fs.TakeBack(rest[second+3:])
		fs.TakeBack(rest[second : second+3])
		for seq := int64(3); seq <= 4; seq++ {
			if m, err := fs.ReadMessage(); err != nil || m.Seq != seq {
				t.Fatalf("%s: message %+v, %v; want seq %d", d.Name(), m, err, seq)
			}
		}
		if _, err := fs.ReadMessage(); err != io.EOF {
			t.Fatalf("%s: after the last frame: %v", d.Name(), err)
		}
	}
}

// Only the stream may read while it must look at each message itself.
func TestHandOverKeepsTheReadingWhileTheStreamMustSeeMessages(t *testing.T) {
	wire := append(requestFrame(t, Dialect6, 1), requestFrame(t, Dialect6, 2)...)
	fs := DetectFrameStream(readOnly{bytes.NewReader(wire)}, DefaultLimits(), Dialect5, 0)
	if h := fs.HandOver(); h.Dialect != nil {
		t.Fatalf("dialect not settled, handed over %v", h.Dialect.Name())
	}
	if _, err := fs.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	if h := fs.HandOver(); h.Dialect != nil { // an rpyc 6.x peer may still be rpyc-ng
		t.Fatalf("while spotting rpyc-ng, handed over %v", h.Dialect.Name())
	}

	fs = NewFrameStream(readOnly{bytes.NewReader(nil)}, Dialect5, DefaultLimits())
	fs.SetCompression(false)
	if h := fs.HandOver(); h.Dialect != Dialect5 || h.Threshold != -1 {
		t.Fatalf("compression off: %+v", h)
	}
	fs.SetObserver(nopObserver{})
	if h := fs.HandOver(); h.Dialect != Dialect5 || h.Observer != (nopObserver{}) {
		t.Fatalf("the observer is not handed over: %+v", h)
	}
}

type nopObserver struct{}

func (nopObserver) Settled(Dialect)                       {}
func (nopObserver) Received(MsgType, int64, Handler, int) {}
func (nopObserver) Sent(MsgType, int64, int)              {}
func (nopObserver) Refused(MsgType, int)                  {}
