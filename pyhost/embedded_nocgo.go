//go:build !cgo

package pyhost

import (
	"context"

	"fmt"
	"github.com/pybridge/pybridge/bridge"

	"github.com/pybridge/pybridge/pyhost/internal/cpython"
)

// Embedded is the CPython interpreter inside this process. This build has no cgo, so
// StartEmbedded always fails.
type Embedded struct{}

// StartEmbedded fails: this binary was built without cgo.
func StartEmbedded(ctx context.Context, cfg Config) (*Embedded, error) {
	cfg = cfg.withDefaults()
	return nil, &StartError{Python: cfg.Python, Err: fmt.Errorf("%w: %w", ErrCannotEmbed, cpython.ErrNoCgo), Embedded: true}
}

func (e *Embedded) Python() string     { return "" }
func (e *Embedded) Executable() string { return "" }
func (e *Embedded) Library() string    { return "" }

// Serve is never reached without an Embedded.
func (e *Embedded) Serve(ctx context.Context, t Transport, opts OpenOptions) error {
	return cpython.ErrNoCgo
}

// Connect is never reached without an Embedded.
func (e *Embedded) Connect(ctx context.Context) (*bridge.Conn, error) { return nil, cpython.ErrNoCgo }

// Responsive is never reached without an Embedded.
func (e *Embedded) Responsive(ctx context.Context) error { return cpython.ErrNoCgo }

// CanEmbed fails: this binary was built without cgo.
func CanEmbed(ctx context.Context, python string) error {
	return fmt.Errorf("%w: %w", ErrCannotEmbed, cpython.ErrNoCgo)
}
