package pyhost

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
)

// ErrChannelClosed is returned by a Channel's methods after its own Close. It wraps
// net.ErrClosed.
var ErrChannelClosed = fmt.Errorf("pyhost: channel closed: %w", net.ErrClosed)

// ErrHostClosed is returned by Open and Connect after the pool or host was closed.
var ErrHostClosed = errors.New("pyhost: host closed")

// ClosedError is returned by ReadMessage once the worker has closed the connection
// (hosted code closed it, or OPEN failed: Reason says why). It wraps io.EOF: the
// connection ended cleanly from the Python side.
type ClosedError struct {
	Worker int
	Conn   uint64
	Reason string // empty when the worker gave none
}

func (e *ClosedError) Error() string {
	s := fmt.Sprintf("pyhost: worker %d closed connection %d", e.Worker, e.Conn)
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

func (e *ClosedError) Unwrap() error { return io.EOF }

// WorkerExitError is returned by every open channel of a worker that is gone: it
// exited, was killed by a signal (SIGKILL, SIGSEGV, …), was shut down, or broke the
// protocol and was killed for it. It wraps io.ErrUnexpectedEOF, or Cause when set.
type WorkerExitError struct {
	Worker   int
	Pid      int
	Code     int            // exit status, -1 when killed by a signal
	Signal   syscall.Signal // the signal that killed it, 0 if it exited
	Shutdown bool           // the exit was asked for (Shutdown, Close, retirement)
	Cause    error          // a protocol violation or health failure that made Go kill it
}

func (e *WorkerExitError) Error() string {
	s := fmt.Sprintf("pyhost: worker %d (pid %d) ", e.Worker, e.Pid)
	if e.Signal != 0 {
		s += "was killed by signal " + signalName(e.Signal)
	} else {
		s += fmt.Sprintf("exited with status %d", e.Code)
	}
	if e.Shutdown {
		s += " on shutdown"
	}
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

func (e *WorkerExitError) Unwrap() error {
	if e.Cause != nil {
		return e.Cause
	}
	return io.ErrUnexpectedEOF
}

// Crashed reports whether the worker died without being asked to.
func (e *WorkerExitError) Crashed() bool { return !e.Shutdown }

func signalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGSEGV:
		return "SIGSEGV"
	case syscall.SIGABRT:
		return "SIGABRT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGBUS:
		return "SIGBUS"
	case syscall.SIGINT:
		return "SIGINT"
	}
	return fmt.Sprintf("%d (%v)", int(s), s)
}

// StartError reports a worker that did not come up: the interpreter could not be run,
// or it exited or timed out before HELLO; Stderr holds its last lines of standard
// error. In embedded isolation: the interpreter could not be loaded into this process.
type StartError struct {
	Python   string
	Err      error
	Stderr   string
	Embedded bool // loading it into this process failed (isolation "embedded")
}

func (e *StartError) Error() string {
	what := "starting worker "
	if e.Embedded {
		what = "embedding "
	}
	s := "pyhost: " + what + e.Python + ": " + e.Err.Error()
	if e.Stderr != "" {
		s += "\n" + e.Stderr
	}
	return s
}

func (e *StartError) Unwrap() error { return e.Err }
