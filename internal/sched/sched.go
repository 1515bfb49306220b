// Package sched keeps a goroutine that never blocks in Go from waking the runtime's
// monitor thread.
//
// A goroutine that spends its life in system calls and cgo calls (a relay polling two
// sockets, a connection's thread inside a long call into Python) is never rescheduled:
// it never parks in Go. After 10 ms on the same scheduling tick the runtime's monitor
// (sysmon) treats it as running too long and, each time it finds it in a system call,
// takes its P away and hands it off. Sysmon then wakes every 20 µs for as long as the
// goroutine is busy, and the goroutine pays for getting a P back, or moves to another
// thread, on most requests. Passing through the scheduler now and then (a Gosched every
// few milliseconds, two thread hand-offs each time) starts a new tick, and sysmon sleeps.
package sched

import (
	"runtime"
	"time"
)

// Every is how often Yielder.Tick yields: well inside sysmon's 10 ms.
const Every = 5 * time.Millisecond

// Yielder belongs to one goroutine; its zero value is ready.
type Yielder struct{ last time.Time }

// Tick yields to the scheduler if the goroutine has not done so for Every, and notes it
// Busy. Call it from the goroutine's loop, before it waits outside Go again, at a point
// where it holds no lock another goroutine waits for.
func (y *Yielder) Tick() {
	Busy()
	if now := time.Now(); now.Sub(y.last) > Every {
		runtime.Gosched()
		y.last = now
	}
}
