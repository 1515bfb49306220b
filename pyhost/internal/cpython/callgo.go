//go:build cgo

package cpython

/*
#include "capi.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

func newFunc(h uintptr) (Object, error) { return newRef(C.pb_go_func(C.uintptr_t(h))) }

// callGo runs fn for Python (args is the argument tuple) and turns its error, or a
// panic, into the Python exception.
func callGo(fn Func, args unsafe.Pointer) (ret unsafe.Pointer) {
	defer func() {
		if r := recover(); r != nil {
			(&Raise{Class: "RuntimeError", Msg: fmt.Sprintf("Go panic: %v", r)}).set()
			ret = nil
		}
	}()
	o, err := fn(Object{(*C.PyObject)(args)})
	if err == nil {
		if o.p == nil {
			return unsafe.Pointer(C.pb_new_ref(C.pb_None))
		}
		return unsafe.Pointer(o.p)
	}
	SetError(err)
	return nil
}

// SetError makes err the current Python exception: an *Exception as it is (its
// references handed over), a *Raise as its builtin class, anything else as
// RuntimeError with err's text.
func SetError(err error) {
	var exc *Exception
	var raise *Raise
	switch {
	case errors.As(err, &exc) && !exc.Type.IsNil():
		exc.Restore()
	case errors.As(err, &raise):
		raise.set()
	default:
		(&Raise{Class: "RuntimeError", Msg: err.Error()}).set()
	}
}
