package brine

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strconv"
)

// UnsupportedTypeError reports a Go value brine cannot carry (in rpyc such values
// travel by reference, never by value).
type UnsupportedTypeError struct{ Type reflect.Type }

func (e *UnsupportedTypeError) Error() string {
	return fmt.Sprintf("brine: cannot dump a value of type %v", e.Type)
}

// Dump encodes v as brine, byte for byte as rpyc's brine.dump does.
func Dump(v any) ([]byte, error) { return AppendDump(nil, v) }

// AppendDump appends the brine encoding of v to dst.
func AppendDump(dst []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, tagNone), nil
	case bool:
		if v {
			return append(dst, tagTrue), nil
		}
		return append(dst, tagFalse), nil
	case int64:
		return appendInt(dst, v), nil
	case int:
		return appendInt(dst, int64(v)), nil
	case int8:
		return appendInt(dst, int64(v)), nil
	case int16:
		return appendInt(dst, int64(v)), nil
	case int32:
		return appendInt(dst, int64(v)), nil
	case uint8:
		return appendInt(dst, int64(v)), nil
	case uint16:
		return appendInt(dst, int64(v)), nil
	case uint32:
		return appendInt(dst, int64(v)), nil
	case uint:
		return appendUint(dst, uint64(v)), nil
	case uint64:
		return appendUint(dst, v), nil
	case *big.Int:
		if v == nil {
			return dst, &UnsupportedTypeError{Type: reflect.TypeOf(v)}
		}
		if v.IsInt64() {
			return appendInt(dst, v.Int64()), nil
		}
		return appendDecimal(dst, v.Append(nil, 10)), nil
	case float64:
		return binary.BigEndian.AppendUint64(append(dst, tagFloat), math.Float64bits(v)), nil
	case float32:
		return binary.BigEndian.AppendUint64(append(dst, tagFloat), math.Float64bits(float64(v))), nil
	case complex128:
		return appendComplex(dst, v), nil
	case complex64:
		return appendComplex(dst, complex128(v)), nil
	case string:
		return appendBytes(append(dst, tagStr), v), nil
	case []byte:
		return appendBytes(dst, v), nil
	case Tuple:
		return appendTuple(dst, v)
	case FrozenSet:
		return appendTuple(append(dst, tagFrozenSet), Tuple(v))
	case Slice:
		return appendTuple(append(dst, tagSlice), Tuple{v.Start, v.Stop, v.Step})
	case ellipsisType:
		return append(dst, tagEllipsis), nil
	case notImplementedType:
		return append(dst, tagNotImplemented), nil
	case Type:
		if v.Valid() {
			return append(dst, v.tag), nil
		}
	case Raw:
		return append(dst, v...), nil
	}
	return dst, &UnsupportedTypeError{Type: reflect.TypeOf(v)}
}

func appendInt(dst []byte, i int64) []byte {
	if i >= immIntMin && i <= immIntMax {
		return append(dst, byte(i+immIntOffset))
	}
	var buf [20]byte
	return appendDecimal(dst, strconv.AppendInt(buf[:0], i, 10))
}

func appendUint(dst []byte, u uint64) []byte {
	if u <= math.MaxInt64 {
		return appendInt(dst, int64(u))
	}
	var buf [20]byte
	return appendDecimal(dst, strconv.AppendUint(buf[:0], u, 10))
}

func appendDecimal(dst, digits []byte) []byte {
	if len(digits) < 256 {
		dst = append(dst, tagIntL1, byte(len(digits)))
	} else {
		dst = binary.BigEndian.AppendUint32(append(dst, tagIntL4), uint32(len(digits)))
	}
	return append(dst, digits...)
}

func appendComplex(dst []byte, c complex128) []byte {
	dst = binary.BigEndian.AppendUint64(append(dst, tagComplex), math.Float64bits(real(c)))
	return binary.BigEndian.AppendUint64(dst, math.Float64bits(imag(c)))
}

func appendBytes[T string | []byte](dst []byte, b T) []byte {
	switch n := len(b); {
	case n == 0:
		return append(dst, tagEmptyBytes)
	case n <= 4:
		dst = append(dst, byte(tagBytes1+n-1))
	case n < 256:
		dst = append(dst, tagBytesL1, byte(n))
	default:
		dst = binary.BigEndian.AppendUint32(append(dst, tagBytesL4), uint32(n))
	}
	return append(dst, b...)
}

func appendTuple(dst []byte, t Tuple) ([]byte, error) {
	switch n := len(t); {
	case n == 0:
		return append(dst, tagEmptyTuple), nil
	case n <= 4:
		dst = append(dst, byte(tagTuple1+n-1))
	case n < 256:
		dst = append(dst, tagTupleL1, byte(n))
	default:
		dst = binary.BigEndian.AppendUint32(append(dst, tagTupleL4), uint32(n))
	}
	var err error
	for _, item := range t {
		if dst, err = AppendDump(dst, item); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// IsDumpable reports whether v can travel by value (rpyc's brine.dumpable): a value of
// the model, with tuples, frozensets and slices holding only dumpable items.
func IsDumpable(v any) bool {
	switch v := v.(type) {
	case nil, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64,
		*big.Int, float32, float64, complex64, complex128, string, []byte,
		ellipsisType, notImplementedType:
		return true
	case Tuple:
		for _, item := range v {
			if !IsDumpable(item) {
				return false
			}
		}
		return true
	case Type:
		return v.Valid()
	case Raw:
		return true
	case FrozenSet:
		return IsDumpable(Tuple(v))
	case Slice:
		return IsDumpable(v.Start) && IsDumpable(v.Stop) && IsDumpable(v.Step)
	}
	return false
}
