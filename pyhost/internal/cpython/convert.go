//go:build cgo

package cpython

/*
#include "capi.h"
*/
import "C"

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"unsafe"

	"github.com/pybridge/pybridge/bridge/brine"
)

// MaxDepth bounds the nesting of values converted either way (self-containing lists,
// hostile input).
const MaxDepth = 1024

// Encoder converts Go values to Python objects: the brine value model (nil, bool, ints,
// *big.Int, floats, complex, string, []byte, brine.Tuple, FrozenSet, Slice, Ellipsis,
// NotImplemented), []any as list and maps as dict, and Objects as themselves. Fallback,
// when set, converts anything else (the GIL held); without it other values are an error.
type Encoder struct {
	Fallback func(v any) (Object, error)
}

// Object converts v; the result is a new reference.
func (e *Encoder) Object(v any) (Object, error) { return e.object(v, 0) }

func (e *Encoder) object(v any, depth int) (Object, error) {
	if depth > MaxDepth {
		return Object{}, fmt.Errorf("value nested deeper than %d", MaxDepth)
	}
	switch v := v.(type) {
	case nil:
		return None(), nil
	case Object:
		return v.IncRef(), nil
	case bool:
		if v {
			return Object{C.pb_new_ref(C.pb_True)}, nil
		}
		return Object{C.pb_new_ref(C.pb_False)}, nil
	case int64:
		return newRef(C.PyLong_FromLongLong(C.longlong(v)))
	case int:
		return newRef(C.PyLong_FromLongLong(C.longlong(v)))
	case int32:
		return newRef(C.PyLong_FromLongLong(C.longlong(v)))
	case int16:
		return newRef(C.PyLong_FromLongLong(C.longlong(v)))
	case int8:
		return newRef(C.PyLong_FromLongLong(C.longlong(v)))
	case uint64:
		return newRef(C.PyLong_FromUnsignedLongLong(C.ulonglong(v)))
	case uint:
		return newRef(C.PyLong_FromUnsignedLongLong(C.ulonglong(v)))
	case uint32:
		return newRef(C.PyLong_FromLongLong(C.longlong(v)))
	case uint16:
		return newRef(C.PyLong_FromLongLong(C.longlong(v)))
	case uint8:
		return newRef(C.PyLong_FromLongLong(C.longlong(v)))
	case *big.Int:
		s := append([]byte(v.String()), 0)
		return newRef(C.PyLong_FromString((*C.char)(unsafe.Pointer(&s[0])), nil, 10))
	case float64:
		return newRef(C.PyFloat_FromDouble(C.double(v)))
	case float32:
		return newRef(C.PyFloat_FromDouble(C.double(v)))
	case complex128:
		return newRef(C.PyComplex_FromDoubles(C.double(real(v)), C.double(imag(v))))
	case complex64:
		return newRef(C.PyComplex_FromDoubles(C.double(real(v)), C.double(imag(v))))
	case string:
		return Str(v)
	case []byte:
		if len(v) == 0 {
			return newRef(C.PyBytes_FromStringAndSize(nil, 0))
		}
		return newRef(C.PyBytes_FromStringAndSize((*C.char)(unsafe.Pointer(&v[0])), C.Py_ssize_t(len(v))))
	case brine.Tuple:
		return e.sequence(v, depth, false)
	case []any:
		return e.sequence(v, depth, true)
	case brine.FrozenSet:
		t, err := e.sequence(v, depth, false)
		if err != nil {
			return Object{}, err
		}
		defer t.DecRef()
		return newRef(C.PyFrozenSet_New(t.p))
	case brine.Slice:
		var parts [3]Object
		for i, b := range []any{v.Start, v.Stop, v.Step} {
			o, err := e.object(b, depth+1)
			if err != nil {
				for _, p := range parts[:i] {
					p.DecRef()
				}
				return Object{}, err
			}
			parts[i] = o
		}
		defer func() {
			for _, p := range parts {
				p.DecRef()
			}
		}()
		return newRef(C.PySlice_New(parts[0].p, parts[1].p, parts[2].p))
	case map[string]any:
		d, err := newRef(C.PyDict_New())
		if err != nil {
			return Object{}, err
		}
		for k, x := range v {
			if err := e.setItem(d, k, x, depth); err != nil {
				d.DecRef()
				return Object{}, err
			}
		}
		return d, nil
	case map[any]any:
		d, err := newRef(C.PyDict_New())
		if err != nil {
			return Object{}, err
		}
		for k, x := range v {
			if err := e.setItem(d, k, x, depth); err != nil {
				d.DecRef()
				return Object{}, err
			}
		}
		return d, nil
	}
	switch v {
	case brine.Ellipsis:
		return Object{C.pb_new_ref(C.pb_Ellipsis)}, nil
	case brine.NotImplemented:
		return Object{C.pb_new_ref(C.pb_NotImplemented)}, nil
	}
	if t, ok := v.(brine.Type); ok {
		if p := typeObject(t); p != nil {
			return Object{C.pb_new_ref(p)}, nil
		}
	}
	if e.Fallback != nil {
		return e.Fallback(v)
	}
	return Object{}, &Raise{Class: "TypeError", Msg: fmt.Sprintf("cannot pass a Go %T to Python", v)}
}

func (e *Encoder) setItem(d Object, k, v any, depth int) error {
	ko, err := e.object(k, depth+1)
	if err != nil {
		return err
	}
	defer ko.DecRef()
	vo, err := e.object(v, depth+1)
	if err != nil {
		return err
	}
	defer vo.DecRef()
	if C.PyDict_SetItem(d.p, ko.p, vo.p) < 0 {
		return TakeError()
	}
	return nil
}

func (e *Encoder) sequence(items []any, depth int, list bool) (Object, error) {
	ps := make([]*C.PyObject, len(items)+1) // +1: &ps[0] is valid when empty
	for i, x := range items {
		o, err := e.object(x, depth+1)
		if err != nil {
			for _, p := range ps[:i] {
				C.Py_DecRef(p)
			}
			return Object{}, err
		}
		ps[i] = o.p
	}
	n := C.Py_ssize_t(len(items))
	if list {
		return newRef(C.pb_list_from(n, &ps[0]))
	}
	return newRef(C.pb_tuple_from(n, &ps[0]))
}

// typeObject is the Python type object a brine.Type names (borrowed), nil for none.
func typeObject(t brine.Type) *C.PyObject {
	var p unsafe.Pointer
	switch t {
	case brine.TypeNone:
		p = C.pb_type(C.pb_None)
	case brine.TypeInt:
		p = C.pb_LongType
	case brine.TypeBool:
		p = C.pb_BoolType
	case brine.TypeFloat:
		p = C.pb_FloatType
	case brine.TypeBytes:
		p = C.pb_BytesType
	case brine.TypeStr:
		p = C.pb_UnicodeType
	case brine.TypeComplex:
		p = C.pb_ComplexType
	case brine.TypeNotImplemented:
		p = C.pb_type(C.pb_NotImplemented)
	case brine.TypeEllipsis:
		p = C.pb_type(C.pb_Ellipsis)
	}
	return (*C.PyObject)(p)
}

// brineType is the brine.Type of a Python type object, if brine has a tag for it.
func brineType(p *C.PyObject) (brine.Type, bool) {
	for _, t := range []brine.Type{brine.TypeInt, brine.TypeStr, brine.TypeBool, brine.TypeFloat,
		brine.TypeBytes, brine.TypeNone, brine.TypeComplex, brine.TypeNotImplemented, brine.TypeEllipsis} {
		if typeObject(t) == p {
			return t, true
		}
	}
	return brine.Type{}, false
}

// Decoder converts Python objects to Go values: the exact types of brine's value set
// (bool, int, float, complex, str, bytes, tuple, frozenset, slice, None, Ellipsis,
// NotImplemented) to the brine value model; with Types, the type objects rpyc-ng's
// brine has tags for (int, str, …) to brine.Type; with Lists, list and dict to []any
// and map[any]any (set to brine.FrozenSet). Fallback, when set, converts anything else
// (the GIL held); without it other objects are an error.
type Decoder struct {
	Lists    bool
	Types    bool
	Fallback func(o Object) (any, error)
}

// Value converts o (borrowed).
func (d *Decoder) Value(o Object) (any, error) { return d.value(o.p, 0) }

func (d *Decoder) value(p *C.PyObject, depth int) (any, error) {
	if depth > MaxDepth {
		return nil, &Raise{Class: "ValueError", Msg: fmt.Sprintf("value nested deeper than %d", MaxDepth)}
	}
	t := C.pb_type(p)
	switch t {
	case C.pb_UnicodeType:
		return Object{p}.goString()
	case C.pb_LongType:
		var overflow C.int
		v := C.PyLong_AsLongLongAndOverflow(p, &overflow)
		if overflow == 0 {
			if v == -1 && C.PyErr_Occurred() != nil {
				return nil, TakeError()
			}
			return int64(v), nil
		}
		s, err := Object{p}.String()
		if err != nil {
			return nil, err
		}
		i, ok := new(big.Int).SetString(s, 10)
		if !ok {
			return nil, fmt.Errorf("int %q", s)
		}
		return i, nil
	case C.pb_TupleType:
		return d.items(p, depth, func(xs []any) any { return brine.Tuple(xs) })
	case C.pb_BoolType:
		return p == C.pb_True, nil
	case C.pb_FloatType:
		return float64(C.PyFloat_AsDouble(p)), nil
	case C.pb_BytesType:
		var s *C.char
		var n C.Py_ssize_t
		if C.PyBytes_AsStringAndSize(p, &s, &n) < 0 {
			return nil, TakeError()
		}
		return bytes.Clone(unsafe.Slice((*byte)(unsafe.Pointer(s)), int(n))), nil
	case C.pb_ComplexType:
		return complex(float64(C.PyComplex_RealAsDouble(p)), float64(C.PyComplex_ImagAsDouble(p))), nil
	case C.pb_FrozenSetType:
		return d.whole(p, depth, func(d *Decoder) (any, error) {
			return d.iterate(p, depth, func(xs []any) any { return brine.FrozenSet(xs) })
		})
	case C.pb_SliceType:
		return d.whole(p, depth, func(d *Decoder) (any, error) { return d.slice(p, depth) })
	}
	switch p {
	case C.pb_None:
		return nil, nil
	case C.pb_Ellipsis:
		return brine.Ellipsis, nil
	case C.pb_NotImplemented:
		return brine.NotImplemented, nil
	}
	if d.Types {
		if typ, ok := brineType(p); ok {
			return typ, nil
		}
	}
	if d.Lists {
		switch t {
		case C.pb_ListType:
			return d.list(p, depth)
		case C.pb_DictType:
			return d.dict(p, depth)
		case C.pb_SetType:
			return d.iterate(p, depth, func(xs []any) any { return brine.FrozenSet(xs) })
		}
	}
	if d.Fallback != nil {
		return d.Fallback(Object{p})
	}
	return nil, &Raise{Class: "TypeError", Msg: fmt.Sprintf("a %s cannot go by value", Object{p}.TypeName())}
}

// whole decodes a frozenset or slice only if everything in it goes by value (rpyc
// passes it by value then, else the whole object by reference: Fallback).
func (d *Decoder) whole(p *C.PyObject, depth int, decode func(*Decoder) (any, error)) (any, error) {
	if d.Fallback == nil {
		return decode(d)
	}
	strict := *d
	strict.Fallback = nil
	v, err := decode(&strict)
	var r *Raise
	if errors.As(err, &r) && r.Class == "TypeError" {
		return d.Fallback(Object{p})
	}
	return v, err
}

func (d *Decoder) slice(p *C.PyObject, depth int) (any, error) {
	var parts [3]any
	for i, name := range []string{"start", "stop", "step"} {
		b, err := Object{p}.Attr(name)
		if err != nil {
			return nil, err
		}
		parts[i], err = d.value(b.p, depth+1)
		b.DecRef()
		if err != nil {
			return nil, err
		}
	}
	return brine.Slice{Start: parts[0], Stop: parts[1], Step: parts[2]}, nil
}

func (d *Decoder) list(p *C.PyObject, depth int) (any, error) {
	n := int(C.PyList_Size(p))
	out := make([]any, n)
	for i := range n {
		v, err := d.value(C.PyList_GetItem(p, C.Py_ssize_t(i)), depth+1)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// dict converts a dict to map[string]any when every key is a str, else map[any]any
// (as the worker codec does).
func (d *Decoder) dict(p *C.PyObject, depth int) (any, error) {
	n := int(C.PyDict_Size(p))
	sm := make(map[string]any, n)
	var am map[any]any
	var pos C.Py_ssize_t
	var k, v *C.PyObject
	for C.PyDict_Next(p, &pos, &k, &v) != 0 {
		kv, err := d.value(k, depth+1)
		if err != nil {
			return nil, err
		}
		vv, err := d.value(v, depth+1)
		if err != nil {
			return nil, err
		}
		if ks, ok := kv.(string); ok && am == nil {
			sm[ks] = vv
			continue
		}
		if !hashable(kv) {
			return nil, &Raise{Class: "TypeError", Msg: fmt.Sprintf("dict key of type %T has no Go map form", kv)}
		}
		if am == nil {
			am = make(map[any]any, n)
			for ks, x := range sm {
				am[ks] = x
			}
		}
		am[kv] = vv
	}
	if am != nil {
		return am, nil
	}
	return sm, nil
}

func hashable(v any) bool {
	switch v.(type) {
	case brine.Tuple, []any, map[any]any, brine.FrozenSet, []byte, *big.Int:
		return false
	}
	return true
}

func (d *Decoder) items(p *C.PyObject, depth int, wrap func([]any) any) (any, error) {
	var small [8]*C.PyObject
	n := int(C.pb_tuple_items(p, &small[0], C.Py_ssize_t(len(small))))
	ps := small[:min(n, len(small))]
	if n > len(small) {
		ps = make([]*C.PyObject, n)
		C.pb_tuple_items(p, &ps[0], C.Py_ssize_t(n))
	}
	out := make([]any, n)
	for i, x := range ps {
		v, err := d.value(x, depth+1)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return wrap(out), nil
}

func (d *Decoder) iterate(p *C.PyObject, depth int, wrap func([]any) any) (any, error) {
	it, err := Object{p}.Iter()
	if err != nil {
		return nil, err
	}
	defer it.DecRef()
	var out []any
	for {
		x, err := it.Next()
		if err != nil {
			return nil, err
		}
		if x.IsNil() {
			return wrap(out), nil
		}
		v, err := d.value(x.p, depth+1)
		x.DecRef()
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
}

func (o Object) goString() (string, error) {
	var n C.Py_ssize_t
	s := C.PyUnicode_AsUTF8AndSize(o.p, &n)
	if s == nil {
		return "", TakeError()
	}
	return string(unsafe.Slice((*byte)(unsafe.Pointer(s)), int(n))), nil
}

// GoString is str o as a Go string (o must be a str).
func (o Object) GoString() (string, error) { return o.goString() }
