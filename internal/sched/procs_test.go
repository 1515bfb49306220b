package sched

import (
	"runtime"
	"testing"
)

func TestOutsideRaisesGOMAXPROCSPerGoroutineAndLowersItAgain(t *testing.T) {
	base := runtime.GOMAXPROCS(0)
	var done []func()
	for i := 1; i <= 8; i++ {
		done = append(done, Outside())
		if got := runtime.GOMAXPROCS(0); got != base+i {
			t.Fatalf("with %d goroutines outside Go: GOMAXPROCS %d, want %d", i, got, base+i)
		}
	}
	for _, d := range done {
		d()
		d() // a second call changes nothing
	}
	if got := runtime.GOMAXPROCS(0); got != base {
		t.Fatalf("all done: GOMAXPROCS %d, want the former %d", got, base)
	}
}
