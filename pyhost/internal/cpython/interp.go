//go:build cgo

package cpython

/*
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "capi.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"github.com/pybridge/pybridge/internal/sched"
)

// Available reports whether this build can embed Python (it was built with cgo).
const Available = true

// Interpreter is the CPython running in this process.
type Interpreter struct {
	info Info
}

var (
	startMu sync.Mutex
	running *Interpreter
)

// SecondInterpreterError: the process already embeds another interpreter.
type SecondInterpreterError struct {
	Running, Asked string // executables
}

func (e *SecondInterpreterError) Error() string {
	return fmt.Sprintf("this process already embeds %s; it cannot also embed %s (one interpreter per process)", e.Running, e.Asked)
}

// Start loads info.Library, initialises Python as info.Executable (so sys.executable,
// sys.prefix and site-packages are that interpreter's, venvs included), and runs setup
// (Python source, run in a fresh namespace of module __main__) before releasing the GIL.
// It returns the running interpreter when it is the same executable.
func Start(info Info, setup string) (*Interpreter, error) {
	startMu.Lock()
	defer startMu.Unlock()
	if running != nil {
		if running.info.Executable == info.Executable {
			return running, nil
		}
		return nil, &SecondInterpreterError{Running: running.info.Executable, Asked: info.Executable}
	}
	if err := info.Check(); err != nil {
		return nil, err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	lib := C.CString(info.Library)
	defer C.free(unsafe.Pointer(lib))
	if msg := C.pb_load(lib); msg != nil {
		return nil, fmt.Errorf("loading %s: %s", info.Library, C.GoString(msg))
	}
	if C.Py_IsInitialized() != 0 {
		return nil, errors.New("this process already holds an initialised Python interpreter that pybridge did not start")
	}
	exe := C.CString(info.Executable)
	// Python keeps the program name for its whole life: it is never freed
	name := C.Py_DecodeLocale(exe, nil)
	C.free(unsafe.Pointer(exe))
	if name == nil {
		return nil, fmt.Errorf("cannot decode %q as a program name", info.Executable)
	}
	C.Py_SetProgramName(name)
	C.Py_InitializeEx(0) // 0: no signal handlers; Go keeps them
	C.pb_resolve_exceptions()
	ip := &Interpreter{info: info}
	err := runSource(setup)
	C.PyEval_SaveThread()
	if err != nil {
		// Python stays initialised: nothing can take it back out of the process
		running = ip
		return nil, fmt.Errorf("setting up the embedded interpreter: %w", err)
	}
	running = ip
	return ip, nil
}

// Running is the interpreter Start started, or nil.
func Running() *Interpreter {
	startMu.Lock()
	defer startMu.Unlock()
	return running
}

// Info is what the interpreter said of itself.
func (ip *Interpreter) Info() Info { return ip.info }

func runSource(src string) error {
	csrc := C.CString(src)
	defer C.free(unsafe.Pointer(csrc))
	file := C.CString("<pybridge setup>")
	defer C.free(unsafe.Pointer(file))
	code := C.Py_CompileString(csrc, file, C.PB_FILE_INPUT)
	if code == nil {
		return TakeError()
	}
	defer C.Py_DecRef(code)
	globals := C.PyDict_New()
	defer C.Py_DecRef(globals)
	main := C.CString("__main__")
	defer C.free(unsafe.Pointer(main))
	key := C.CString("__name__")
	defer C.free(unsafe.Pointer(key))
	mod := C.PyUnicode_FromStringAndSize(main, 8)
	k := C.PyUnicode_FromStringAndSize(key, 8)
	C.PyDict_SetItem(globals, k, mod)
	C.Py_DecRef(k)
	C.Py_DecRef(mod)
	bkey := C.CString("__builtins__")
	defer C.free(unsafe.Pointer(bkey))
	bname := C.CString("builtins")
	defer C.free(unsafe.Pointer(bname))
	builtins := C.PyImport_ImportModule(bname)
	if builtins == nil {
		return TakeError()
	}
	bk := C.PyUnicode_FromStringAndSize(bkey, 12)
	C.PyDict_SetItem(globals, bk, builtins)
	C.Py_DecRef(bk)
	C.Py_DecRef(builtins)
	r := C.PyEval_EvalCode(code, globals, globals)
	if r == nil {
		return TakeError()
	}
	C.Py_DecRef(r)
	return nil
}

// Enter pins the calling goroutine to its OS thread and takes the GIL. Every Enter is
// matched by a Leave on the same goroutine.
func Enter() {
	runtime.LockOSThread()
	sched.Busy() // the GIL may be long to come (see sched.Busy)
	C.pb_enter()
}

// Leave releases the GIL and unpins the goroutine.
func Leave() {
	C.pb_leave()
	runtime.UnlockOSThread()
}

// ThreadState is a released GIL, to be reacquired on the same thread.
type ThreadState struct{ ts C.uintptr_t }

// Release releases the GIL held by this thread (inside a Go function Python called, or
// between Enter and Leave) while Go works on, e.g. blocks in socket I/O.
func Release() ThreadState { return ThreadState{C.pb_save_thread()} }

// Reacquire takes the GIL back after Release.
func (t ThreadState) Reacquire() {
	sched.Busy()
	C.pb_restore_thread(t.ts)
}

// ThreadIdent is threading.get_ident() of the calling thread (GIL held).
func ThreadIdent() uint64 { return uint64(C.PyThread_get_thread_ident()) }

// Interrupt raises exc (an exception class) asynchronously in the thread with ident id
// at its next bytecode boundary (PyThreadState_SetAsyncExc). The caller holds the GIL.
// C code that does not return to the interpreter is not interrupted.
func Interrupt(id uint64, exc Object) bool {
	return C.PyThreadState_SetAsyncExc(C.ulong(id), exc.p) > 0
}
