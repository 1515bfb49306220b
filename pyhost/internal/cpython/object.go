//go:build cgo

package cpython

/*
#include <stdlib.h>
#include "capi.h"
*/
import "C"

import (
	"strings"
	"time"
	"unsafe"
)

// Object is a reference to a Python object. Whoever holds an Object that a function
// returned owns that reference and drops it with DecRef; every method needs the GIL.
// The zero Object is "no object".
type Object struct{ p *C.PyObject }

// IsNil reports the zero Object.
func (o Object) IsNil() bool { return o.p == nil }

// IncRef adds a reference (the GIL held).
func (o Object) IncRef() Object {
	if o.p != nil {
		C.Py_IncRef(o.p)
	}
	return o
}

// DecRef drops a reference (the GIL held).
func (o Object) DecRef() {
	if o.p != nil {
		C.Py_DecRef(o.p)
	}
}

// Ptr is the object's address, for identity (same object, same Ptr).
func (o Object) Ptr() uintptr { return uintptr(unsafe.Pointer(o.p)) }

// Type is type(o), borrowed: compare it with Ptr, or IncRef it to keep it.
func (o Object) Type() Object { return Object{(*C.PyObject)(C.pb_type(o.p))} }

// Truth is bool(o).
func (o Object) Truth() (bool, error) {
	switch o.p {
	case C.pb_True:
		return true, nil
	case C.pb_False, C.pb_None:
		return false, nil
	}
	n, err := o.Len()
	return n > 0, err
}

// None, True and False as new references.
func None() Object { return Object{C.pb_new_ref(C.pb_None)} }

// Is reports identity with None.
func (o Object) IsNone() bool { return o.p == C.pb_None }

func newRef(p *C.PyObject) (Object, error) {
	if p == nil {
		return Object{}, TakeError()
	}
	return Object{p}, nil
}

// Import is import name.
func Import(name string) (Object, error) {
	c := C.CString(name)
	defer C.free(unsafe.Pointer(c))
	return newRef(C.PyImport_ImportModule(c))
}

// Str makes a Python str.
func Str(s string) (Object, error) {
	if s == "" {
		return newRef(C.PyUnicode_FromStringAndSize(nil, 0))
	}
	return newRef(C.PyUnicode_FromStringAndSize((*C.char)(unsafe.Pointer(unsafe.StringData(s))), C.Py_ssize_t(len(s))))
}

// Attr is getattr(o, name).
func (o Object) Attr(name string) (Object, error) {
	n, err := Str(name)
	if err != nil {
		return Object{}, err
	}
	defer n.DecRef()
	return newRef(C.PyObject_GetAttr(o.p, n.p))
}

// AttrObject is getattr(o, name) with name a Python str.
func (o Object) AttrObject(name Object) (Object, error) {
	return newRef(C.PyObject_GetAttr(o.p, name.p))
}

// SetAttr is setattr(o, name, v); a zero v deletes the attribute.
func (o Object) SetAttr(name string, v Object) error {
	n, err := Str(name)
	if err != nil {
		return err
	}
	defer n.DecRef()
	if C.PyObject_SetAttr(o.p, n.p, v.p) < 0 {
		return TakeError()
	}
	return nil
}

// Call is o(*args, **kwargs); kwargs may be the zero Object. It borrows its arguments.
func (o Object) Call(args []Object, kwargs Object) (Object, error) {
	var argv **C.PyObject
	if len(args) > 0 {
		ps := make([]*C.PyObject, len(args))
		for i, a := range args {
			ps[i] = a.p
		}
		argv = &ps[0]
	}
	return newRef(C.pb_call(o.p, C.Py_ssize_t(len(args)), argv, kwargs.p))
}

// CallAttr is o.name(*args).
func (o Object) CallAttr(name string, args ...Object) (Object, error) {
	f, err := o.Attr(name)
	if err != nil {
		return Object{}, err
	}
	defer f.DecRef()
	return f.Call(args, Object{})
}

// Repr is repr(o).
func (o Object) Repr() (string, error) { return o.stringOf(C.PyObject_Repr(o.p)) }

// String is str(o).
func (o Object) String() (string, error) { return o.stringOf(C.PyObject_Str(o.p)) }

func (o Object) stringOf(p *C.PyObject) (string, error) {
	s, err := newRef(p)
	if err != nil {
		return "", err
	}
	defer s.DecRef()
	return s.goString()
}

// Dir is dir(o) as a list object.
func (o Object) Dir() (Object, error) { return newRef(C.PyObject_Dir(o.p)) }

// Len is len(o).
func (o Object) Len() (int, error) {
	n := C.PyObject_Size(o.p)
	if n < 0 {
		return 0, TakeError()
	}
	return int(n), nil
}

// Item is o[k].
func (o Object) Item(k Object) (Object, error) { return newRef(C.PyObject_GetItem(o.p, k.p)) }

// SetItem is o[k] = v.
func (o Object) SetItem(k, v Object) error {
	if C.PyObject_SetItem(o.p, k.p, v.p) < 0 {
		return TakeError()
	}
	return nil
}

// Iter is iter(o).
func (o Object) Iter() (Object, error) { return newRef(C.PyObject_GetIter(o.p)) }

// Next is next(it): the zero Object and a nil error at the end.
func (o Object) Next() (Object, error) {
	p := C.PyIter_Next(o.p)
	if p == nil {
		if C.PyErr_Occurred() != nil {
			return Object{}, TakeError()
		}
		return Object{}, nil
	}
	return Object{p}, nil
}

// TypeName is type(o).__module__ + "." + type(o).__qualname__, for messages.
func (o Object) TypeName() string {
	t := Object{(*C.PyObject)(C.pb_type(o.p))}
	var parts []string
	for _, a := range []string{"__module__", "__qualname__"} {
		v, err := t.Attr(a)
		if err != nil {
			continue
		}
		if s, err := v.goString(); err == nil {
			parts = append(parts, s)
		}
		v.DecRef()
	}
	return strings.Join(parts, ".")
}

// Exception is a Python exception taken from the interpreter: type, value and
// traceback, owned (Release drops them, the GIL held).
type Exception struct {
	Type, Value, Traceback Object
	msg                    string
}

func (e *Exception) Error() string { return e.msg }

// Release drops the exception's references.
func (e *Exception) Release() {
	e.Type.DecRef()
	e.Value.DecRef()
	e.Traceback.DecRef()
	e.Type, e.Value, e.Traceback = Object{}, Object{}, Object{}
}

// Restore makes e the current Python exception again, handing over its references.
func (e *Exception) Restore() {
	C.PyErr_Restore(e.Type.p, e.Value.p, e.Traceback.p)
	e.Type, e.Value, e.Traceback = Object{}, Object{}, Object{}
}

// TakeError takes the current Python exception (the GIL held). With none set it
// returns a RuntimeError-like *Exception saying so.
func TakeError() *Exception {
	var t, v, tb *C.PyObject
	C.PyErr_Fetch(&t, &v, &tb)
	if t == nil {
		return &Exception{msg: "python: a call failed without setting an exception"}
	}
	C.PyErr_NormalizeException(&t, &v, &tb)
	if tb != nil && v != nil {
		C.PyException_SetTraceback(v, tb)
	}
	e := &Exception{Type: Object{t}, Value: Object{v}, Traceback: Object{tb}}
	name := Object{t}.qualName()
	text := ""
	if v != nil {
		text, _ = Object{v}.String()
		C.PyErr_Clear()
	}
	if text != "" {
		e.msg = name + ": " + text
	} else {
		e.msg = name
	}
	return e
}

func (o Object) qualName() string {
	v, err := o.Attr("__name__")
	if err != nil {
		C.PyErr_Clear()
		return "exception"
	}
	defer v.DecRef()
	s, _ := v.goString()
	return s
}

// Raise is an error that a Go function called from Python turns into a Python
// exception of a builtin class.
type Raise struct {
	Class string // "EOFError", "TypeError", "ValueError", "OverflowError", "RuntimeError", "KeyboardInterrupt"
	Msg   string
}

func (r *Raise) Error() string { return r.Class + ": " + r.Msg }

func (r *Raise) set() {
	cls := C.pb_ExcRuntimeError
	switch r.Class {
	case "EOFError":
		cls = C.pb_ExcEOFError
	case "TypeError":
		cls = C.pb_ExcTypeError
	case "ValueError":
		cls = C.pb_ExcValueError
	case "OverflowError":
		cls = C.pb_ExcOverflowError
	case "KeyboardInterrupt":
		cls = C.pb_ExcKeyboardInterrupt
	case "StopIteration":
		cls = C.pb_ExcStopIteration
	}
	msg := C.CString(r.Msg)
	C.PyErr_SetString(cls, msg)
	C.free(unsafe.Pointer(msg))
}

// ExceptionClass is a builtin exception class by name (a new reference).
func ExceptionClass(name string) Object {
	(&Raise{Class: name}).set()
	e := TakeError()
	t := e.Type.IncRef()
	e.Release()
	return t
}

// SecondsArg reads a function's args (seconds,), seconds an int or a float, as a
// duration; -1 for anything else (None: no limit).
func SecondsArg(args Object) time.Duration {
	s := float64(C.pb_seconds_arg(args.p))
	if s < 0 {
		return -1
	}
	return time.Duration(s * float64(time.Second))
}
