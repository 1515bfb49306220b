package sched

import (
	"runtime"
	"testing"
)

func TestOutsideKeepsAPPerGoroutineInFewStepsAndLowersItAgain(t *testing.T) {
	base := runtime.GOMAXPROCS(0)
	var done []func()
	changes, last := 0, base
	note := func(n int) int {
		got := runtime.GOMAXPROCS(0)
		if got != last {
			changes++
			last = got
		}
		return got
	}
	for i := 1; i <= 100; i++ {
		done = append(done, Outside())
		if got := note(i); got < base+i || got > 2*(base+i) {
			t.Fatalf("with %d goroutines outside Go: GOMAXPROCS %d, want %d to %d", i, got, base+i, 2*(base+i))
		}
	}
	for i, d := range done {
		d()
		d() // a second call changes nothing
		if left := len(done) - i - 1; left > 0 {
			if got := note(0); got < base+left {
				t.Fatalf("with %d goroutines outside Go: GOMAXPROCS %d, below %d", left, got, base+left)
			}
		}
	}
	if got := note(0); got != base {
		t.Fatalf("all done: GOMAXPROCS %d, want the former %d", got, base)
	}
	// each change stops the world: a hundred goroutines, up and down, in a dozen or so
	if changes > 16 {
		t.Fatalf("GOMAXPROCS changed %d times for 100 goroutines", changes)
	}
}
