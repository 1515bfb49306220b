//go:build cgo

package cpython

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestGILProbeAnswersUnlessTheGILIsHeld(t *testing.T) {
	start(t)
	p, err := StartGILProbe()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 3 {
		if err := p.Probe(ctx); err != nil {
			t.Fatalf("probe of an idle interpreter: %v", err)
		}
	}
	// a Python thread in a C call that keeps the GIL (libc's usleep through ctypes.PyDLL,
	// which does not release it): the probe gets no answer until the call returns. (A
	// machine that stalls longer than the call is tried again.)
	Enter()
	eval(t, "__import__('ctypes')").DecRef() // imported before: an import releases the GIL for its I/O
	Leave()
	for attempt := 1; ; attempt++ {
		held := make(chan struct{})
		released := make(chan struct{})
		go func() {
			Enter()
			close(held)
			eval(t, "__import__('ctypes').PyDLL(None).usleep(1500000)").DecRef()
			Leave()
			close(released)
		}()
		<-held
		short, cancelShort := context.WithTimeout(context.Background(), 300*time.Millisecond)
		err = p.Probe(short)
		cancelShort()
		stalled := false
		select {
		case <-released:
			stalled = true
		default:
		}
		<-released
		if stalled && attempt < 3 {
			continue
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("probe while the GIL is held: %v", err)
		}
		break
	}
	// answers that came late are not taken for the next probe's
	if err := p.Probe(ctx); err != nil {
		t.Fatalf("probe after the GIL was released: %v", err)
	}
	if err := p.Probe(ctx); err != nil {
		t.Fatalf("second probe after: %v", err)
	}
}
