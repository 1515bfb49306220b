//go:build cgo

package cpython

/*
#include "capi.h"
*/
import "C"

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// GILProbe tells whether Python's threads can still be scheduled: a thread of its own
// (pb_start_gil_prober, not one of Go's) takes the GIL and gives it back for each probe.
// Go only writes a byte to a pipe and reads one back, through its network poller: no
// cgo call that could wait for the GIL, so nothing of Go's runtime waits with it (see
// sched.Busy), and a probe costs the prober's wake-up and little else.
type GILProbe struct {
	turn chan struct{} // one probe at a time
	req  *os.File      // Go writes a probe's byte here
	resp *os.File      // and reads it back here once the GIL was taken
	seq  byte
}

// StartGILProbe starts the prober thread. The interpreter must be running.
func StartGILProbe() (*GILProbe, error) {
	var a, b [2]int
	if err := unix.Pipe2(a[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("cpython: GIL probe: %w", err)
	}
	if err := unix.Pipe2(b[:], unix.O_CLOEXEC); err != nil {
		unix.Close(a[0])
		unix.Close(a[1])
		return nil, fmt.Errorf("cpython: GIL probe: %w", err)
	}
	// the prober's ends stay blocking; Go's go to its poller
	unix.SetNonblock(a[1], true)
	unix.SetNonblock(b[0], true)
	if e := C.pb_start_gil_prober(C.int(a[0]), C.int(b[1])); e != 0 {
		for _, fd := range []int{a[0], a[1], b[0], b[1]} {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("cpython: GIL probe thread: %w", syscall.Errno(e))
	}
	p := &GILProbe{turn: make(chan struct{}, 1), req: os.NewFile(uintptr(a[1]), "gil-probe"),
		resp: os.NewFile(uintptr(b[0]), "gil-probe-answer")}
	return p, nil
}

// Probe returns nil once the prober thread has taken the GIL and given it back, or
// ctx's error while Python's threads hold it (a C call that does not release it, or a
// hang).
func (p *GILProbe) Probe(ctx context.Context) error {
	select {
	case p.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.turn }()
	p.seq++
	want := p.seq
	if _, err := p.req.Write([]byte{want}); err != nil {
		return fmt.Errorf("cpython: GIL probe: %w", err)
	}
	p.resp.SetReadDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { p.resp.SetReadDeadline(time.Now()) })
	defer stop()
	var b [16]byte
	for {
		n, err := p.resp.Read(b[:])
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("cpython: GIL probe: %w", err)
		}
		if n > 0 && b[n-1] == want {
			return nil // answers to earlier probes that gave up are skipped
		}
	}
}
