//go:build !cgo

package cpython

import "errors"

// Available reports whether this build can embed Python (it was built with cgo).
const Available = false

// ErrNoCgo: this binary was built without cgo and cannot load libpython.
var ErrNoCgo = errors.New("this pybridge was built without cgo (CGO_ENABLED=0) and cannot embed Python; use a spawned isolation (--isolation shared)")
