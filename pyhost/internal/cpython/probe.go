package cpython

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// Info is what an interpreter says of itself: which executable it is and where its
// shared library lives (its own sysconfig).
type Info struct {
	Executable   string // sys.executable: a venv's python stays the venv's
	Version      string // e.g. "3.11.7"
	Major, Minor int
	Library      string // the libpython3.X.so to load; "" when there is none
	Shared       bool   // built with --enable-shared (Py_ENABLE_SHARED)
	FreeThreaded bool   // a free-threaded build (Py_GIL_DISABLED)
}

const probeScript = `
import json, os, sys, sysconfig
v = sysconfig.get_config_var
libdir = v("LIBDIR") or ""
lib = ""
for name in (v("INSTSONAME"), v("LDLIBRARY")):
    if not name or ".so" not in name:
        continue
    for d in (libdir, os.path.join(libdir, v("MULTIARCH") or ""), os.path.join(sys.base_prefix, "lib")):
        p = os.path.join(d, name)
        if os.path.exists(p):
            lib = p
            break
    if lib:
        break
print(json.dumps({"executable": sys.executable, "version": "%d.%d.%d" % sys.version_info[:3],
    "major": sys.version_info[0], "minor": sys.version_info[1], "library": lib,
    "shared": bool(v("Py_ENABLE_SHARED")), "free_threaded": bool(v("Py_GIL_DISABLED"))}))
`

// Probe runs python (a name on PATH or a path) once and reads its Info.
func Probe(ctx context.Context, python string) (Info, error) {
	path, err := exec.LookPath(python)
	if err != nil {
		return Info{}, fmt.Errorf("python %q: %w", python, err)
	}
	cmd := exec.CommandContext(ctx, path, "-I", "-c", probeScript)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return Info{}, fmt.Errorf("asking %s about itself: %w: %s", path, err, strings.TrimSpace(stderr.String()))
	}
	var raw struct {
		Executable, Version, Library string
		Major, Minor                 int
		Shared                       bool
		FreeThreaded                 bool `json:"free_threaded"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		return Info{}, fmt.Errorf("asking %s about itself: %w (it said %q)", path, err, out)
	}
	info := Info{Executable: raw.Executable, Version: raw.Version, Major: raw.Major, Minor: raw.Minor,
		Library: raw.Library, Shared: raw.Shared, FreeThreaded: raw.FreeThreaded}
	if info.Executable == "" {
		info.Executable = path
	}
	return info, nil
}

var (
	// ErrNoSharedLibrary: the interpreter was built without a shared library (a static
	// build), so it cannot be loaded into this process.
	ErrNoSharedLibrary = errors.New("the interpreter has no shared library (built without --enable-shared); use a spawned isolation (--isolation shared)")
	// ErrUnsupported: the interpreter cannot be embedded (too old, or free-threaded).
	ErrUnsupported = errors.New("unsupported interpreter")
)

// Check says whether info describes an interpreter this package can embed.
func (info Info) Check() error {
	switch {
	case info.Major != 3 || info.Minor < 9:
		return fmt.Errorf("the interpreter is Python %s, older than 3.9: %w", info.Version, ErrUnsupported)
	case info.FreeThreaded:
		return fmt.Errorf("the interpreter is a free-threaded build of Python %s: %w", info.Version, ErrUnsupported)
	case info.Library == "":
		return fmt.Errorf("%s (Python %s): %w", info.Executable, info.Version, ErrNoSharedLibrary)
	}
	return nil
}
