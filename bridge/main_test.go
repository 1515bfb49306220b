package bridge_test

import (
	"fmt"
	"os"
	"testing"
)

// exampleAddr is an rpyc 6.0.2 classic server (ThreadedServer(SlaveService)) the
// package's Examples talk to, started for the whole test binary.
var exampleAddr string

func TestMain(m *testing.M) {
	s, err := launchRpyc(venvPath("rpyc6"), "classic", "")
	if err != nil {
		if s != nil {
			s.stop()
			fmt.Fprintf(os.Stderr, "%s\n", s.stderr.String())
		}
		fmt.Fprintf(os.Stderr, "rpyc server for the Examples (run `make setup` first): %v\n", err)
		os.Exit(1)
	}
	exampleAddr = s.addr
	code := m.Run()
	s.stop()
	os.Exit(code)
}
