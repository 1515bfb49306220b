package brine

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"unicode/utf8"
)

// Limits bound what one decoded value may hold, so a hostile peer cannot exhaust
// memory or stack with a few bytes.
type Limits struct {
	MaxDepth     int // nesting of tuples, frozensets and slices
	MaxItems     int // items in one value, all levels together
	MaxIntDigits int // decimal digits of one int (CPython's own default limit is 4300)
}

// DefaultLimits are generous for real traffic and small enough to stop abuse.
// (rpyc's own brine cannot dump more than ~490 levels, and carries millions of items.)
var DefaultLimits = Limits{MaxDepth: 256, MaxItems: 1 << 24, MaxIntDigits: 4300}

// DecodeError reports malformed or over-limit brine input.
type DecodeError struct {
	Offset int
	Msg    string
	Limit  bool // well-formed so far, but over a Limits bound
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("brine: at byte %d: %s", e.Offset, e.Msg)
}

// Load decodes one brine value occupying all of b, with DefaultLimits.
func Load(b []byte) (any, error) { return LoadLimited(b, DefaultLimits) }

// LoadLimited decodes one brine value occupying all of b.
func LoadLimited(b []byte, lim Limits) (any, error) {
	d := decoder{buf: b, lim: lim}
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	if d.pos != len(b) {
		return nil, d.errorf("%d trailing bytes", len(b)-d.pos)
	}
	return v, nil
}

type decoder struct {
	buf   []byte
	pos   int
	items int
	lim   Limits
}

func (d *decoder) errorf(format string, args ...any) error {
	return &DecodeError{Offset: d.pos, Msg: fmt.Sprintf(format, args...)}
}

func (d *decoder) limitf(format string, args ...any) error {
	return &DecodeError{Offset: d.pos, Msg: fmt.Sprintf(format, args...), Limit: true}
}

// LoadPrefix decodes the one brine value at the start of b and says how many bytes it
// took; what follows is left alone.
func LoadPrefix(b []byte, lim Limits) (any, int, error) {
	d := decoder{buf: b, lim: lim}
	v, err := d.value(0)
	return v, d.pos, err
}

func (d *decoder) take(n int) ([]byte, error) {
	if n < 0 || n > len(d.buf)-d.pos {
		return nil, d.errorf("truncated: want %d bytes, have %d", n, len(d.buf)-d.pos)
	}
	b := d.buf[d.pos : d.pos+n]
	d.pos += n
	return b, nil
}

func (d *decoder) length(tag byte, short, long byte) (int, error) {
	if tag == short {
		b, err := d.take(1)
		if err != nil {
			return 0, err
		}
		return int(b[0]), nil
	}
	b, err := d.take(4)
	if err != nil {
		return 0, err
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(math.MaxInt32) {
		return 0, d.errorf("length %d too large", n)
	}
	return int(n), nil
}

func (d *decoder) value(depth int) (any, error) {
	d.items++
	if d.lim.MaxItems > 0 && d.items > d.lim.MaxItems {
		return nil, d.limitf("more than %d items", d.lim.MaxItems)
	}
	b, err := d.take(1)
	if err != nil {
		return nil, err
	}
	tag := b[0]
	switch {
	case tag >= tagImmFirst && tag <= tagImmLast:
		return int64(tag) - immIntOffset, nil
	case tag >= tagBytes1 && tag <= tagBytes4:
		return d.bytes(int(tag-tagBytes1) + 1)
	case tag >= tagTuple1 && tag <= tagTuple4:
		return d.tuple(int(tag-tagTuple1)+1, depth)
	}
	switch tag {
	case tagNone:
		return nil, nil
	case tagEmptyBytes:
		return []byte{}, nil
	case tagEmptyTuple:
		return Tuple{}, nil
	case tagTrue:
		return true, nil
	case tagFalse:
		return false, nil
	case tagNotImplemented:
		return NotImplemented, nil
	case tagEllipsis:
		return Ellipsis, nil
	case tagStr:
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		raw, ok := v.([]byte)
		if !ok {
			return nil, d.errorf("str tag not followed by bytes")
		}
		if !utf8.Valid(raw) {
			return nil, d.errorf("str is not valid UTF-8")
		}
		return string(raw), nil
	case tagBytesL1, tagBytesL4:
		n, err := d.length(tag, tagBytesL1, tagBytesL4)
		if err != nil {
			return nil, err
		}
		return d.bytes(n)
	case tagTupleL1, tagTupleL4:
		n, err := d.length(tag, tagTupleL1, tagTupleL4)
		if err != nil {
			return nil, err
		}
		return d.tuple(n, depth)
	case tagIntL1, tagIntL4:
		n, err := d.length(tag, tagIntL1, tagIntL4)
		if err != nil {
			return nil, err
		}
		return d.int(n)
	case tagFloat:
		raw, err := d.take(8)
		if err != nil {
			return nil, err
		}
		return math.Float64frombits(binary.BigEndian.Uint64(raw)), nil
	case tagComplex:
		raw, err := d.take(16)
		if err != nil {
			return nil, err
		}
		re := math.Float64frombits(binary.BigEndian.Uint64(raw))
		im := math.Float64frombits(binary.BigEndian.Uint64(raw[8:]))
		return complex(re, im), nil
	case tagSlice:
		t, err := d.nested(depth)
		if err != nil {
			return nil, err
		}
		if len(t) != 3 {
			return nil, d.errorf("slice of %d items", len(t))
		}
		return Slice{Start: t[0], Stop: t[1], Step: t[2]}, nil
	case tagFrozenSet:
		t, err := d.nested(depth)
		if err != nil {
			return nil, err
		}
		return FrozenSet(t), nil
	case tagNoneType, tagIntType, tagBoolType, tagFloatType, tagBytesType, tagStrType,
		tagComplexType, tagNotImplementedType, tagEllipsisType:
		return Type{tag}, nil
	}
	d.pos--
	return nil, d.errorf("unknown tag 0x%02x", tag)
}

func (d *decoder) bytes(n int) ([]byte, error) {
	raw, err := d.take(n)
	if err != nil {
		return nil, err
	}
	out := make([]byte, n)
	copy(out, raw)
	return out, nil
}

// nested reads the tuple that follows a slice or frozenset tag.
func (d *decoder) nested(depth int) (Tuple, error) {
	v, err := d.value(depth + 1)
	if err != nil {
		return nil, err
	}
	t, ok := v.(Tuple)
	if !ok {
		return nil, d.errorf("expected a tuple, got %T", v)
	}
	return t, nil
}

func (d *decoder) tuple(n, depth int) (Tuple, error) {
	if d.lim.MaxDepth > 0 && depth >= d.lim.MaxDepth {
		return nil, d.limitf("nested deeper than %d", d.lim.MaxDepth)
	}
	// every item takes at least one byte: a count larger than what is left is a lie
	if n > len(d.buf)-d.pos {
		return nil, d.errorf("tuple of %d items in %d bytes", n, len(d.buf)-d.pos)
	}
	t := make(Tuple, n)
	for i := range t {
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		t[i] = v
	}
	return t, nil
}

func (d *decoder) int(n int) (any, error) {
	if d.lim.MaxIntDigits > 0 && n > d.lim.MaxIntDigits+1 {
		return nil, d.limitf("int of %d digits exceeds %d", n, d.lim.MaxIntDigits)
	}
	raw, err := d.take(n)
	if err != nil {
		return nil, err
	}
	if digits := n - btoi(n > 0 && raw[0] == '-'); d.lim.MaxIntDigits > 0 && digits > d.lim.MaxIntDigits {
		return nil, d.limitf("int of %d digits exceeds %d", digits, d.lim.MaxIntDigits)
	}
	if i, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		return i, nil
	}
	if !validDecimal(raw) {
		return nil, d.errorf("malformed int %q", truncate(raw))
	}
	i, ok := new(big.Int).SetString(string(raw), 10)
	if !ok {
		return nil, d.errorf("malformed int %q", truncate(raw))
	}
	return NormalizeInt(i), nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// validDecimal accepts what Python's str(int) produces: an optional '-' and digits.
func validDecimal(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func truncate(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}
