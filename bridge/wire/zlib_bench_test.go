package wire

import (
	"bytes"
	stdzlib "compress/zlib"
	"io"
	"testing"

	kpzlib "github.com/klauspost/compress/zlib"
)

// zlibPayload is a realistic large payload: brine-ish text and numbers, 1 MiB.
var zlibPayload = func() []byte {
	var b bytes.Buffer
	for b.Len() < 1<<20 {
		b.WriteString("\x08\x0e\x1fbuiltins.function_or_method \x16\x0f140234567890123 payload row ")
	}
	return b.Bytes()[:1<<20]
}()

// The frame codec compresses with klauspost/compress's zlib; these compare it with the
// standard library's at rpyc's level 1: go test -run '^$' -bench Zlib ./bridge/wire
func BenchmarkZlibCompressStd(b *testing.B) {
	b.SetBytes(int64(len(zlibPayload)))
	for b.Loop() {
		w, _ := stdzlib.NewWriterLevel(io.Discard, 1)
		w.Write(zlibPayload)
		w.Close()
	}
}

func BenchmarkZlibCompressKlauspost(b *testing.B) {
	b.SetBytes(int64(len(zlibPayload)))
	for b.Loop() {
		w, _ := kpzlib.NewWriterLevel(io.Discard, 1)
		w.Write(zlibPayload)
		w.Close()
	}
}

func compressed() []byte {
	var buf bytes.Buffer
	w, _ := stdzlib.NewWriterLevel(&buf, 1)
	w.Write(zlibPayload)
	w.Close()
	return buf.Bytes()
}

func BenchmarkZlibInflateStd(b *testing.B) {
	c := compressed()
	b.SetBytes(int64(len(zlibPayload)))
	for b.Loop() {
		r, _ := stdzlib.NewReader(bytes.NewReader(c))
		io.Copy(io.Discard, r)
	}
}

func BenchmarkZlibInflateKlauspost(b *testing.B) {
	c := compressed()
	b.SetBytes(int64(len(zlibPayload)))
	for b.Loop() {
		r, _ := kpzlib.NewReader(bytes.NewReader(c))
		io.Copy(io.Discard, r)
	}
}
