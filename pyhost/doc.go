// Package pyhost launches and supervises Python worker processes and connects Go to
// them: the "launch Python workers from Go" half of pybridge.
//
// # The model
//
// A worker is a Python interpreter running `python -m pybridge.worker --fd 3`. The
// pybridge package comes from the Go binary (package python, embedded) and is written
// once to os.UserCacheDir()/pybridge/<content hash>, first on the worker's PYTHONPATH,
// so any python3 (a venv, conda, pyenv) works as a worker with nothing installed into
// it. Go and the worker talk over a Unix socketpair inherited as fd 3, never over
// stdin/stdout: the worker's stdout and stderr are pipes that Go logs line by line
// (log/slog, attributes worker and stream), so nothing hosted code prints can corrupt
// the protocol.
//
// Over that one socket run any number of RPyC connections, each a Channel, named by a
// connection id (docs/worker-protocol.md): RPyC messages cross it 1:1, encoded in
// msgpack instead of brine. A Channel is a wire.MessageStream, so bridge.Conn (a Go
// program calling Python) and bridge.Relay (an rpyc client served by a worker) run on
// it unchanged. Mode "go", which Host.Connect opens, adds one documented extension to
// RPyC: Go slices and maps cross by value (as Python lists and dicts), where RPyC
// would pass references.
//
// A Pool keeps Config.Workers workers and spreads connections over them (isolation
// "shared"), or gives each connection a pre-started worker of its own and shuts it
// down when the connection closes (isolation "connection"). A Host is a Pool plus
// bridge connections in mode "go": the entry point for Go programs.
//
//	host, err := pyhost.Start(ctx, pyhost.Config{Python: "python3"})
//	defer host.Close()
//	conn, err := host.Connect(ctx)
//	math, err := conn.Import(ctx, "math")
//	r, err := math.CallAttr(ctx, "sqrt", 2.0)
//
// # Guarantees
//
//   - Workers die with the Go process: Pdeathsig SIGKILL, set from one OS thread that
//     lives as long as the process (Pdeathsig follows the forking thread, and Go may
//     retire threads).
//   - Each worker is its own process group; killing a worker kills what its hosted code
//     started, and a terminal's Ctrl-C reaches only the Go program.
//   - Every worker is waited for: no zombies. Worker.Shutdown and Pool.Shutdown return
//     only once every process is reaped.
//   - A worker that exits, is killed by a signal or segfaults fails exactly its own
//     channels with a *WorkerExitError (exit status or signal); a Pool logs it and
//     replaces it after a backoff that doubles per consecutive crash. Health pings
//     (PING/PONG) find a worker that is alive but stuck, and the pool kills it.
//   - A connection the worker closes (hosted code closed it, or OPEN failed) reads as a
//     *ClosedError with the reason, after the messages sent before it.
//   - Config.MemoryLimit sets RLIMIT_AS on each worker (prlimit, right after start).
//
// # Canceling a call
//
// The context of a bridge call bounds the Go side's wait only. When it ends, the call
// returns ctx.Err() at once, but the request has already reached the worker: the
// Python code keeps running in its connection's thread until it returns by itself
// (CPython cannot interrupt a thread safely). Its result is then discarded, and any
// object it returned is released in the worker; the connection stays usable, though
// its next requests wait behind the running one on that connection. To stop the code
// itself, end its process: with Isolation "connection", closing the connection shuts
// its worker down (SHUTDOWN, then SIGKILL after Config.ShutdownTimeout); with shared
// workers, Channel.Worker().Kill does so for every connection of that worker.
package pyhost
