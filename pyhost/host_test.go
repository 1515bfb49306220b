//go:build pending

package pyhost

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/pybridge/pybridge/bridge"
)

// hostPythons are the interpreters the real worker is tested under: one with the
// msgpack extension, one without (its built-in codec).
func hostPythons(t *testing.T) map[string]string {
	out := map[string]string{}
	for name, codec := range map[string]string{"rpyc6": "msgpack", "pydantic1": "builtin"} {
		p, _ := filepath.Abs("../.venv/" + name + "/bin/python")
		if _, err := os.Stat(p); err != nil {
			t.Skipf("no %s venv (run make setup)", name)
		}
		out[codec] = p
	}
	return out
}

func startHost(t *testing.T, python string, mod func(*Config)) *Host {
	t.Helper()
	ctx, cancel := contextWithTimeout(t, 30*time.Second)
	defer cancel()
	cfg := Config{Python: python, Logger: slog.New(newLogRecorder()), RestartBackoff: 10 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	h, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Close()
		noChildrenLeft(t)
	})
	return h
}
