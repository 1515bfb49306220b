package pyhost

import (
	"context"
	"encoding/json"
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
	_, err := runServiceCheck(ctx, cfg, spec, "check_service")
	return err
}

// ServiceAliases checks a service as CheckService does and returns the names rpyc's
// servers register it under with a registry: its get_service_aliases() (ALIASES, else
// the class name without "Service", upper-cased), or that rule applied to a class that
// has no such method.
func ServiceAliases(ctx context.Context, cfg Config, spec string) ([]string, error) {
	out, err := runServiceCheck(ctx, cfg, spec, "print_service_aliases")
	if err != nil {
		return nil, err
	}
	// the last line; what the service's import printed comes before it
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var names []string
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &names); err != nil {
		return nil, fmt.Errorf("service %s: reading its aliases: %w", spec, err)
	}
	return names, nil
}

// runServiceCheck runs pybridge.service.<fn>(spec) in cfg.Python and returns its stdout;
// on failure, the error is what it printed on stderr.
func runServiceCheck(ctx context.Context, cfg Config, spec, fn string) ([]byte, error) {
	cfg = cfg.withDefaults()
	pkgDir := cfg.PackageDir
	if pkgDir == "" {
		var err error
		if pkgDir, err = embeddedPackageDir(); err != nil {
			return nil, err
		}
	}
	cmd := exec.CommandContext(ctx, cfg.Python, "-c", "import sys; from pybridge.service import "+fn+"; "+fn+"(sys.argv[1])", spec)
	cmd.Env = workerEnv(cfg.Env, pkgDir)
	cmd.Dir = cfg.Dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err == nil {
		return out, nil
	}
	msg := strings.TrimSpace(stderr.String())
	if msg == "" {
		msg = strings.TrimSpace(string(out))
	}
	if msg == "" {
		msg = err.Error()
	}
	return nil, errors.New(msg)
}
