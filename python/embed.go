// Package python holds the pybridge Python package, embedded in every Go binary that
// imports it. Package pyhost writes it out once per content hash and puts it first on
// a worker's PYTHONPATH, so any python3 works as a worker without installing anything
// into it.
package python

import "embed"

// Package is the pybridge package: its .py files under "pybridge/" (no __pycache__).
//
//go:embed pybridge/*.py
var Package embed.FS
