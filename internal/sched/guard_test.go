package sched

import (
	"testing"
	"time"
)

// The guard keeps a timer due while goroutines note they are Busy, and sleeps once they
// have not for guardQuiet ticks (an idle process wakes for nothing); Busy wakes it.
func TestTheGuardTicksWhileBusyAndSleepsWhenQuiet(t *testing.T) {
	asleep := func() bool { return guardState.asleep.Load() }
	waitFor := func(what string, cond func() bool, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("not %s after %v", what, within)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	Busy()
	waitFor("awake after Busy", func() bool { return !asleep() }, 5*time.Second)
	// busy for longer than a quiet period: it stays awake
	for end := time.Now().Add(3 * guardQuiet * GuardEvery / 2); time.Now().Before(end); {
		Busy()
		time.Sleep(GuardEvery / 4)
		if asleep() {
			t.Fatal("the guard slept while goroutines were busy")
		}
	}
	waitFor("asleep once quiet", asleep, 5*guardQuiet*GuardEvery)
	Busy()
	waitFor("awake after Busy", func() bool { return !asleep() }, 5*time.Second)
	waitFor("asleep once quiet again", asleep, 5*guardQuiet*GuardEvery)
}
