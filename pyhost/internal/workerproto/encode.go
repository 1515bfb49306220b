package workerproto

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/big"
	"reflect"
	"sync"
	"unicode/utf8"

	"github.com/pybridge/pybridge/bridge/brine"
	"github.com/pybridge/pybridge/internal/bufpool"
	"github.com/vmihailenco/msgpack/v5"
)

// encoder writes frames into one reusable buffer. Extension payloads that hold
// msgpack (frozenset, slice, list) need their length before their bytes, so they are
// encoded into a nested encoder first and copied behind the header.
type encoder struct {
	buf   bytes.Buffer
	enc   *msgpack.Encoder
	lim   Limits
	items int
	inner *encoder // for extension payloads, created on first use
}

var encoderPool = sync.Pool{New: func() any {
	e := &encoder{}
	e.enc = msgpack.NewEncoder(&e.buf)
	return e
}}

func getEncoder(lim Limits) *encoder {
	e := encoderPool.Get().(*encoder)
	e.lim = lim.OrDefault()
	return e
}

func putEncoder(e *encoder) {
	if e.buf.Cap() > bufpool.Max { // keep huge buffers from pinning memory (the pool drops the rest when unused)
		e.buf = bytes.Buffer{}
		e.enc.Reset(&e.buf)
	}
	encoderPool.Put(e)
}

// frame encodes f behind a 4-byte length prefix; the result is valid until the next use
// of e.
func (e *encoder) frame(f Frame) ([]byte, error) {
	e.buf.Reset()
	e.items = 0
	e.buf.Write([]byte{0, 0, 0, 0})
	e.buf.WriteByte(0x94) // fixarray of 4
	e.enc.EncodeUint(uint64(f.Kind))
	e.enc.EncodeUint(f.Conn)
	e.enc.EncodeInt(f.Seq)
	if err := e.value(f.Body, 0); err != nil {
		return nil, err
	}
	b := e.buf.Bytes()
	n := len(b) - 4
	if n > e.lim.MaxFrame {
		return nil, &LimitError{Limit: "MaxFrame", Max: e.lim.MaxFrame, Got: n}
	}
	binary.BigEndian.PutUint32(b, uint32(n))
	return b, nil
}

func (e *encoder) count(n, depth int) error {
	if depth >= e.lim.MaxDepth {
		return &LimitError{Limit: "MaxDepth", Max: e.lim.MaxDepth}
	}
	e.items += n
	if e.items > e.lim.MaxItems {
		return &LimitError{Limit: "MaxItems", Max: e.lim.MaxItems, Got: e.items}
	}
	return nil
}

// value encodes one value; the common types come first.
func (e *encoder) value(v any, depth int) error {
	switch v := v.(type) {
	case nil:
		return e.enc.EncodeNil()
	case int64:
		return e.enc.EncodeInt(v)
	case string:
		if !utf8.ValidString(v) {
			return encodeErr("string is not valid UTF-8 (Python str needs it; send []byte for bytes)")
		}
		return e.enc.EncodeString(v)
	case brine.Tuple:
		return e.array(v, depth)
	case bool:
		return e.enc.EncodeBool(v)
	case float64:
		return e.enc.EncodeFloat64(v)
	case []byte:
		if err := e.enc.EncodeBytesLen(len(v)); err != nil {
			return err
		}
		_, err := e.buf.Write(v)
		return err
	case int:
		return e.enc.EncodeInt(int64(v))
	case int8:
		return e.enc.EncodeInt(int64(v))
	case int16:
		return e.enc.EncodeInt(int64(v))
	case int32:
		return e.enc.EncodeInt(int64(v))
	case uint:
		return e.enc.EncodeUint(uint64(v))
	case uint8:
		return e.enc.EncodeUint(uint64(v))
	case uint16:
		return e.enc.EncodeUint(uint64(v))
	case uint32:
		return e.enc.EncodeUint(uint64(v))
	case uint64:
		return e.enc.EncodeUint(v)
	case float32:
		return e.enc.EncodeFloat64(float64(v))
	case *big.Int:
		return e.bigInt(v)
	case complex128:
		return e.complex(v)
	case complex64:
		return e.complex(complex128(v))
	case brine.FrozenSet:
		return e.nested(extFrozenSet, []any(v), depth)
	case brine.Slice:
		return e.nested(extSlice, []any{v.Start, v.Stop, v.Step}, depth)
	case brine.Type:
		if !v.Valid() {
			return encodeErr("the zero brine.Type is no type")
		}
		name := v.String()
		if err := e.enc.EncodeExtHeader(extType, len(name)); err != nil {
			return err
		}
		_, err := e.buf.WriteString(name)
		return err
	case []any:
		return e.nested(extList, v, depth)
	case map[string]any:
		return encodeMap(e, v, depth)
	case map[any]any:
		return encodeMap(e, v, depth)
	}
	switch v {
	case brine.Ellipsis:
		return e.enc.EncodeExtHeader(extEllipsis, 0)
	case brine.NotImplemented:
		return e.enc.EncodeExtHeader(extNotImplemented, 0)
	}
	return e.reflectValue(reflect.ValueOf(v), depth)
}

// reflectValue carries the other Go slices, arrays and maps ([]string, map[string]int,
// …) by value as lists and dicts; everything else is not a value of the model.
func (e *encoder) reflectValue(rv reflect.Value, depth int) error {
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			return e.nested(extList, nil, depth)
		}
		items := make([]any, rv.Len())
		for i := range items {
			items[i] = rv.Index(i).Interface()
		}
		return e.nested(extList, items, depth)
	case reflect.Map:
		if err := e.count(2*rv.Len(), depth); err != nil {
			return err
		}
		if err := e.enc.EncodeMapLen(rv.Len()); err != nil {
			return err
		}
		it := rv.MapRange()
		for it.Next() {
			if err := e.value(it.Key().Interface(), depth+1); err != nil {
				return err
			}
			if err := e.value(it.Value().Interface(), depth+1); err != nil {
				return err
			}
		}
		return nil
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return e.enc.EncodeNil()
		}
	}
	return encodeErr("%T is not a value the worker codec carries", rv.Interface())
}

func (e *encoder) array(items []any, depth int) error {
	if err := e.count(len(items), depth); err != nil {
		return err
	}
	if err := e.enc.EncodeArrayLen(len(items)); err != nil {
		return err
	}
	for _, x := range items {
		if err := e.value(x, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// nested writes an extension whose payload is the msgpack array of items.
func (e *encoder) nested(ext int8, items []any, depth int) error {
	if e.inner == nil {
		e.inner = &encoder{}
		e.inner.enc = msgpack.NewEncoder(&e.inner.buf)
	}
	in := e.inner
	in.buf.Reset()
	in.lim, in.items = e.lim, e.items
	if err := in.array(items, depth); err != nil {
		return err
	}
	e.items = in.items
	if err := e.enc.EncodeExtHeader(ext, in.buf.Len()); err != nil {
		return err
	}
	_, err := e.buf.Write(in.buf.Bytes())
	return err
}

var maxUint64 = new(big.Int).SetUint64(math.MaxUint64)

// bigInt uses msgpack's own ints for [-2^63, 2^64), as msgpack-python does, and ext 1
// decimal outside.
func (e *encoder) bigInt(v *big.Int) error {
	if v == nil {
		return e.enc.EncodeNil()
	}
	if v.IsInt64() {
		return e.enc.EncodeInt(v.Int64())
	}
	if v.Sign() > 0 && v.Cmp(maxUint64) <= 0 {
		return e.enc.EncodeUint(v.Uint64())
	}
	s := v.Text(10)
	if err := e.enc.EncodeExtHeader(extBigInt, len(s)); err != nil {
		return err
	}
	_, err := e.buf.WriteString(s)
	return err
}

func (e *encoder) complex(c complex128) error {
	if err := e.enc.EncodeExtHeader(extComplex, 16); err != nil {
		return err
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], math.Float64bits(real(c)))
	binary.BigEndian.PutUint64(b[8:], math.Float64bits(imag(c)))
	_, err := e.buf.Write(b[:])
	return err
}

// encodeMap writes a dict: its length, then each key and value.
func encodeMap[K comparable](e *encoder, m map[K]any, depth int) error {
	if err := e.count(2*len(m), depth); err != nil {
		return err
	}
	if err := e.enc.EncodeMapLen(len(m)); err != nil {
		return err
	}
	for k, x := range m {
		if err := e.value(k, depth+1); err != nil {
			return err
		}
		if err := e.value(x, depth+1); err != nil {
			return err
		}
	}
	return nil
}
