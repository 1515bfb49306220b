package sched

import (
	"runtime"
	"sync"
)

// maxProcs bounds how far Outside raises GOMAXPROCS.
const maxProcs = 256

var procs struct {
	sync.Mutex
	base    int // GOMAXPROCS before the first raise
	outside int // goroutines between Outside and done
	current int // GOMAXPROCS as set here
}

// Outside notes that the calling goroutine lives outside Go (a connection's thread
// inside a long call into Python, a relay thread that waits in poll(2)) until done is
// called, and keeps GOMAXPROCS at least its former value plus the number of such
// goroutines.
//
// A thread in a system call or in C keeps its P until sysmon takes it, and a thread
// coming back into Go needs one. With more such threads than Ps, each call from Python
// into Go (a connection's recv and send) waits for sysmon to take a P from another
// thread (every 20 µs): four busy embedded connections on two Ps served fewer requests
// than one. A P per such thread removes that wait; they are not more threads running
// Go code at once than there are, as each spends its time in Python or the kernel.
//
// Each change of GOMAXPROCS stops the world, so it changes in steps: doubled when
// short, halved once a quarter of it would do, and back to the former value when the
// last such goroutine is done. A hundred connections that come and go at once stop it
// a dozen times, not two hundred.
func Outside() (done func()) {
	procs.Lock()
	if procs.base == 0 {
		procs.base = runtime.GOMAXPROCS(0)
		procs.current = procs.base
	}
	procs.outside++
	if want := procs.base + procs.outside; want > procs.current && procs.current < maxProcs {
		procs.current = min(max(2*procs.current, want), maxProcs)
		runtime.GOMAXPROCS(procs.current)
	}
	procs.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			procs.Lock()
			procs.outside--
			want := procs.base + procs.outside
			switch {
			case procs.outside == 0 && procs.current != procs.base:
				procs.current = procs.base
			case want <= procs.current/4:
				procs.current = max(procs.current/2, procs.base)
			default:
				procs.Unlock()
				return
			}
			runtime.GOMAXPROCS(procs.current)
			procs.Unlock()
		})
	}
}
