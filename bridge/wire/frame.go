package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"

	"github.com/klauspost/compress/zlib"

	"github.com/pybridge/pybridge/bridge/brine"
	"github.com/pybridge/pybridge/internal/bufpool"
)

// Frame layout (rpyc/core/channel.py): a 4-byte big-endian payload length, a 1-byte
// "compressed" flag, the payload, and one '\n' that rpyc adds so line-buffered pipes
// flush. Payloads over CompressionThreshold bytes are zlib-compressed (level 1) when
// compression is on (rpyc-ng: over 1024 bytes, zlib's default level); a receiver
// accepts both.
const (
	frameHeaderLen       = 5
	CompressionThreshold = 3000
	compressionLevel     = 1
	flusher              = '\n'
)

// compression is which payloads a sender compresses, and how hard.
type compression struct {
	threshold int // payloads longer than this are compressed
	writers   *sync.Pool
}

var (
	rpycCompression = compression{CompressionThreshold, zwriterPool(compressionLevel)}
	ngCompression   = compression{1024, zwriterPool(zlib.DefaultCompression)}
)

// Limits bound what a peer may send.
type Limits struct {
	MaxFrame    int          // payload bytes on the wire, compressed or not
	MaxInflated int          // bytes a compressed payload may inflate to
	Value       brine.Limits // depth, items and int size of the decoded body
}

// DefaultLimits accept any message rpyc's own tests send (hundreds of MiB) while a zlib
// bomb or a lying length fails fast with an error.
func DefaultLimits() Limits {
	return Limits{MaxFrame: 512 << 20, MaxInflated: 512 << 20, Value: brine.DefaultLimits}
}

var (
	// ErrFrameTooLarge: a frame's length exceeds Limits.MaxFrame.
	ErrFrameTooLarge = errors.New("rpyc frame exceeds the size limit")
	// ErrInflateTooLarge: a compressed payload inflates past Limits.MaxInflated.
	ErrInflateTooLarge = errors.New("compressed rpyc frame inflates past the size limit")
)

// FrameError reports a malformed frame.
type FrameError struct {
	Msg string
	Err error
}

func (e *FrameError) Error() string {
	if e.Err != nil {
		return "rpyc frame: " + e.Msg + ": " + e.Err.Error()
	}
	return "rpyc frame: " + e.Msg
}

func (e *FrameError) Unwrap() error { return e.Err }

// ReadFrame reads one frame from r and returns its payload, inflated. buf is reused
// for the payload when large enough: ReadFrame takes it over (outgrown, a large one
// goes to the shared pool of buffers), and the caller uses only what it returns.
func ReadFrame(r *bufio.Reader, lim Limits, buf []byte) ([]byte, error) {
	var bufs FrameBuffers
	bufs.raw = buf
	return bufs.Read(r, lim)
}

// FrameBuffers are the buffers a reader of frames reuses from one frame to the next:
// the raw payload and the inflated one. Memory follows what actually arrives: a
// frame's claimed length reserves nothing up front, a compressed payload is inflated
// step by step against Limits.MaxInflated, and buffers over KeepBuffer bytes come from
// (and at Release go back to) a pool shared by all connections, so a connection idle
// after a large message keeps none.
type FrameBuffers struct {
	hdr           [frameHeaderLen]byte // here, not on Read's stack: io.ReadFull would move it to the heap
	raw, inflated []byte
	wire          int // bytes the last frame read took on the wire (header, payload, newline)
	// the last sizes, when over KeepBuffer: the next frame starts from a pooled buffer
	// that large rather than growing to it again (a connection that carried one large
	// message is likely to carry another)
	lastRaw, lastInflated int
}

// KeepBuffer is the largest buffer FrameBuffers keeps between frames.
const KeepBuffer = 1 << 20

// LargeFrame is the payload size (raw or inflated) past which OnLargeFrame is called.
const LargeFrame = 64 << 20

// OnLargeFrame, when set, is called (from the reading goroutine) after a frame of more
// than LargeFrame bytes was read, refused or not: a long-running server uses it to give
// the memory back to the OS soon after.
var OnLargeFrame func(size int)

// growStep is the first allocation for a payload or its inflation, and the smallest
// growth after it.
const growStep = 64 << 10

// Read reads one frame and returns its payload, inflated; it stays valid until the
// next Read or Release.
func (b *FrameBuffers) Read(r *bufio.Reader, lim Limits) ([]byte, error) {
	hdr := b.hdr[:]
	if _, err := io.ReadFull(r, hdr); err != nil {
		if err == io.ErrUnexpectedEOF {
			return nil, &FrameError{Msg: "truncated header", Err: err}
		}
		return nil, err // io.EOF: the peer closed between frames
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	compressed := hdr[4]
	if lim.MaxFrame > 0 && uint64(n) > uint64(lim.MaxFrame) {
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrFrameTooLarge, n, lim.MaxFrame)
	}
	if compressed > 1 {
		return nil, &FrameError{Msg: fmt.Sprintf("compressed flag %d", compressed)}
	}
	raw, err := readN(r, int(n)+1, reuse(b.raw, b.lastRaw))
	b.raw, b.lastRaw = raw[:0], large(raw)
	b.wire = frameHeaderLen + len(raw)
	if len(raw) > LargeFrame && OnLargeFrame != nil {
		defer OnLargeFrame(len(raw))
	}
	if err != nil {
		return nil, &FrameError{Msg: "truncated payload", Err: err}
	}
	if raw[n] != flusher {
		return nil, &FrameError{Msg: fmt.Sprintf("frame does not end with a newline (0x%02x)", raw[n])}
	}
	payload := raw[:n]
	if compressed == 0 {
		return payload, nil
	}
	out, err := inflate(payload, lim.MaxInflated, reuse(b.inflated, b.lastInflated))
	b.inflated, b.lastInflated = out[:0], large(out)
	if len(out) > LargeFrame && OnLargeFrame != nil {
		defer OnLargeFrame(len(out))
	}
	return out, err
}

// Release gives the buffers over KeepBuffer back to the shared pool once the last
// payload read is no longer used, so that a connection idle after a large message
// holds only small ones. (Until then Read reuses them.)
func (b *FrameBuffers) Release() {
	b.raw, b.inflated = keep(b.raw), keep(b.inflated)
}

// reuse is buf, or when there is none and the last frame needed more than KeepBuffer,
// a pooled buffer of that size.
func reuse(buf []byte, last int) []byte {
	if buf == nil && last > KeepBuffer {
		return bufpool.Get(last)
	}
	return buf
}

// large is len(b) when it is over KeepBuffer, else 0.
func large(b []byte) int {
	if len(b) > KeepBuffer {
		return len(b)
	}
	return 0
}

// keep is b emptied for the next frame, or nil when it is over KeepBuffer (then it goes
// back to the shared pool of large buffers).
func keep(b []byte) []byte {
	if cap(b) > KeepBuffer {
		bufpool.Put(b)
		return nil
	}
	return b[:0]
}

// readN reads exactly n bytes into buf (grown as they arrive, never ahead of them).
func readN(r io.Reader, n int, buf []byte) ([]byte, error) {
	buf = buf[:0]
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = grow(buf, n)
		}
		m, err := r.Read(buf[len(buf):min(cap(buf), n)])
		buf = buf[:len(buf)+m]
		if err != nil && len(buf) < n {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return buf, err
		}
	}
	return buf, nil
}

// grow returns buf with room for more, doubling (at least growStep), at most limit
// (large buffers come from the shared pool, and may hold more).
func grow(buf []byte, limit int) []byte {
	c := min(max(2*cap(buf), growStep), limit)
	nb := bufpool.Get(c)[:len(buf)]
	copy(nb, buf)
	bufpool.Put(buf)
	return nb
}

var zreaders sync.Pool // zlib readers, reset for each payload

func zlibReader(payload []byte) (io.ReadCloser, error) {
	src := bytes.NewReader(payload)
	if z, ok := zreaders.Get().(io.ReadCloser); ok {
		if err := z.(zlib.Resetter).Reset(src, nil); err != nil {
			return nil, &FrameError{Msg: "bad zlib header", Err: err}
		}
		return z, nil
	}
	z, err := zlib.NewReader(src)
	if err != nil {
		return nil, &FrameError{Msg: "bad zlib header", Err: err}
	}
	return z, nil
}

// inflateDirect is how far inflate fills its output directly; past it, the rest is
// counted first (in a small scratch buffer) and the output allocated at its exact
// size, so a payload over the limit costs no memory beyond this, only inflation time.
const inflateDirect = 16 << 20

// inflate decompresses payload into dst (reused), refusing an output of more than max
// bytes.
func inflate(payload []byte, max int, dst []byte) ([]byte, error) {
	limit := max
	if limit <= 0 {
		limit = math.MaxInt - 1
	}
	zr, err := zlibReader(payload)
	if err != nil {
		return dst, err
	}
	dst = dst[:0]
	for {
		if len(dst) == cap(dst) {
			if len(dst) >= min(inflateDirect, limit+1) {
				break
			}
			dst = grow(dst, min(inflateDirect, limit+1))
		}
		n, err := zr.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			zreaders.Put(zr)
			if len(dst) > limit {
				return dst, fmt.Errorf("%w (limit %d)", ErrInflateTooLarge, max)
			}
			return dst, nil
		}
		if err != nil {
			return dst, &FrameError{Msg: "bad zlib data", Err: err}
		}
	}
	// a large output: count it to the end (or past the limit) before allocating it
	total := int64(len(dst))
	var scratch [32 << 10]byte
	for {
		n, err := zr.Read(scratch[:])
		total += int64(n)
		if total > int64(limit) {
			zreaders.Put(zr)
			return nil, fmt.Errorf("%w (limit %d)", ErrInflateTooLarge, max)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, &FrameError{Msg: "bad zlib data", Err: err}
		}
	}
	if zr, err = zlibReader(payload); err != nil {
		return nil, err
	}
	defer zreaders.Put(zr)
	out := make([]byte, total)
	if _, err := io.ReadFull(zr, out); err != nil {
		return nil, &FrameError{Msg: "bad zlib data", Err: err}
	}
	return out, nil
}

func zwriterPool(level int) *sync.Pool {
	return &sync.Pool{New: func() any {
		w, _ := zlib.NewWriterLevel(nil, level)
		return w
	}}
}

// AppendFrame appends the frame carrying payload to dst, compressing it as rpyc does
// when compress is set and the payload is over CompressionThreshold bytes.
func AppendFrame(dst, payload []byte, compress bool) []byte {
	if !compress {
		return appendFrame(dst, payload, nil)
	}
	return appendFrame(dst, payload, &rpycCompression)
}

// appendFrame is AppendFrame with a dialect's compression (nil: none).
func appendFrame(dst, payload []byte, c *compression) []byte {
	if c != nil && len(payload) > c.threshold {
		start := len(dst)
		dst = append(dst, 0, 0, 0, 0, 1)
		buf := bytes.NewBuffer(dst)
		zw := c.writers.Get().(*zlib.Writer)
		zw.Reset(buf)
		zw.Write(payload)
		zw.Close()
		c.writers.Put(zw)
		dst = buf.Bytes()
		binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-frameHeaderLen))
		return append(dst, flusher)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	dst = append(dst, 0)
	dst = append(dst, payload...)
	return append(dst, flusher)
}
