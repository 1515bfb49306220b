//go:build cgo

package cpython

/*
#include "capi.h"
*/
import "C"

// ServeRequest serves the request msg (kind, seq, body) as the C channel serves it
// with state, the tuple pybridge.protocol.Connection._serve_in_c makes (serve.c), less
// the receive lock: false when C leaves it to Python, having run nothing; else the
// reply (2, seq, body) C would write, or the message for Python (kind -1: a result C
// cannot send, -2: the exception raised). The GIL held. For tests.
func ServeRequest(state, msg Object) (Object, bool, error) {
	var out *C.PyObject
	if C.pb_serve_for_test(state.p, msg.p, &out) == 0 {
		return Object{}, false, nil
	}
	o, err := newRef(out)
	return o, true, err
}
