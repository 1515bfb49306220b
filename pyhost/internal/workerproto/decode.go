package workerproto

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/big"
	"sync"
	"unicode/utf8"

	"github.com/pybridge/pybridge/bridge/brine"
	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// decoder reads one frame payload. Every container length is checked against the
// bytes left before anything is allocated (an item takes at least one byte), so a
// frame can never make Go allocate more than a small multiple of its own size.
type decoder struct {
	r     bytes.Reader
	dec   *msgpack.Decoder
	lim   Limits
	items int
}

var decoderPool = sync.Pool{New: func() any {
	d := &decoder{}
	d.dec = msgpack.NewDecoder(&d.r)
	return d
}}

func getDecoder(b []byte, lim Limits) *decoder {
	d := decoderPool.Get().(*decoder)
	d.r.Reset(b)
	d.dec.Reset(&d.r)
	d.lim = lim
	d.items = 0
	return d
}

func putDecoder(d *decoder) {
	d.r.Reset(nil)
	decoderPool.Put(d)
}

func (d *decoder) frame() (Frame, error) {
	n, err := d.dec.DecodeArrayLen()
	if err != nil {
		return Frame{}, decodeErr("frame: %v", err)
	}
	if n != 4 {
		return Frame{}, decodeErr("frame is an array of %d items, want 4", n)
	}
	kind, err := d.dec.DecodeUint64()
	if err != nil || kind > math.MaxUint8 {
		return Frame{}, decodeErr("frame kind: %v", orRange(err))
	}
	conn, err := d.dec.DecodeUint64()
	if err != nil {
		return Frame{}, decodeErr("frame conn: %v", err)
	}
	seq, err := d.dec.DecodeInt64()
	if err != nil {
		return Frame{}, decodeErr("frame seq: %v", err)
	}
	body, err := d.value(0)
	if err != nil {
		return Frame{}, err
	}
	if d.r.Len() != 0 {
		return Frame{}, decodeErr("%d bytes after the frame", d.r.Len())
	}
	return Frame{Kind: Kind(kind), Conn: conn, Seq: seq, Body: body}, nil
}

func orRange(err error) any {
	if err == nil {
		return "out of range"
	}
	return err
}

// container checks a container of n items (each taking at least minBytes) against the
// limits and the bytes left.
func (d *decoder) container(n, minBytes, depth int) error {
	if depth >= d.lim.MaxDepth {
		return &LimitError{Limit: "MaxDepth", Max: d.lim.MaxDepth}
	}
	if n < 0 || n*minBytes > d.r.Len() {
		return decodeErr("container of %d items in %d bytes", n, d.r.Len())
	}
	d.items += n
	if d.items > d.lim.MaxItems {
		return &LimitError{Limit: "MaxItems", Max: d.lim.MaxItems, Got: d.items}
	}
	return nil
}

func (d *decoder) value(depth int) (any, error) {
	c, err := d.dec.PeekCode()
	if err != nil {
		return nil, decodeErr("truncated value: %v", err)
	}
	switch {
	case msgpcode.IsFixedNum(c), c == msgpcode.Int8, c == msgpcode.Int16, c == msgpcode.Int32,
		c == msgpcode.Int64, c == msgpcode.Uint8, c == msgpcode.Uint16, c == msgpcode.Uint32:
		return d.wrap(d.dec.DecodeInt64())
	case msgpcode.IsString(c):
		if err := d.room(c); err != nil {
			return nil, err
		}
		s, err := d.dec.DecodeString()
		if err != nil {
			return nil, decodeErr("%v", err)
		}
		if !utf8.ValidString(s) {
			return nil, decodeErr("str is not valid UTF-8")
		}
		return s, nil
	case msgpcode.IsFixedArray(c), c == msgpcode.Array16, c == msgpcode.Array32:
		return d.array(depth)
	case c == msgpcode.Nil:
		return nil, d.dec.Skip()
	case c == msgpcode.True, c == msgpcode.False:
		return d.wrap(d.dec.DecodeBool())
	case c == msgpcode.Double, c == msgpcode.Float:
		return d.wrap(d.dec.DecodeFloat64())
	case msgpcode.IsBin(c):
		if err := d.room(c); err != nil {
			return nil, err
		}
		return d.wrap(d.dec.DecodeBytes())
	case c == msgpcode.Uint64:
		u, err := d.dec.DecodeUint64()
		if err != nil {
			return nil, decodeErr("%v", err)
		}
		if u > math.MaxInt64 {
			return new(big.Int).SetUint64(u), nil
		}
		return int64(u), nil
	case msgpcode.IsFixedMap(c), c == msgpcode.Map16, c == msgpcode.Map32:
		return d.dict(depth)
	case msgpcode.IsExt(c):
		return d.ext(depth)
	}
	return nil, decodeErr("unknown msgpack code 0x%02x", c)
}

func (d *decoder) wrap(v any, err error) (any, error) {
	if err != nil {
		return nil, decodeErr("%v", err)
	}
	return v, nil
}

// room checks that a str or bin header announces no more bytes than are left.
func (d *decoder) room(c byte) error {
	b := d.peek(5)
	var n int
	switch {
	case msgpcode.IsFixedString(c):
		n = int(c & msgpcode.FixedStrMask)
	case (c == msgpcode.Str8 || c == msgpcode.Bin8) && len(b) >= 2:
		n = int(b[1]) + 1
	case (c == msgpcode.Str16 || c == msgpcode.Bin16) && len(b) >= 3:
		n = int(binary.BigEndian.Uint16(b[1:])) + 2
	case (c == msgpcode.Str32 || c == msgpcode.Bin32) && len(b) >= 5:
		n = int(binary.BigEndian.Uint32(b[1:])) + 4
	default:
		return decodeErr("truncated str/bin header")
	}
	if n+1 > d.r.Len() {
		return decodeErr("str/bin of %d bytes in %d", n, d.r.Len())
	}
	return nil
}

// peek returns up to n unread bytes without consuming them.
func (d *decoder) peek(n int) []byte {
	var b [9]byte
	off, _ := d.r.Seek(0, 1)
	m, _ := d.r.ReadAt(b[:n], off)
	return b[:m]
}

func (d *decoder) arrayItems(depth int) ([]any, error) {
	n, err := d.dec.DecodeArrayLen()
	if err != nil {
		return nil, decodeErr("%v", err)
	}
	if err := d.container(n, 1, depth); err != nil {
		return nil, err
	}
	items := make([]any, n)
	for i := range items {
		if items[i], err = d.value(depth + 1); err != nil {
			return nil, err
		}
	}
	return items, nil
}

func (d *decoder) array(depth int) (any, error) {
	items, err := d.arrayItems(depth)
	if err != nil {
		return nil, err
	}
	return brine.Tuple(items), nil
}

// dict decodes a map into map[string]any when every key is a str, else map[any]any.
// Keys Go cannot hash (tuples, bytes, frozensets) are refused: Python allows them, Go
// maps do not.
func (d *decoder) dict(depth int) (any, error) {
	n, err := d.dec.DecodeMapLen()
	if err != nil {
		return nil, decodeErr("%v", err)
	}
	if err := d.container(2*n, 1, depth); err != nil {
		return nil, err
	}
	sm := make(map[string]any, n)
	var am map[any]any
	for i := 0; i < n; i++ {
		k, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		if am == nil {
			if s, ok := k.(string); ok {
				sm[s] = v
				continue
			}
			am = make(map[any]any, n)
			for s, x := range sm {
				am[s] = x
			}
		}
		if !hashable(k) {
			return nil, decodeErr("dict key of type %T cannot be a Go map key", k)
		}
		am[k] = v
	}
	if am != nil {
		return am, nil
	}
	return sm, nil
}

func hashable(k any) bool {
	switch k := k.(type) {
	case nil, bool, int64, float64, complex128, string, *big.Int:
		return true
	case brine.Slice:
		return hashable(k.Start) && hashable(k.Stop) && hashable(k.Step)
	case brine.Type:
		return true
	}
	return k == brine.Ellipsis || k == brine.NotImplemented
}

func (d *decoder) ext(depth int) (any, error) {
	id, n, err := d.dec.DecodeExtHeader()
	if err != nil {
		return nil, decodeErr("%v", err)
	}
	if n > d.r.Len() {
		return nil, decodeErr("extension of %d bytes in %d", n, d.r.Len())
	}
	switch id {
	case extBigInt:
		return d.bigInt(n)
	case extComplex:
		if n != 16 {
			return nil, decodeErr("complex of %d bytes", n)
		}
		var b [16]byte
		if err := d.dec.ReadFull(b[:]); err != nil {
			return nil, decodeErr("%v", err)
		}
		return complex(math.Float64frombits(binary.BigEndian.Uint64(b[:8])),
			math.Float64frombits(binary.BigEndian.Uint64(b[8:]))), nil
	case extFrozenSet, extSlice, extList:
		start := d.r.Len()
		items, err := d.arrayItems(depth)
		if err != nil {
			return nil, err
		}
		if start-d.r.Len() != n {
			return nil, decodeErr("extension %d: payload of %d bytes holds %d", id, n, start-d.r.Len())
		}
		switch id {
		case extFrozenSet:
			return brine.FrozenSet(items), nil
		case extList:
			return items, nil
		}
		if len(items) != 3 {
			return nil, decodeErr("slice of %d items", len(items))
		}
		return brine.Slice{Start: items[0], Stop: items[1], Step: items[2]}, nil
	case extEllipsis, extNotImplemented:
		if n != 0 {
			return nil, decodeErr("extension %d with %d bytes", id, n)
		}
		if id == extEllipsis {
			return brine.Ellipsis, nil
		}
		return brine.NotImplemented, nil
	case extType:
		if n > 32 {
			return nil, decodeErr("type name of %d bytes", n)
		}
		b := make([]byte, n)
		if err := d.dec.ReadFull(b); err != nil {
			return nil, decodeErr("%v", err)
		}
		t, ok := brine.TypeNamed(string(b))
		if !ok {
			return nil, decodeErr("no brine tag for type %q", b)
		}
		return t, nil
	}
	return nil, decodeErr("unknown extension type %d", id)
}

func (d *decoder) bigInt(n int) (any, error) {
	if n == 0 || n > maxIntDigits {
		return nil, decodeErr("integer of %d digits", n)
	}
	b := make([]byte, n)
	if err := d.dec.ReadFull(b); err != nil {
		return nil, decodeErr("%v", err)
	}
	digits := b
	if digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 {
		return nil, decodeErr("integer %q", b)
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return nil, decodeErr("integer %q", b)
		}
	}
	i, ok := new(big.Int).SetString(string(b), 10)
	if !ok {
		return nil, decodeErr("integer %q", b)
	}
	return brine.NormalizeInt(i), nil
}
