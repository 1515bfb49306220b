package cpython

import (
	"testing"

	"github.com/pybridge/pybridge/bridge/brine"
	"github.com/pybridge/pybridge/bridge/wire"
)

var channelLayouts = []struct {
	layout int
	d      wire.Dialect
}{{5, wire.Dialect5}, {6, wire.Dialect6}}

func channelSeeds() []wire.Message {
	return []wire.Message{
		{Type: wire.MsgRequest, Seq: 1, Body: brine.Tuple{int64(wire.HandleGetAttr), brine.Tuple{
			brine.Tuple{int64(3), brine.Tuple{"math", int64(140234), int64(0)}}, brine.Tuple{int64(1), "pi"}}}},
		{Type: wire.MsgReply, Seq: 159, Body: brine.Tuple{int64(1), 3.141592653589793}},
		{Type: wire.MsgException, Seq: 160, Body: brine.Tuple{brine.Tuple{"builtins", "ValueError"}, brine.Tuple{"x"}, brine.Tuple{}, ""}},
		{Type: wire.MsgRequest, Seq: -49, Body: brine.Tuple{int64(1), brine.Tuple{int64(1), []byte("ping")}}},
		{Type: wire.MsgRequest, Seq: 999999999999999999, Body: brine.Tuple{int64(3), brine.Tuple{int64(1), brine.Tuple{}}}},
		{Type: wire.MsgReply, Seq: 7, Body: nil},
	}
}

// What the channel reads is what the stream reads.
func TestChannelReadsMessagesAsTheStream(t *testing.T) {
	start(t)
	Enter()
	defer Leave()
	lim := brine.DefaultLimits
	for _, l := range channelLayouts {
		for _, m := range channelSeeds() {
			payload, err := l.d.AppendMessage(nil, m)
			if err != nil {
				t.Fatal(err)
			}
			o, ok := ChannelMessage(l.layout, payload, lim)
			if !ok {
				t.Fatalf("%s: the channel refused %+v", l.d.Name(), m)
			}
			checkChannelMessage(t, l.d, payload, lim, o)
			o.DecRef()
		}
	}
}

// The channel reads nothing the stream would not, and reads it as the stream does:
// whatever it refuses, Go reads (and decides).
func FuzzChannelMessage(f *testing.F) {
	for _, l := range channelLayouts {
		for _, m := range channelSeeds() {
			payload, _ := l.d.AppendMessage(nil, m)
			f.Add(payload)
		}
	}
	f.Add([]byte{0x12, 0x51, 0x16, 0x02, '-', '0', 0x00})
	f.Add([]byte{0x01, 0x11, 0x16, 0x13, '1', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', 0x00})
	start(f)
	f.Fuzz(func(t *testing.T, payload []byte) {
		Enter()
		defer Leave()
		for _, lim := range []brine.Limits{brine.DefaultLimits, {MaxDepth: 3, MaxItems: 6, MaxIntDigits: 20}} {
			for _, l := range channelLayouts {
				o, ok := ChannelMessage(l.layout, payload, lim)
				if PyErrOccurred() {
					t.Fatal("a Python exception was left set")
				}
				if ok {
					checkChannelMessage(t, l.d, payload, lim, o)
					o.DecRef()
				}
			}
		}
	})
}

// checkChannelMessage: o is the message the dialect's ParseMessage reads in payload.
func checkChannelMessage(t *testing.T, d wire.Dialect, payload []byte, lim brine.Limits, o Object) {
	t.Helper()
	m, err := d.ParseMessage(payload, lim)
	if err != nil {
		t.Fatalf("%s: the channel read %s, the stream: %v", d.Name(), repr(o), err)
	}
	want, err := (&Encoder{}).Object(brine.Tuple{int64(m.Type), m.Seq, m.Body})
	if err != nil {
		if exc, isExc := err.(*Exception); isExc {
			exc.Release()
		}
		t.Fatalf("%s: the channel read %s, the Encoder cannot make %+v: %v", d.Name(), repr(o), m, err)
	}
	defer want.DecRef()
	if same, known := sameValue(t, o, want); known && !same {
		t.Fatalf("%s: the channel read %s, the stream %s", d.Name(), repr(o), repr(want))
	}
}
