package bridge_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pybridge/pybridge/bridge"
	"github.com/pybridge/pybridge/bridge/wire"
)

// A layout probe a server does not speak is logged by that server as an error with a
// traceback ("client connection terminated abruptly"): rpyc cannot read the other
// version's messages, and no message is silent in both (Dial's doc says why). Dial
// therefore probes an address once per process: later Dials speak the layout it found
// at once, and the server logs nothing more. A 6.x server is never probed in the wrong
// layout.
func TestDialProbesAnAddressOnce(t *testing.T) {
	for _, c := range []struct {
		venv   string
		errors int // "client connection terminated abruptly" in the server's log after all the Dials
	}{{"rpyc5", 1}, {"rpyc6", 0}} {
		t.Run(c.venv, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()
			s := runRpycServer(t, c.venv, "classic", "")
			for i := range 3 {
				conn, err := bridge.Dial(ctx, s.network, s.addr)
				if err != nil {
					t.Fatal(err)
				}
				if v, err := conn.Eval(ctx, "6 * 7"); err != nil || v != int64(42) {
					t.Errorf("dial %d: eval = %v, %v", i, v, err)
				}
				conn.Close()
				if i == 0 && c.errors > 0 {
					waitStderr(t, s, "terminated abruptly") // the first probe's, logged
				}
			}
			mark(t, ctx, s)
			if n := strings.Count(s.stderr.String(), "terminated abruptly"); n != c.errors {
				t.Errorf("the server logged %d errors after 3 Dials, want %d:\n%s", n, c.errors, s.stderr.String())
			}
		})
	}
}

// A server replaced by one of the other version at the same address is found again:
// the remembered layout is checked with a PING, and probed afresh when it fails.
func TestDialFindsAReplacedServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	sock := filepath.Join(t.TempDir(), "rpyc.sock")
	for _, venv := range []string{"rpyc5", "rpyc6", "rpyc5"} {
		s := runRpycServer(t, venv, "classic", sock)
		conn, err := bridge.Dial(ctx, s.network, s.addr)
		if err != nil {
			t.Fatalf("%s: %v", venv, err)
		}
		v, err := conn.Eval(ctx, "int(__import__('rpyc').__version__.split('.')[0])")
		if want := map[string]int64{"rpyc5": 5, "rpyc6": 6}[venv]; err != nil || v != want {
			t.Errorf("%s: the server's rpyc major version = %v, %v", venv, v, err)
		}
		conn.Close()
		s.stop()
		os.Remove(sock)
	}
}

// WithDialect speaks the given layout at once: the server logs nothing.
func TestDialWithDialectLogsNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := runRpycServer(t, "rpyc5", "classic", "")
	conn, err := bridge.Dial(ctx, s.network, s.addr, bridge.WithDialect(wire.Dialect5))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := conn.Eval(ctx, "6 * 7"); err != nil || v != int64(42) {
		t.Errorf("eval = %v, %v", v, err)
	}
	conn.Close()
	mark(t, ctx, s)
	if strings.Contains(s.stderr.String(), "Traceback") {
		t.Errorf("the server logged an error:\n%s", s.stderr.String())
	}
}

// mark has the server write a line to its stderr through a fresh connection in its own
// layout (no probe) and waits for it: whatever the server logged before is in s.stderr.
func mark(t *testing.T, ctx context.Context, s *rpycServer) {
	t.Helper()
	d := wire.Dialect6
	if s.venv == "rpyc5" {
		d = wire.Dialect5
	}
	conn, err := bridge.Dial(ctx, s.network, s.addr, bridge.WithDialect(d))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Execute(ctx, "import sys; sys.stderr.write('MARK\\n'); sys.stderr.flush()"); err != nil {
		t.Fatal(err)
	}
	waitStderr(t, s, "MARK")
}

func waitStderr(t *testing.T, s *rpycServer, text string) {
	t.Helper()
	poll(t, "the rpyc server's stderr shows "+text, func() bool { return strings.Contains(s.stderr.String(), text) })
}
