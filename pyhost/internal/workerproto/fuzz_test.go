package workerproto

import (
	"testing"
)

// FuzzDecodeFrame: any payload decodes to a frame or a codec error, never a panic or
// an allocation out of proportion; whatever decodes re-encodes and decodes to the same
// frame.
func FuzzDecodeFrame(f *testing.F) {
	for _, v := range vectors() {
		fr, ok := v.goVal.(Frame)
		if !ok {
			fr = Frame{Kind: KindReply, Conn: 1, Seq: 2, Body: v.goVal}
		}
		b, err := EncodeFrame(fr, Limits{})
		if err != nil {
			f.Fatal(err)
		}
		if len(b) < 4096 {
			f.Add(b[4:])
		}
	}
	lim := Limits{MaxFrame: 1 << 20, MaxDepth: 32, MaxItems: 1 << 16}
	f.Fuzz(func(t *testing.T, payload []byte) {
		fr, err := DecodeFrame(payload, lim)
		if err != nil {
			return
		}
		b, err := EncodeFrame(fr, lim)
		if err != nil {
			t.Fatalf("decoded %#v but cannot re-encode it: %v", fr, err)
		}
		again, err := DecodeFrame(b[4:], lim)
		if err != nil {
			t.Fatalf("re-encoded frame does not decode: %v", err)
		}
		if !sameValue(fr, again) {
			t.Fatalf("round trip changed %#v into %#v", fr, again)
		}
	})
}
