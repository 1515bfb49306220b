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
	"github.com/pybridge/pybridge/internal/bufpool"
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

var dialects = map[string]Dialect{"5": Dialect5, "6": Dialect6, "ng": DialectNG}
var venvOf = map[string]string{"5": "rpyc5", "6": "rpyc6", "ng": "rpycng"}

// A real rpyc client's first frame tells its layout, and parses as its GETROOT request.
// rpyc-ng's is a 6.x client's; the request it sends after the GETROOT reply (an id_pack
// of four items in that reply suits every version) tells it apart.
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
			layout := want
			if want == DialectNG {
				layout = Dialect6
			}
			if fs.Dialect() != layout {
				t.Fatalf("detected %s, want %s", fs.Dialect().Name(), layout.Name())
			}
			m, err := fs.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			body, _ := m.Body.(brine.Tuple)
			if m.Type != MsgRequest || len(body) != 2 || body[0] != int64(HandleGetRoot) {
				t.Fatalf("first message %+v, want a GETROOT request", m)
			}
			root := brine.Tuple{int64(LabelRemoteRef), brine.Tuple{"rpyc.core.service.SlaveService", int64(1), int64(2), int64(3)}}
			if err := fs.WriteMessage(Message{Type: MsgReply, Seq: m.Seq, Body: root}); err != nil {
				t.Fatal(err)
			}
			if m, err = fs.ReadMessage(); err != nil {
				t.Fatal(err)
			}
			if fs.Dialect() != want {
				t.Fatalf("after %+v: dialect %s, want %s", m, fs.Dialect().Name(), want.Name())
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
	ngOnly := []Message{ // rpyc-ng's brine carries a few type objects by value
		{Type: MsgReply, Seq: 5, Body: brine.Tuple{int64(LabelValue), brine.Tuple{brine.TypeInt, brine.TypeStr, brine.TypeNone, brine.TypeComplex}}},
		{Type: MsgReply, Seq: 6, Body: brine.Tuple{int64(LabelValue), brine.Tuple{bytes.Repeat([]byte("ab"), 600)}}}, // compressed by ng only
	}
	for v, d := range dialects {
		t.Run("rpyc"+v, func(t *testing.T) {
			messages := messages
			if d == DialectNG {
				messages = append(messages, ngOnly...)
			}
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

// rpyc-ng compresses payloads over 1024 bytes (rpyc 5.x/6.x: over 3000), and a stream
// detected as 6.x takes ng's policy once the peer shows it is ng.
func TestNGCompression(t *testing.T) {
	m := Message{Type: MsgReply, Seq: 1, Body: brine.Tuple{int64(LabelValue), bytes.Repeat([]byte("x"), 2000)}}
	flag := func(fs *FrameStream, buf *bytes.Buffer) byte {
		buf.Reset()
		if err := fs.WriteMessage(m); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()[4]
	}
	for _, c := range []struct {
		d    Dialect
		want byte
	}{{Dialect6, 0}, {DialectNG, 1}} {
		var buf bytes.Buffer
		if got := flag(NewFrameStream(pipeRWC{&buf, nopCloser{&buf}}, c.d, DefaultLimits()), &buf); got != c.want {
			t.Errorf("%s: compressed flag %d, want %d", c.d.Name(), got, c.want)
		}
	}

	var in, out bytes.Buffer
	fs := DetectFrameStream(pipeRWC{&in, nopCloser{&out}}, DefaultLimits(), Dialect6, time.Second)
	getroot := Message{Type: MsgRequest, Seq: 0, Body: brine.Tuple{int64(HandleGetRoot), brine.Tuple{int64(LabelValue), brine.Tuple{}}}}
	typeReq := Message{Type: MsgRequest, Seq: 1, Body: brine.Tuple{int64(HandleType), brine.Tuple{int64(LabelValue), brine.Tuple{brine.Tuple{"m.C", int64(1), int64(2), int64(3)}}}}}
	for _, req := range []Message{getroot, typeReq} {
		p, _ := Dialect6.AppendMessage(nil, req)
		in.Write(AppendFrame(nil, p, true))
	}
	if _, err := fs.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	if fs.Dialect() != Dialect6 || flag(fs, &out) != 0 {
		t.Fatalf("after GETROOT: %s", fs.Dialect().Name())
	}
	if _, err := fs.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	if fs.Dialect() != DialectNG || flag(fs, &out) != 1 {
		t.Fatalf("after TYPE: %s", fs.Dialect().Name())
	}
}

func TestSpotNG(t *testing.T) {
	ref3 := brine.Tuple{"m.C", int64(1), int64(2)}
	ref4 := brine.Tuple{"m.C", int64(1), int64(2), int64(3)}
	req := func(h Handler, label Label, args ...any) Message {
		return Message{Type: MsgRequest, Body: brine.Tuple{int64(h), brine.Tuple{int64(label), brine.Tuple(args)}}}
	}
	local := func(ref brine.Tuple) brine.Tuple { return brine.Tuple{int64(LabelLocalRef), ref} }
	for _, c := range []struct {
		name      string
		m         Message
		ng, known bool
	}{
		{"getroot", req(HandleGetRoot, LabelValue), false, false},
		{"ping", req(HandlePing, LabelValue, "abc"), false, false},
		{"bool", req(HandleBool, LabelTuple, local(ref4)), true, true},
		{"type", req(HandleType, LabelValue, ref4), true, true},
		{"subclasscheck", req(HandleSubclassCheck, LabelTuple, local(ref4), brine.Tuple{int64(LabelValue), ref4}), true, true},
		{"getattr 6", req(HandleGetAttr, LabelTuple, local(ref3), brine.Tuple{int64(LabelValue), "x"}), false, true},
		{"getattr ng", req(HandleGetAttr, LabelTuple, local(ref4), brine.Tuple{int64(LabelValue), "x"}), true, true},
		{"inspect 6", req(HandleInspect, LabelValue, ref3), false, true},
		{"inspect ng", req(HandleInspect, LabelValue, ref4), true, true},
		{"del 6", req(HandleDel, LabelTuple, local(ref3), brine.Tuple{int64(LabelValue), int64(1)}), false, true},
		{"del ng", req(HandleDel, LabelValue, ref4, int64(1)), true, true},
		{"call plain", req(HandleCall, LabelValue, ref4), false, false},
		{"reply ref 6", Message{Type: MsgReply, Body: brine.Tuple{int64(LabelRemoteRef), ref3}}, false, true},
		{"reply ref ng", Message{Type: MsgReply, Body: brine.Tuple{int64(LabelRemoteRef), ref4}}, true, true},
		{"reply value", Message{Type: MsgReply, Body: brine.Tuple{int64(LabelValue), ref4}}, false, false},
		{"exception", Message{Type: MsgException, Body: int64(1)}, false, false},
	} {
		if ng, known := SpotNG(c.m); ng != c.ng || known != c.known {
			t.Errorf("%s: SpotNG = %v, %v; want %v, %v", c.name, ng, known, c.ng, c.known)
		}
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
	zw, _ := zlib.NewWriterLevel(&bomb, zlib.BestSpeed)
	zw.Write(make([]byte, 64<<20)) // 64 MiB of zeros in well under the 1 MiB frame limit
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
		zw, _ := zlib.NewWriterLevel(&b, zlib.BestSpeed)
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

// A payload of more than KeepBuffer bytes comes in a buffer from the pool shared by
// every connection: it must not go back to the pool while the reader still uses it
// (another connection's frame would overwrite it: rpyc saw "bad zlib data").
func TestLargePayloadIsNotPooledWhileInUse(t *testing.T) {
	want := make([]byte, 3<<20)
	for i := range want {
		want[i] = byte(i * 7 / 5)
	}
	for _, c := range []*compression{nil, &rpycCompression} {
		frames := appendFrame(nil, want, c)
		frames = appendFrame(frames, want, c)
		r := bufio.NewReader(bytes.NewReader(frames))
		var bufs FrameBuffers
		for i := range 2 {
			got, err := bufs.Read(r, DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			// other connections take large buffers meanwhile and fill them
			var taken [][]byte
			for _, n := range []int{len(frames) / 2, len(want), 4 << 20} {
				for range 4 {
					b := bufpool.Get(n)[:n]
					for j := range b {
						b[j] = 0xEE
					}
					taken = append(taken, b)
				}
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("compressed=%v frame %d: the payload was overwritten while in use", c != nil, i)
			}
			for _, b := range taken {
				bufpool.Put(b)
			}
			bufs.Release()
			if cap(bufs.raw) > KeepBuffer || cap(bufs.inflated) > KeepBuffer {
				t.Fatal("a large buffer is kept after Release: an idle connection would hold it")
			}
		}
	}
}
