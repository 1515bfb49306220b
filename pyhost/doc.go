// Package pyhost runs Python for pybridge: interpreters it embeds in this process or
// worker processes it launches and supervises, and the Go API entry points.
//
// # Where to start
//
// A Go program calling Python starts a Host and connects:
//
//	host, err := pyhost.Start(ctx, pyhost.Config{Python: "python3", Isolation: pyhost.IsolationEmbedded})
//	defer host.Close()
//	conn, err := host.Connect(ctx)                       // a *bridge.Conn
//	math, err := conn.Import(ctx, "math")
//	r, err := bridge.As[float64](math.CallAttr(ctx, "sqrt", 2.0))
//
// The Python side is the pybridge package, carried by this binary (package python) and
// put first on the interpreter's path: any python3 (a venv, conda, pyenv) works with
// nothing installed into it.
//
// # Isolations
//
// "embedded" (StartEmbedded): the interpreter's shared library is loaded into this
// process (found with that interpreter's own sysconfig; stable ABI, 3.9+). Requests run
// on the calling goroutine through the C API; a bridge.Ref holds the Python object
// itself. One interpreter per process; a crash in Python ends the process; Python runs
// on one core at a time (the GIL). Cancelling a call's context interrupts its Python
// code at the next bytecode boundary (C code that does not return is not interrupted).
//
// "shared" and "connection" (NewPool): worker processes, `python -m pybridge.worker --fd
// 3`. Go talks to a worker over a control socketpair (fd 3) and gives each connection a
// socketpair of its own, passed with the OPEN frame (docs/worker-protocol.md): RPyC
// messages cross it 1:1, in msgpack instead of brine, and the worker's thread for the
// connection reads its own socket and serves inline. A Channel is that connection, a
// wire.MessageStream, so bridge.Conn and bridge.Relay run on it unchanged. "shared"
// spreads connections over Config.Workers workers (least loaded first, counting the
// ones being opened); "connection" gives each connection a pre-started worker of its
// own and shuts it down when the connection closes. The workers' stdout and stderr are
// logged line by line (log/slog, attributes worker and stream).
//
// A pool may instead run serving workers (Config.ServingWorker: `pybridge serve
// --worker-fd 3 …`, the interpreter embedded): Pool.Hand passes an accepted client's
// socket itself to one, which serves the rpyc wire on it as embedded isolation does, and
// tells the pool when the connection ended (ENDED); the worker's side of that is
// HandedListener. Requests then never pass this process.
//
// Mode "go", which Host.Connect opens, adds one documented extension to RPyC: Go slices
// and maps cross by value (as Python lists and dicts), where RPyC would pass references.
//
// # Guarantees of spawned workers
//
//   - Workers die with the Go process (Pdeathsig SIGKILL), each in its own process
//     group (killing it kills what hosted code started; a terminal's Ctrl-C reaches only
//     the Go program), and are always waited for: no zombies.
//   - A worker that exits, is killed or segfaults fails exactly its own channels with a
//     *WorkerExitError; a Pool logs it and replaces it after a backoff that doubles per
//     consecutive crash. Health pings find a worker that is hung (no answer, and no CPU
//     used meanwhile) and the pool kills it; one busy in a long C call is left alone.
//   - A connection the worker closes (hosted code closed it, OPEN failed) reads as a
//     *ClosedError with the reason, after the messages sent before it.
//   - Config.MemoryLimit sets RLIMIT_AS on each worker (prlimit, right after start).
//
// # Cancelling a call to a spawned worker
//
// The context bounds the Go side's wait only: the call returns ctx.Err() at once, the
// Python code runs on to its end in its connection's thread, and its result is
// released. To stop the code itself, end its process: with Isolation "connection",
// closing the connection shuts its worker down; with shared workers,
// Channel.Worker().Kill does so for every connection of that worker.
package pyhost
