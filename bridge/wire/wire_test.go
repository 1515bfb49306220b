package wire

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/pybridge/pybridge/bridge/brine"
)

// venvPython is a venv's interpreter from `make setup`.
func venvPython(t testing.TB, venv string) string {
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "..", ".venv", venv, "bin", "python")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s: run `make setup` first: %v", p, err)
	}
	return p
}

var dialects = map[string]Dialect{"5": Dialect5, "6": Dialect6}
var venvOf = map[string]string{"5": "rpyc5", "6": "rpyc6"}

// A real rpyc client's first frame tells its dialect, and parses as its GETROOT request.
func TestDetectRealClients(t *testing.T) {
	for v, want := range dialects {
		t.Run("rpyc"+v, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
			cmd := exec.CommandContext(ctx, venvPython(t, venvOf[v]), "testdata/rpyc_first_frame.py", port)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			c, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(30 * time.Second))
			fs, err := AcceptFrameStream(c, DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			defer fs.Close()
			if fs.Dialect() != want {
				t.Fatalf("detected %s, want %s", fs.Dialect().Name(), want.Name())
			}
			m, err := fs.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			body, _ := m.Body.(brine.Tuple)
			if m.Type != MsgRequest || len(body) != 2 || body[0] != int64(HandleGetRoot) {
				t.Fatalf("first message %+v, want a GETROOT request", m)
			}
		})
	}
}

type pipeRWC struct {
	io.Reader
	io.WriteCloser
}

// Frames Go writes are read by rpyc's own Channel and brine, in each dialect, and what
// rpyc writes back (compressed when large) is read by Go: both directions agree.
func TestFramesAgainstRpycChannel(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789"), 10000) // compressed both ways
	messages := []Message{
		{Type: MsgRequest, Seq: 1, Body: brine.Tuple{int64(HandleGetRoot), brine.Tuple{}}},
		{Type: MsgReply, Seq: 123456, Body: brine.Tuple{int64(LabelValue), "héllo"}},
		{Type: MsgException, Seq: 3, Body: brine.Tuple{brine.Tuple{"builtins", "ValueError"}, brine.Tuple{"bad"}, brine.Tuple{}, "tb"}},
		{Type: MsgRequest, Seq: 4, Body: brine.Tuple{int64(HandleCall), brine.Tuple{int64(LabelValue), brine.Tuple{big}}}},
	}
	for v, d := range dialects {
		t.Run("rpyc"+v, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, venvPython(t, venvOf[v]), "testdata/rpyc_echo_frames.py", v)
			stdin, _ := cmd.StdinPipe()
			stdout, _ := cmd.StdoutPipe()
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			fs := NewFrameStream(pipeRWC{stdout, stdin}, d, DefaultLimits())
			defer fs.Close()
			for _, m := range messages {
				if err := fs.WriteMessage(m); err != nil {
					t.Fatal(err)
				}
				got, err := fs.ReadMessage()
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, m) {
					t.Fatalf("rpyc %s echoed %+v, want %+v", v, got, m)
				}
			}
		})
	}
}

func TestEachDialectWritesOnlyItsLayout(t *testing.T) {
	m := Message{Type: MsgReply, Seq: 9, Body: brine.Tuple{int64(1), int64(2)}}
	for _, d := range []Dialect{Dialect5, Dialect6} {
		p, err := d.AppendMessage(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DetectDialect(p)
		if err != nil || got != d {
			t.Fatalf("%s payload % x detected as %v, %v", d.Name(), p, got, err)
		}
		other := Dialect5
		if d == Dialect5 {
			other = Dialect6
		}
		if _, err := other.ParseMessage(p, brine.DefaultLimits); err == nil {
			t.Fatalf("%s parsed a %s payload", other.Name(), d.Name())
		}
	}
}

func frame(payload []byte, compressed byte) []byte {
	var b bytes.Buffer
	b.Write([]byte{byte(len(payload) >> 24), byte(len(payload) >> 16), byte(len(payload) >> 8), byte(len(payload)), compressed})
	b.Write(payload)
	b.WriteByte('\n')
	return b.Bytes()
}

func TestFrameLimitsAndZlibBomb(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxFrame, lim.MaxInflated = 1<<20, 1<<20
	var bomb bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&bomb, zlib.BestCompression)
	zw.Write(make([]byte, 64<<20)) // 64 MiB of zeros in ~64 KiB
	zw.Close()
	cases := map[string]struct {
		in   []byte
		want error
	}{
		"zlib bomb":     {frame(bomb.Bytes(), 1), ErrInflateTooLarge},
		"length lie":    {[]byte{0x7f, 0xff, 0xff, 0xff, 0}, ErrFrameTooLarge},
		"bad flag":      {frame([]byte{1}, 7), &FrameError{}},
		"no newline":    {append(frame([]byte{1, 2}, 0)[:7], 'x'), &FrameError{}},
		"bad zlib":      {frame([]byte("not zlib"), 1), &FrameError{}},
		"short payload": {frame([]byte("abc"), 0)[:6], &FrameError{}},
	}
	for name, c := range cases {
		_, err := ReadFrame(bufio.NewReader(bytes.NewReader(c.in)), lim, nil)
		if fe, ok := c.want.(*FrameError); ok {
			if !errors.As(err, &fe) {
				t.Errorf("%s: %v, want *FrameError", name, err)
			}
		} else if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

func TestDetectRejectsUnknownLayouts(t *testing.T) {
	for _, p := range [][]byte{{}, {0x00}, {0x04, 0x11}, {0x01, 0x12}, bytes.Repeat([]byte{0}, 16)} {
		var de *DialectError
		if _, err := DetectDialect(p); !errors.As(err, &de) {
			t.Errorf("DetectDialect(% x) = %v, want *DialectError", p, err)
		}
	}
}

func FuzzReadFrameAndParse(f *testing.F) {
	for _, d := range []Dialect{Dialect5, Dialect6} {
		p, _ := d.AppendMessage(nil, Message{Type: MsgRequest, Seq: 1, Body: brine.Tuple{int64(3), brine.Tuple{}}})
		f.Add(AppendFrame(nil, p, true))
		big := bytes.Repeat([]byte("ab"), 4000)
		p, _ = d.AppendMessage(nil, Message{Type: MsgReply, Seq: 2, Body: brine.Tuple{int64(1), big}})
		f.Add(AppendFrame(nil, p, true))
	}
	lim := Limits{MaxFrame: 1 << 20, MaxInflated: 1 << 20, Value: brine.DefaultLimits}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		for {
			payload, err := ReadFrame(r, lim, nil)
			if err != nil {
				return
			}
			d, err := DetectDialect(payload)
			if err != nil {
				continue
			}
			m, err := d.ParseMessage(payload, lim.Value)
			if err != nil {
				continue
			}
			out, err := d.AppendMessage(nil, m)
			if err != nil {
				t.Fatalf("parsed %+v but cannot encode it: %v", m, err)
			}
			if _, err := d.ParseMessage(out, lim.Value); err != nil {
				t.Fatalf("re-parse: %v", err)
			}
		}
	})
}

func BenchmarkWriteReadSmall(b *testing.B) { benchFrames(b, 100) }
func BenchmarkWriteRead1MiB(b *testing.B)  { benchFrames(b, 1<<20) }

func benchFrames(b *testing.B, size int) {
	payload := bytes.Repeat([]byte("rpyc payload "), size/13+1)[:size]
	m := Message{Type: MsgReply, Seq: 1, Body: brine.Tuple{int64(1), payload}}
	var buf bytes.Buffer
	fs := NewFrameStream(pipeRWC{&buf, nopCloser{&buf}}, Dialect6, DefaultLimits())
	b.SetBytes(int64(size))
	for b.Loop() {
		if err := fs.WriteMessage(m); err != nil {
			b.Fatal(err)
		}
		if _, err := fs.ReadMessage(); err != nil {
			b.Fatal(err)
		}
	}
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// Inflating costs memory for what a payload really holds, within the limit: a bomb
// over the limit is refused having allocated little, a large legitimate payload is
// allocated once at its size, and a claimed length reserves nothing up front.
func TestInflateMemory(t *testing.T) {
	compress := func(n int) []byte {
		var b bytes.Buffer
		zw, _ := zlib.NewWriterLevel(&b, zlib.BestCompression)
		zw.Write(bytes.Repeat([]byte{7}, n))
		zw.Close()
		return b.Bytes()
	}
	allocated := func(f func()) uint64 {
		var a, b runtime.MemStats
		runtime.ReadMemStats(&a)
		f()
		runtime.ReadMemStats(&b)
		return b.TotalAlloc - a.TotalAlloc
	}
	bomb := compress(200 << 20)
	var err error
	if got := allocated(func() { _, err = inflate(bomb, 100<<20, nil) }); got > 3*inflateDirect {
		t.Errorf("refusing a 200 MiB bomb with a 100 MiB limit allocated %d MiB", got>>20)
	}
	if !errors.Is(err, ErrInflateTooLarge) {
		t.Fatalf("bomb: %v", err)
	}
	big := compress(40 << 20)
	var out []byte
	if got := allocated(func() { out, err = inflate(big, 100<<20, nil) }); err != nil || len(out) != 40<<20 || got > 40<<20+3*inflateDirect {
		t.Errorf("40 MiB payload: %d bytes, %v, allocated %d MiB", len(out), err, got>>20)
	}
	if !bytes.Equal(out, bytes.Repeat([]byte{7}, 40<<20)) {
		t.Error("40 MiB payload inflated wrong")
	}
	// a header claiming 400 MiB, then nothing: only what arrived is buffered
	hdr := []byte{0x19, 0, 0, 0, 0}
	var bufs FrameBuffers
	if got := allocated(func() {
		_, err = bufs.Read(bufio.NewReader(bytes.NewReader(append(hdr, make([]byte, 1000)...))), DefaultLimits())
	}); got > 1<<20 || err == nil {
		t.Errorf("truncated 400 MiB frame: %v, allocated %d KiB", err, got>>10)
	}
}
