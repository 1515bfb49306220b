package sched

import (
	"sync"
	"sync/atomic"
	"time"
)

// GuardEvery bounds how long the world can stay stopping because of a goroutine the
// runtime did not find in its system call (see Busy).
const GuardEvery = 100 * time.Millisecond

// guardQuiet is how many ticks without Busy before the guard sleeps: an idle process
// wakes for nothing.
const guardQuiet = 10

var guardState struct {
	busy   atomic.Bool   // Busy was called since the guard's last tick
	asleep atomic.Bool   // the guard waits for Busy (or has not started)
	wake   chan struct{} // Busy to the sleeping guard
	once   sync.Once
}

func init() {
	guardState.asleep.Store(true)
	guardState.wake = make(chan struct{}, 1)
}

// Busy notes that the calling goroutine is about to wait outside Go, in a system call
// or in C, for something that may take long: the GIL, a client's next request. Until a
// second after the last such note, a timer is kept due every GuardEvery.
//
// To stop the world (for a GC, a GOMAXPROCS change) the Go runtime (1.26, 1.27) takes
// the P of each goroutine it finds in a system call or cgo call, in one pass; a
// goroutine that enters its call while that pass runs keeps its P, and the world waits
// for the call to return. For most calls that is soon. A thread waiting for the GIL can
// wait for ever: the GIL's holder may be a thread back from C that waits for the world
// to start again (seen as a server that answered nothing, about once in 10⁴ stops with
// dozens of connection threads starting at once); a relay waiting in poll(2) waits for
// its client. The runtime's monitor (sysmon) would take the P, but while the world is
// stopping it sleeps until the next timer is due, up to a minute when none is: the
// guard's timer wakes it within GuardEvery, and it hands the P over.
//
// Busy costs an atomic load when it was called in the last GuardEvery.
func Busy() {
	g := &guardState
	if g.busy.Load() {
		return
	}
	g.busy.Store(true)
	if g.asleep.Load() {
		started := false
		g.once.Do(func() {
			started = true
			g.asleep.Store(false)
			go guard()
		})
		if !started {
			select {
			case g.wake <- struct{}{}:
			default:
			}
		}
	}
}

func guard() {
	g := &guardState
	t := time.NewTicker(GuardEvery)
	for quiet := 0; ; {
		<-t.C
		if g.busy.Swap(false) {
			quiet = 0
			continue
		}
		if quiet++; quiet < guardQuiet {
			continue
		}
		t.Stop()
		g.asleep.Store(true)
		if !g.busy.Load() {
			<-g.wake
		}
		g.asleep.Store(false)
		select {
		case <-g.wake:
		default:
		}
		t.Reset(GuardEvery)
		quiet = 0
	}
}
