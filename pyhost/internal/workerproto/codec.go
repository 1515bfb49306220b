// Package workerproto is the codec of the worker protocol (docs/worker-protocol.md):
// frames of a 4-byte big-endian length and a msgpack payload [kind, conn, seq, body]
// between pybridge's Go side and a spawned Python worker. Only package pyhost uses it.
package workerproto

import (
	"encoding/binary"
	"fmt"
	"io"
	"strconv"

	"github.com/pybridge/pybridge/internal/bufpool"
)

// How RPyC messages and the worker's control messages cross the
// socketpair (docs/worker-protocol.md). A frame is a 4-byte big-endian payload length
// and a msgpack payload [kind, conn, seq, body]. Bodies are values of the brine value
// model (bridge/brine/value.go) plus, for mode "go", lists ([]any, ext 7) and dicts
// (maps). Values are encoded as msgpack-python packs them, so both sides produce the
// same bytes for the same value (testdata/vectors.py checks this against the real
// msgpack).

// Kind is the first field of a worker frame.
type Kind uint8

const (
	KindRequest   Kind = 1  // an RPyC request of one connection
	KindReply     Kind = 2  // an RPyC reply
	KindException Kind = 3  // an RPyC exception (vinegar tuple)
	KindOpen      Kind = 16 // Go → worker: start a connection; body: the OPEN map
	KindClose     Kind = 18 // both: a connection ended; body: nil or a reason string
	KindPing      Kind = 20 // Go → worker: health check; answered by PONG with the same seq and body
	KindPong      Kind = 21 // worker → Go
	KindShutdown  Kind = 22 // Go → worker: close every connection and exit 0
	KindHello     Kind = 23 // worker → Go: the first frame, sent once the worker is ready
	KindEnded     Kind = 24 // serving worker → Go: a handed client connection ended; body: nil or a reason string
)

var kindNames = map[Kind]string{
	KindRequest: "REQUEST", KindReply: "REPLY", KindException: "EXCEPTION",
	KindOpen: "OPEN", KindClose: "CLOSE", KindPing: "PING", KindPong: "PONG",
	KindShutdown: "SHUTDOWN", KindHello: "HELLO", KindEnded: "ENDED",
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return "KIND(" + strconv.Itoa(int(k)) + ")"
}

// Frame is one worker frame.
type Frame struct {
	Kind Kind
	Conn uint64 // connection id; 0 for worker-wide control frames
	Seq  int64  // the RPyC sequence number, or the PING counter
	Body any
}

// Limits bound what the codec accepts in either direction. Go enforces the client's
// wire limits before a message reaches the worker (package wire); these bound the
// worker socket itself, so a confused or hostile worker cannot make Go allocate
// without end.
type Limits struct {
	MaxFrame int // payload bytes of one frame
	MaxDepth int // nesting of containers (tuple, list, dict, frozenset, slice)
	MaxItems int // container items in one frame, all levels counted
}

// DefaultLimits are used wherever a zero Limits is given (a function, as
// wire.DefaultLimits: nobody can change them for everyone). Boxing wraps a client's
// values: depth and items are well above brine's limits.
func DefaultLimits() Limits { return Limits{MaxFrame: 1 << 30, MaxDepth: 1024, MaxItems: 1 << 26} }

// OrDefault fills the zero fields of l with DefaultLimits.
func (l Limits) OrDefault() Limits {
	if l.MaxFrame <= 0 {
		l.MaxFrame = DefaultLimits().MaxFrame
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultLimits().MaxDepth
	}
	if l.MaxItems <= 0 {
		l.MaxItems = DefaultLimits().MaxItems
	}
	return l
}

// maxIntDigits bounds the decimal digits of an ext 1 integer: parsing is quadratic in
// the length, and CPython itself refuses to print ints longer than 4300 digits by
// default (sys.set_int_max_str_digits).
const maxIntDigits = 1 << 16

// msgpack extension type codes of the worker protocol.
const (
	extBigInt         int8 = 1
	extComplex        int8 = 2
	extFrozenSet      int8 = 3
	extSlice          int8 = 4
	extEllipsis       int8 = 5
	extNotImplemented int8 = 6
	extList           int8 = 7
	extType           int8 = 8 // a type object rpyc-ng's brine carries (brine.Type): its name
)

// CodecError reports a frame or value the worker codec cannot carry.
type CodecError struct {
	Op  string // "encode" or "decode"
	Msg string
}

func (e *CodecError) Error() string { return "pyhost: " + e.Op + ": " + e.Msg }

// LimitError reports a frame that exceeds one of the Limits.
type LimitError struct {
	Limit string // "MaxFrame", "MaxDepth" or "MaxItems"
	Max   int
	Got   int // the offending size where known, else 0
}

func (e *LimitError) Error() string {
	if e.Got > 0 {
		return fmt.Sprintf("pyhost: frame exceeds %s (%d > %d)", e.Limit, e.Got, e.Max)
	}
	return fmt.Sprintf("pyhost: frame exceeds %s (%d)", e.Limit, e.Max)
}

func decodeErr(format string, args ...any) error {
	return &CodecError{Op: "decode", Msg: fmt.Sprintf(format, args...)}
}

func encodeErr(format string, args ...any) error {
	return &CodecError{Op: "encode", Msg: fmt.Sprintf(format, args...)}
}

// EncodeFrame returns f as a whole frame: length prefix and payload.
func EncodeFrame(f Frame, lim Limits) ([]byte, error) {
	e := getEncoder(lim)
	defer putEncoder(e)
	b, err := e.frame(f)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), b...), nil
}

// DecodeFrame decodes one frame's payload (without its length prefix).
func DecodeFrame(payload []byte, lim Limits) (Frame, error) {
	lim = lim.OrDefault()
	if len(payload) > lim.MaxFrame {
		return Frame{}, &LimitError{Limit: "MaxFrame", Max: lim.MaxFrame, Got: len(payload)}
	}
	d := getDecoder(payload, lim)
	defer putDecoder(d)
	return d.frame()
}

// ReadFrame reads one frame from r into buf (grown as needed, large buffers from the
// shared pool) and decodes it. It returns the buffer for reuse; decoded values never
// alias it (a large one can go back to the pool: bufpool.Put).
func ReadFrame(r io.Reader, buf []byte, lim Limits) (Frame, []byte, error) {
	lim = lim.OrDefault()
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Frame{}, buf, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(lim.MaxFrame) {
		return Frame{}, buf, &LimitError{Limit: "MaxFrame", Max: lim.MaxFrame, Got: int(n)}
	}
	if cap(buf) < int(n) {
		bufpool.Put(buf)
		buf = bufpool.Get(int(n))
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, buf, err
	}
	f, err := DecodeFrame(buf, lim)
	return f, buf, err
}

// Write encodes f into a pooled buffer and hands the whole frame (length prefix
// included) to write; the bytes are valid only during the call.
func Write(f Frame, lim Limits, write func([]byte) error) error {
	e := getEncoder(lim)
	defer putEncoder(e)
	b, err := e.frame(f)
	if err != nil {
		return err
	}
	return write(b)
}
