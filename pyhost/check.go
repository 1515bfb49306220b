package pyhost

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// CheckPython runs the interpreter once and returns its version: it must run, and be
// Python 3.9 or later (what the pybridge package needs).
func CheckPython(ctx context.Context, python string) (string, error) {
	path, err := exec.LookPath(python)
	if err != nil {
		return "", fmt.Errorf("python %q: %w", python, err)
	}
	out, err := exec.CommandContext(ctx, path, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])").Output()
	if err != nil {
		return "", fmt.Errorf("cannot run %s: %w", path, err)
	}
	version := strings.TrimSpace(string(out))
	parts := strings.Split(version, ".")
	major, _ := strconv.Atoi(parts[0])
	minor := 0
	if len(parts) > 1 {
		minor, _ = strconv.Atoi(parts[1])
	}
	if major != 3 || minor < 9 {
		return version, fmt.Errorf("%s is Python %s; pybridge needs Python 3.9 or later", path, version)
	}
	return version, nil
}

// CheckService imports a service ("module:Attr") in cfg.Python as a worker would (its
// environment, directory and the pybridge package on its path), without instantiating
// it, and returns the Python error on one line when it does not load.
func CheckService(ctx context.Context, cfg Config, spec string) error {
	cfg = cfg.withDefaults()
	pkgDir := cfg.PackageDir
	if pkgDir == "" {
		var err error
		if pkgDir, err = embeddedPackageDir(); err != nil {
			return err
		}
	}
	cmd := exec.CommandContext(ctx, cfg.Python, "-c", "import sys; from pybridge.service import check_service; check_service(sys.argv[1])", spec)
	cmd.Env = workerEnv(cfg.Env, pkgDir)
	cmd.Dir = cfg.Dir
	out, err := cmd.CombinedOutput()
	if err == nil {
		return nil
	}
	msg := strings.TrimSpace(string(out))
	if msg == "" {
		msg = err.Error()
	}
	return errors.New(msg)
}
