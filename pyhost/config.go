package pyhost

import (
	"log/slog"
	"time"

	"github.com/pybridge/pybridge/pyhost/internal/workerproto"
)

// Limits bound the frames on a worker's sockets: frame length, nesting, items.
type Limits = workerproto.Limits

// DefaultLimits are used wherever a zero Limits is given.
func DefaultLimits() Limits { return workerproto.DefaultLimits() }

// Config configures workers, pools and hosts. The zero value of every field means its
// default.
type Config struct {
	// Python is the interpreter: a name looked up on PATH or a path (default "python3").
	// Nothing needs to be installed into it: the pybridge package comes from the Go
	// binary.
	Python string
	// PythonArgs go before "-m pybridge.worker" (e.g. "-X", "dev").
	PythonArgs []string
	// Env is the workers' environment (default: this process's). PYTHONPATH gets the
	// package directory prepended; PYTHONUNBUFFERED=1 is added.
	Env []string
	// Dir is the workers' working directory (default: this process's).
	Dir string
	// PackageDir, when set, is put on PYTHONPATH instead of the embedded package (a
	// directory holding pybridge/, e.g. the python/ folder of a source checkout).
	PackageDir string

	// ServingWorker, when set, is the command line each worker is started with instead
	// of `python -m pybridge.worker`: a program that speaks the worker protocol on fd 3
	// and serves, itself, the rpyc clients whose sockets Pool.Hand passes to it (reading
	// and writing the rpyc wire with Python embedded: `pybridge serve --worker-fd 3 …`).
	// Such a pool takes Hand, never Open. Env, Dir and MemoryLimit apply to it; Python,
	// PythonArgs and PackageDir are its own business.
	ServingWorker []string

	// Workers is the number of live workers a pool keeps (default 1). With isolation
	// "connection" it is the number of spare, pre-started workers.
	Workers int
	// Isolation is "shared" (default: connections spread over the workers, least
	// loaded first) or "connection" (each connection gets a worker of its own, retired
	// when the connection closes).
	Isolation string

	// MemoryLimit, when non-zero, is each worker's address-space limit in bytes
	// (RLIMIT_AS, set with prlimit right after the process starts). Allocations past it
	// fail with MemoryError in Python; some C extensions abort instead.
	MemoryLimit uint64

	StartTimeout    time.Duration // for HELLO (default 30s)
	ShutdownTimeout time.Duration // from SHUTDOWN to SIGKILL (default 5s)
	PingInterval    time.Duration // health pings of a pool's workers a request waits for (default 10s; negative: none)
	PingTimeout     time.Duration // a PING unanswered this long is a failure (default 10s)
	// PingFailures consecutive failed pings, with the worker using no CPU meanwhile,
	// make the pool kill and replace it (default 3). A worker busy in C code that holds
	// the GIL cannot answer, but it uses CPU: it is never killed for that.
	PingFailures int
	// RestartBackoff is the first delay before replacing a crashed worker (default
	// 100ms); it doubles per consecutive crash up to MaxRestartBackoff (default 30s) and
	// resets once a worker has lived for a minute.
	RestartBackoff    time.Duration
	MaxRestartBackoff time.Duration

	// Limits bound frames on the worker socket (default DefaultLimits()).
	Limits Limits
	// Logger gets the workers' stdout and stderr lines (level Info, attributes worker
	// and stream) and supervision events (default slog.Default()).
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Python == "" {
		c.Python = "python3"
	}
	if c.Workers <= 0 {
		c.Workers = 1
	}
	if c.Isolation == "" {
		c.Isolation = "shared"
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = 30 * time.Second
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 5 * time.Second
	}
	if c.PingInterval == 0 {
		c.PingInterval = 10 * time.Second
	}
	if c.PingTimeout <= 0 {
		c.PingTimeout = 10 * time.Second
	}
	if c.PingFailures <= 0 {
		c.PingFailures = 3
	}
	if c.RestartBackoff <= 0 {
		c.RestartBackoff = 100 * time.Millisecond
	}
	if c.MaxRestartBackoff <= 0 {
		c.MaxRestartBackoff = 30 * time.Second
	}
	c.Limits = c.Limits.OrDefault()
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
