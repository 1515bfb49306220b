package pyhost

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain fails the run if a test left a goroutine of this package behind (the one
// spawner goroutine is meant to live as long as the process).
func TestMain(m *testing.M) {
	if os.Getenv(servingWorkerEnv) != "" {
		os.Exit(fakeServingWorker())
	}
	code := m.Run()
	if code == 0 {
		if leaked := leftoverGoroutines(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines left behind:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

func leftoverGoroutines(bound time.Duration) string {
	deadline := time.Now().Add(bound)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "pybridge/pyhost.") && !strings.Contains(g, "pyhost.startProcess") &&
				!strings.Contains(g, "pyhost.TestMain") && !strings.Contains(g, "pyhost.leftoverGoroutines") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
