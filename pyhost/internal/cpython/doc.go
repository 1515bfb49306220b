// Package cpython embeds a CPython interpreter in the Go process: pybridge's whole C
// boundary. It loads the libpython that an interpreter's own sysconfig names (Probe),
// with dlopen at run time, and calls only functions of CPython's stable ABI (3.9 and
// later), so one binary embeds any of 3.9–3.13 and building it needs no Python headers.
// Nothing of cgo leaks out of this package: callers see Object, Info and plain Go values.
//
// # Threads and the GIL
//
// A goroutine runs Python between Enter and Leave: Enter pins it to its OS thread and
// takes the GIL with that thread's Python thread state, created the first time the
// thread enters and kept for the thread's life (cheap re-entry, and threading.local
// stays per thread). Every Object method and conversion needs the GIL. Control that
// goes back to Go for long (socket I/O, a Go callback's body) releases it with
// Release/Reacquire, so Go's other goroutines run in parallel with Python.
//
// Python calls Go through functions made by NewFunc; the Go function runs on the
// calling thread with the GIL held.
//
// # One interpreter per process
//
// Start initialises Python once. Starting the same executable again returns the running
// interpreter; any other is refused (a process can host one CPython). Python installs
// no signal handlers: Go keeps SIGINT and SIGTERM.
package cpython
