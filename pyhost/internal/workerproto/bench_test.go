package workerproto

import (
	"testing"

	"github.com/pybridge/pybridge/bridge/brine"
	"github.com/pybridge/pybridge/bridge/wire"
)

// a CALLATTR request as bridge.Conn sends it: (handler, (oid, name, args, kwargs))
var benchBody = brine.Tuple{int64(wire.HandleCallAttr), brine.Tuple{
	brine.Tuple{int64(4), brine.Tuple{"builtins.module", int64(140234), int64(140238)}},
	"sqrt", brine.Tuple{int64(2), brine.Tuple{brine.Tuple{int64(1), 2.0}}}, brine.Tuple{}}}

func BenchmarkEncodeFrame(b *testing.B) {
	f := Frame{Kind: KindRequest, Conn: 1, Seq: 12345, Body: benchBody}
	b.ReportAllocs()
	for b.Loop() {
		e := getEncoder(Limits{})
		if _, err := e.frame(f); err != nil {
			b.Fatal(err)
		}
		putEncoder(e)
	}
}

func BenchmarkDecodeFrame(b *testing.B) {
	buf, err := EncodeFrame(Frame{Kind: KindRequest, Conn: 1, Seq: 12345, Body: benchBody}, Limits{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeFrame(buf[4:], Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}
