package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zlib"

	"github.com/pybridge/pybridge/bridge/brine"
)

// Frame layout (rpyc/core/channel.py): a 4-byte big-endian payload length, a 1-byte
// "compressed" flag, the payload, and one '\n' that rpyc adds so line-buffered pipes
// flush. Payloads over CompressionThreshold bytes are zlib-compressed (level 1) when
// compression is on; a receiver accepts both.
const (
	frameHeaderLen       = 5
	CompressionThreshold = 3000
	compressionLevel     = 1
	flusher              = '\n'
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
// for the payload when large enough.
func ReadFrame(r *bufio.Reader, lim Limits, buf []byte) ([]byte, error) {
	var hdr [frameHeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
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
	total := int(n) + 1
	if cap(buf) < total {
		buf = make([]byte, total)
	}
	buf = buf[:total]
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, &FrameError{Msg: "truncated payload", Err: err}
	}
	if buf[n] != flusher {
		return nil, &FrameError{Msg: fmt.Sprintf("frame does not end with a newline (0x%02x)", buf[n])}
	}
	payload := buf[:n]
	if compressed == 0 {
		return payload, nil
	}
	return inflate(payload, lim.MaxInflated)
}

func inflate(payload []byte, max int) ([]byte, error) {
	zr, err := zlib.NewReader(bytes.NewReader(payload))
	if err != nil {
		return nil, &FrameError{Msg: "bad zlib header", Err: err}
	}
	defer zr.Close()
	var out bytes.Buffer
	limit := int64(max)
	if max <= 0 {
		limit = 1<<63 - 1
	}
	n, err := io.Copy(&out, io.LimitReader(zr, limit))
	if err != nil {
		return nil, &FrameError{Msg: "bad zlib data", Err: err}
	}
	if n == limit {
		// one more byte means the payload is over the limit
		var one [1]byte
		if k, _ := zr.Read(one[:]); k > 0 {
			return nil, fmt.Errorf("%w (limit %d)", ErrInflateTooLarge, max)
		}
	}
	return out.Bytes(), nil
}

var zwriters = sync.Pool{New: func() any {
	w, _ := zlib.NewWriterLevel(nil, compressionLevel)
	return w
}}

// AppendFrame appends the frame carrying payload to dst, compressing it as rpyc does
// when compress is set and the payload is over CompressionThreshold bytes.
func AppendFrame(dst, payload []byte, compress bool) []byte {
	if compress && len(payload) > CompressionThreshold {
		start := len(dst)
		dst = append(dst, 0, 0, 0, 0, 1)
		buf := bytes.NewBuffer(dst)
		zw := zwriters.Get().(*zlib.Writer)
		zw.Reset(buf)
		zw.Write(payload)
		zw.Close()
		zwriters.Put(zw)
		dst = buf.Bytes()
		binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-frameHeaderLen))
		return append(dst, flusher)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	dst = append(dst, 0)
	dst = append(dst, payload...)
	return append(dst, flusher)
}
