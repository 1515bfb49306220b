package bridge

import (
	"errors"
	"fmt"
	"strings"

	"github.com/pybridge/pybridge/bridge/brine"
)

// RemoteError is an exception raised by the peer (vinegar): the Python exception's
// module and type, its args, its public attributes, and the remote traceback text.
type RemoteError struct {
	Module, Type string
	Args         []any
	Attrs        map[string]any
	Traceback    string
}

func (e *RemoteError) Error() string {
	var b strings.Builder
	if e.Module != "" && e.Module != "builtins" {
		b.WriteString(e.Module + ".")
	}
	b.WriteString(e.Type)
	if len(e.Args) > 0 {
		b.WriteString(": ")
		for i, a := range e.Args {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprint(&b, a)
		}
	}
	return b.String()
}

var (
	// ErrStopIteration is the peer's StopIteration (the end of an iterator).
	ErrStopIteration = errors.New("StopIteration")
	// ErrConnClosed: the connection is closed.
	ErrConnClosed = errors.New("rpyc connection closed")
)

// ProtocolError reports a message that breaks RPyC's rules.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "rpyc protocol: " + e.Msg }

// loadException rebuilds an EXCEPTION body.
func loadException(body any) error {
	if body == int64(1) {
		return ErrStopIteration
	}
	t, ok := body.(brine.Tuple)
	if !ok || len(t) != 4 {
		if s, ok := body.(string); ok {
			return &RemoteError{Type: "Exception", Args: []any{s}}
		}
		return &ProtocolError{Msg: fmt.Sprintf("malformed exception %v", body)}
	}
	e := &RemoteError{Attrs: map[string]any{}}
	if names, ok := t[0].(brine.Tuple); ok && len(names) == 2 {
		e.Module, _ = names[0].(string)
		e.Type, _ = names[1].(string)
	}
	if args, ok := t[1].(brine.Tuple); ok {
		e.Args = []any(args)
	}
	if attrs, ok := t[2].(brine.Tuple); ok {
		for _, kv := range attrs {
			if p, ok := kv.(brine.Tuple); ok && len(p) == 2 {
				if k, ok := p[0].(string); ok && k != "_remote_version" {
					e.Attrs[k] = p[1] // (the peer's rpyc version is not the exception's)
				}
			}
		}
	}
	e.Traceback, _ = t[3].(string)
	return e
}

// PythonError lets a Go error choose the Python exception type the peer raises.
type PythonError interface {
	error
	PythonType() (module, name string)
}

// goTraceback lets an error carry the text the peer shows as its remote traceback
// (a Go panic carries its stack).
type goTraceback interface{ GoTraceback() string }

// dumpException turns a Go error into a vinegar tuple rpyc rebuilds: the Python type
// the error names (PythonError), a RemoteError's own type when a peer's exception
// passes back through Go, or RuntimeError; the remote traceback names the Go error.
func dumpException(err error) any {
	if errors.Is(err, ErrStopIteration) {
		return int64(1)
	}
	module, name := "builtins", "RuntimeError"
	var pe PythonError
	var re *RemoteError
	switch {
	case errors.As(err, &pe):
		module, name = pe.PythonType()
	case errors.As(err, &re):
		module, name = re.Module, re.Type
	}
	var tb strings.Builder
	if re != nil && re.Traceback != "" {
		tb.WriteString(re.Traceback)
		tb.WriteString("\n")
	}
	fmt.Fprintf(&tb, "Go error (%T): %v\n", err, err)
	var gt goTraceback
	if errors.As(err, &gt) {
		tb.WriteString(gt.GoTraceback())
	}
	return brine.Tuple{brine.Tuple{module, name}, brine.Tuple{err.Error()},
		// as rpyc with include_local_version off: no version to compare, so no warning
		brine.Tuple{brine.Tuple{"_remote_version", "<version denied>"}}, tb.String()}
}
