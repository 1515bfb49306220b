//go:build cgo

package cpython

/*
#include "export.h"
*/
import "C"

import (
	"runtime/cgo"
	"unsafe"
)

// Func is a Go function Python can call: it gets the positional arguments as a tuple
// (borrowed) and returns a new reference, with the GIL held. An error becomes the
// Python exception: an *Exception is raised as it is, a *Raise as its builtin class,
// anything else as RuntimeError.
type Func func(args Object) (Object, error)

// NewFunc makes a Python builtin function that calls fn (a new reference). fn lives as
// long as the function object.
func NewFunc(fn Func) (Object, error) {
	return newFunc(uintptr(cgo.NewHandle(fn)))
}

//export pbGoCall
func pbGoCall(h C.uintptr_t, args *C.PyObject) *C.PyObject {
	fn := cgo.Handle(h).Value().(Func)
	return (*C.PyObject)(callGo(fn, unsafe.Pointer(args)))
}

//export pbGoRelease
func pbGoRelease(h C.uintptr_t) {
	cgo.Handle(h).Delete()
}

//export pbChannelObserve
func pbChannelObserve(h C.uintptr_t, sent C.int, kind, seq C.longlong, handler, bytes C.int) {
	cgo.Handle(h).Value().(ChannelObserver)(sent != 0, int64(kind), int64(seq), int(handler), int(bytes))
}
