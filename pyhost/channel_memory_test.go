//go:build cgo && !race

package pyhost

import (
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/pybridge/pybridge/bridge/wire"
)

// Memory measured with the process's RSS: not under the race detector, whose shadow
// memory moves it by tens of MiB (make test runs this under each embedded Python).

func rssKiB(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// A large reply (compressed, so Go's to write) leaves no buffer of its size behind in
// the connection, which lives on.
func TestEmbeddedLargeRepliesLeaveNoBufferBehind(t *testing.T) {
	e, ctx := testEmbedded(t)
	const size = 32 << 20
	var base int
	for i := range 4 {
		_, client, _ := serveSocket(ctx, t, e, wire.Dialect5)
		if v, err := client.Eval(ctx, fmt.Sprintf("b'x' * %d", size)); err != nil || len(v.([]byte)) != size {
			t.Fatalf("large reply: %v", err)
		}
		if _, err := client.Eval(ctx, "1"); err != nil { // the next request, through the channel
			t.Fatal(err)
		}
		debug.FreeOSMemory()
		debug.FreeOSMemory()
		if i == 0 { // after the first: what one large message leaves in pools is no connection's
			base = rssKiB(t)
		}
	}
	if grown := rssKiB(t) - base; grown > 40<<10 {
		t.Fatalf("after three more connections' %d MiB replies the process holds %d MiB more", size>>20, grown>>10)
	}
}
