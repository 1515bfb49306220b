package pyhost

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/pybridge/pybridge/pyhost/internal/workerproto"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Worker is one Python worker process: `python -m pybridge.worker --fd 3`, with the
// Go end of a control socketpair as its fd 3. Each connection (Open) gets a socketpair
// of its own, whose worker end travels to the worker with the OPEN frame (SCM_RIGHTS):
// the connection's thread in the worker reads its own socket and serves inline, and
// the Channel reads the worker's replies straight off the other end. The control
// socket carries only HELLO, OPEN, PING/PONG and SHUTDOWN.
//
// The process is in its own process group (so a terminal's Ctrl-C reaches only the Go
// program, and killing the group also kills what hosted code spawned), gets SIGKILL
// when the Go process dies (Pdeathsig), and is always waited for: it never lingers as
// a zombie.
type Worker struct {
	id    int
	cfg   Config
	log   *slog.Logger
	cmd   *exec.Cmd
	sock  *socket
	ctl   net.Conn // reads the control socket through Go's poller (controlReader), if it could be made
	hello Hello

	opening atomic.Int32 // connections a pool picked this worker for, not yet open

	mu       sync.Mutex
	chans    map[uint64]*Channel
	handed   map[uint64]func() // client connections handed to a serving worker -> what runs when it ends
	nextConn uint64
	pings    map[int64]chan struct{}
	nextPing int64
	shutdown bool  // a clean exit was asked for
	cause    error // why Go killed it, if it did
	exitErr  *WorkerExitError

	exited  chan struct{} // closed when cmd.Wait returned
	state   *os.ProcessState
	done    chan struct{} // closed when every channel has failed and the socket is closed
	logs    sync.WaitGroup
	stderrT tail
	pipes   [2]*os.File
}

// Hello is the worker's HELLO: what it runs on.
type Hello struct {
	Protocol int
	Pid      int
	Python   string // the interpreter's version, e.g. "3.11.7"
	Codec    string // "msgpack" (the C extension) or "builtin"
	Rpyc     string // rpyc's version when importable in the worker, else ""
}

// OpenOptions describe a connection to open in a worker (the OPEN body).
type OpenOptions struct {
	Mode    string         // "classic", "service" or "go"
	Service string         // "module:Attr", mode "service" only
	Config  map[string]any // rpyc protocol_config keys
	Peer    string         // "host:port" of the client, informational
	Local   string         // "host:port" (or a socket path) the client connected to, informational
	Dialect string         // "5", "6", "ng" (rpyc-ng) or "go"; defaults to "go" in mode "go"; "" lets the peer learn 6 or ng from the client
}

// openBody is what a connection is opened with (the OPEN body; in embedded isolation
// the same map is handed to pybridge.embedded.serve).
func openBody(opts OpenOptions) map[string]any {
	body := map[string]any{"mode": opts.Mode}
	if opts.Service != "" {
		body["service"] = opts.Service
	}
	if opts.Config != nil {
		body["config"] = opts.Config
	}
	if opts.Peer != "" {
		body["peer"] = opts.Peer
	}
	if opts.Local != "" {
		body["local"] = opts.Local
	}
	if opts.Dialect == "" && opts.Mode == "go" {
		opts.Dialect = "go"
	}
	if opts.Dialect != "" {
		body["dialect"] = opts.Dialect
	}
	return body
}

// slowStart is how long a start may take before the log says it is waited for.
const slowStart = 2 * time.Second

// protocolVersion is the worker protocol (docs/worker-protocol.md) this Go side speaks.
const protocolVersion = 2

var workerIDs atomic.Int64

// StartWorker starts one worker and waits for its HELLO (bounded by ctx and
// cfg.StartTimeout). Most programs use Start or NewPool instead.
func StartWorker(ctx context.Context, cfg Config) (*Worker, error) {
	cfg = cfg.withDefaults()
	w := &Worker{
		id:     int(workerIDs.Add(1)),
		cfg:    cfg,
		chans:  make(map[uint64]*Channel),
		handed: make(map[uint64]func()),
		pings:  make(map[int64]chan struct{}),
		exited: make(chan struct{}),
		done:   make(chan struct{}),
	}
	w.log = cfg.Logger.With("worker", w.id)
	if err := w.start(ctx); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *Worker) start(ctx context.Context) error {
	startErr := func(err error) error {
		return &StartError{Python: w.cfg.Python, Err: err, Stderr: w.stderrT.String()}
	}
	pkgDir := w.cfg.PackageDir
	if pkgDir == "" && len(w.cfg.ServingWorker) == 0 {
		var err error
		if pkgDir, err = embeddedPackageDir(); err != nil {
			return startErr(err)
		}
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return startErr(fmt.Errorf("socketpair: %w", err))
	}
	w.sock = &socket{fd: fds[0]}
	child := os.NewFile(uintptr(fds[1]), "pybridge-worker-child")

	outR, outW, err := os.Pipe()
	if err != nil {
		w.sock.close()
		child.Close()
		return startErr(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		w.sock.close()
		child.Close()
		outR.Close()
		outW.Close()
		return startErr(err)
	}
	w.pipes = [2]*os.File{outR, errR}

	var cmd *exec.Cmd
	if sw := w.cfg.ServingWorker; len(sw) > 0 {
		cmd = exec.Command(sw[0], sw[1:]...)
		cmd.Env = append(append([]string{}, w.cfg.Env...), "PYTHONUNBUFFERED=1")
		if w.cfg.Env == nil {
			cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1")
		}
	} else {
		args := append(append([]string{}, w.cfg.PythonArgs...), "-m", "pybridge.worker", "--fd", "3")
		cmd = exec.Command(w.cfg.Python, args...)
		cmd.Env = workerEnv(w.cfg.Env, pkgDir)
	}
	cmd.Dir = w.cfg.Dir
	cmd.ExtraFiles = []*os.File{child}
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	w.cmd = cmd
	err = startProcess(cmd)
	// the child has its copies now; ours must go so that its exit reads as EOF
	child.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		w.sock.close()
		outR.Close()
		errR.Close()
		return startErr(err)
	}
	w.logs.Add(2)
	go w.logLines(outR, "stdout")
	go w.logLines(errR, "stderr")
	go w.wait()

	if lim := w.cfg.MemoryLimit; lim > 0 {
		// Applied right after fork/exec: the interpreter has not run any hosted code yet,
		// and the limit holds for everything the worker later starts.
		rl := unix.Rlimit{Cur: lim, Max: lim}
		if err := unix.Prlimit(cmd.Process.Pid, unix.RLIMIT_AS, &rl, nil); err != nil {
			w.abort()
			return startErr(fmt.Errorf("setting RLIMIT_AS: %w", err))
		}
	}

	deadline := time.Now().Add(w.cfg.StartTimeout)
	ctxDeadline := false
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline, ctxDeadline = d, true
	}
	rd := bufio.NewReaderSize(w.controlReader(), 64<<10)
	var f workerproto.Frame
	var buf []byte
	// a long wait says so, rather than StartTimeout of silence
	slow := time.AfterFunc(slowStart, func() {
		w.log.Info("pyhost: the worker is slow to start; waiting for it", "python", w.cfg.Python, "pid", cmd.Process.Pid, "timeout", w.cfg.StartTimeout)
	})
	err = w.sock.waitReadable(ctx, deadline, w.exited)
	slow.Stop()
	if err == nil {
		f, buf, err = workerproto.ReadFrame(rd, nil, w.cfg.Limits)
	}
	if err == nil && f.Kind != workerproto.KindHello {
		err = fmt.Errorf("first frame is %v, not HELLO", f.Kind)
	}
	if err == nil {
		if h := parseHello(f.Body); h.Protocol != protocolVersion {
			err = fmt.Errorf("worker speaks protocol %d, not %d (a pybridge package of another version on its path?)", h.Protocol, protocolVersion)
		}
	}
	if err != nil {
		exited := false
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			<-w.exited
			exited = true
		} else {
			select {
			case <-w.exited:
				exited = true
			default:
			}
		}
		switch {
		case exited:
			err = fmt.Errorf("exited before HELLO: %v", w.state)
		case ctx.Err() != nil:
			err = ctx.Err()
		case ctxDeadline && errors.Is(err, os.ErrDeadlineExceeded):
			err = context.DeadlineExceeded
		case errors.Is(err, os.ErrDeadlineExceeded):
			err = fmt.Errorf("no HELLO within %v", w.cfg.StartTimeout)
		}
		w.abort()
		w.logs.Wait()
		return startErr(err)
	}
	w.hello = parseHello(f.Body)
	w.log.Debug("pyhost: worker started", "pid", cmd.Process.Pid, "python", w.hello.Python,
		"codec", w.hello.Codec, "rpyc", w.hello.Rpyc)
	go w.read(rd, buf)
	return nil
}

// workerEnv puts the package directory first on PYTHONPATH and makes the hosted
// code's stdout unbuffered, so its lines reach the log as they are printed.
func workerEnv(env []string, pkgDir string) []string {
	if env == nil {
		env = os.Environ()
	}
	out := make([]string, 0, len(env)+2)
	pp := pkgDir
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PYTHONPATH="); ok {
			if v != "" {
				pp += string(os.PathListSeparator) + v
			}
			continue
		}
		out = append(out, kv)
	}
	return append(out, "PYTHONPATH="+pp, "PYTHONUNBUFFERED=1")
}

func parseHello(body any) Hello {
	m, _ := body.(map[string]any)
	var h Hello
	if v, ok := m["protocol"].(int64); ok {
		h.Protocol = int(v)
	}
	if v, ok := m["pid"].(int64); ok {
		h.Pid = int(v)
	}
	h.Python, _ = m["python"].(string)
	h.Codec, _ = m["codec"].(string)
	h.Rpyc, _ = m["rpyc"].(string)
	return h
}

// abort kills a worker that failed to start and releases everything it held.
func (w *Worker) abort() {
	w.kill()
	<-w.exited
	w.closeControl()
	w.sock.close()
	w.closeLogs()
}

// wait reaps the process, then kills what is left of its process group (children
// hosted code started) and gives the reader a moment to drain the socket: a child that
// inherited fd 3 could otherwise keep it open.
func (w *Worker) wait() {
	w.cmd.Wait()
	w.mu.Lock()
	w.state = w.cmd.ProcessState
	w.mu.Unlock()
	syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
	close(w.exited)
	// the reader normally sees EOF at once; a process that escaped the group may still
	// hold fd 3, so the socket is shut down after a moment to drain
	time.AfterFunc(500*time.Millisecond, w.sock.shutdown)
}

// kill sends SIGKILL to the worker's process group, unless it was already reaped
// (its pid could then belong to another process).
func (w *Worker) kill() {
	select {
	case <-w.exited:
		return
	default:
	}
	syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
	w.cmd.Process.Kill()
}

// Kill kills the worker at once (SIGKILL to its process group). Its channels fail
// with a *WorkerExitError whose Cause is cause (may be nil).
func (w *Worker) Kill(cause error) {
	w.mu.Lock()
	if w.cause == nil {
		w.cause = cause
	}
	w.mu.Unlock()
	w.kill()
}

func (w *Worker) read(rd *bufio.Reader, buf []byte) {
	var err error
	for {
		var f workerproto.Frame
		f, buf, err = workerproto.ReadFrame(rd, buf, w.cfg.Limits)
		if err != nil {
			break
		}
		w.dispatch(f)
	}
	var ce *workerproto.CodecError
	var le *workerproto.LimitError
	if errors.As(err, &ce) || errors.As(err, &le) {
		w.log.Error("pyhost: worker broke the protocol; killing it", "err", err)
		w.Kill(fmt.Errorf("protocol error: %w", err))
	}
	// The socket ended: the process is exiting or gone. Wait for it, bounded, since
	// hosted code may have closed fd 3 and kept running.
	select {
	case <-w.exited:
	case <-time.After(2 * time.Second):
		w.Kill(errors.New("worker closed its socket"))
		<-w.exited
	}
	w.finish()
}

func (w *Worker) dispatch(f workerproto.Frame) {
	switch f.Kind {
	case workerproto.KindPong:
		w.mu.Lock()
		c := w.pings[f.Seq]
		delete(w.pings, f.Seq)
		w.mu.Unlock()
		if c != nil {
			close(c)
		}
	case workerproto.KindEnded:
		w.mu.Lock()
		ended, ok := w.handed[f.Conn]
		delete(w.handed, f.Conn)
		w.mu.Unlock()
		if ok && ended != nil {
			ended()
		}
	default:
		w.log.Warn("pyhost: unexpected frame from worker", "kind", f.Kind, "conn", f.Conn)
	}
}

// finish runs once the process is reaped and the reader has stopped: every channel
// and ping fails with the exit error, and the worker's resources are released.
func (w *Worker) finish() {
	w.mu.Lock()
	e := &WorkerExitError{Worker: w.id, Pid: w.cmd.Process.Pid, Code: -1, Shutdown: w.shutdown, Cause: w.cause}
	if ws, ok := w.state.Sys().(syscall.WaitStatus); ok {
		if ws.Signaled() {
			e.Signal = ws.Signal()
		} else {
			e.Code = ws.ExitStatus()
		}
	}
	w.exitErr = e
	chans := w.chans
	w.chans = map[uint64]*Channel{}
	handed := len(w.handed)
	w.handed = map[uint64]func(){}
	w.pings = map[int64]chan struct{}{}
	w.mu.Unlock()
	if e.Shutdown {
		w.log.Debug("pyhost: worker stopped", "pid", e.Pid, "status", w.state.String())
	} else {
		w.log.Error("pyhost: worker died", "pid", e.Pid, "status", w.state.String(),
			"connections", len(chans)+handed, "err", e)
	}
	for _, ch := range chans {
		ch.workerGone()
	}
	w.closeControl()
	w.sock.close()
	w.closeLogs()
	close(w.done)
}

// closeLogs waits a little for the output pipes to reach EOF (a child of the worker
// may still hold them), then closes them.
func (w *Worker) closeLogs() {
	logged := make(chan struct{})
	go func() { w.logs.Wait(); close(logged) }()
	select {
	case <-logged:
	case <-time.After(time.Second):
	}
	for _, p := range w.pipes {
		p.Close()
	}
	<-logged
}

// logLines logs each line the worker writes to stdout or stderr.
func (w *Worker) logLines(r io.Reader, stream string) {
	defer w.logs.Done()
	br := bufio.NewReaderSize(r, 16<<10)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			s := strings.TrimRight(string(line), "\r\n")
			if stream == "stderr" {
				w.stderrT.add(s)
			}
			if stream == "stderr" && len(w.cfg.ServingWorker) > 0 {
				// a serving worker logs as this process does (its own slog lines),
				// and writes them through as they are
				os.Stderr.Write([]byte(s + "\n"))
			} else {
				w.log.Info(s, "stream", stream)
			}
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}

// send writes one frame. A failed write means the worker is going away; the caller
// gets the worker's exit error when it arrives in time.
func (w *Worker) send(f workerproto.Frame) error {
	var err error
	if eerr := workerproto.Write(f, w.cfg.Limits, func(b []byte) error { err = w.sock.write(b); return err }); err == nil {
		return eerr // nil, or the frame could not be encoded
	}
	if err != nil {
		select {
		case <-w.done:
			return w.exitErr
		case <-time.After(time.Second):
		}
		return fmt.Errorf("pyhost: worker %d: %w", w.id, err)
	}
	return nil
}

// sendFD writes one frame with fd attached (SCM_RIGHTS).
func (w *Worker) sendFD(f workerproto.Frame, fd int) error {
	var err error
	if eerr := workerproto.Write(f, w.cfg.Limits, func(b []byte) error { err = w.sock.writeWithFD(b, fd); return err }); err == nil {
		return eerr
	}
	if err != nil {
		select {
		case <-w.done:
			return w.exitErr
		case <-time.After(time.Second):
		}
		return fmt.Errorf("pyhost: worker %d: %w", w.id, err)
	}
	return nil
}

// Open starts a connection in the worker and returns its channel. Go may write to it
// at once; if the worker cannot open it (import error, bad config), the first
// ReadMessage returns a *ClosedError with the reason.
func (w *Worker) Open(ctx context.Context, opts OpenOptions) (*Channel, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	body := openBody(opts)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("pyhost: socketpair: %w", err)
	}
	w.mu.Lock()
	if w.exitErr != nil {
		w.mu.Unlock()
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, w.exitErr
	}
	if w.shutdown {
		w.mu.Unlock()
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, fmt.Errorf("pyhost: worker %d is shutting down: %w", w.id, ErrHostClosed)
	}
	w.nextConn++
	ch := newChannel(w, w.nextConn, &socket{fd: fds[0]})
	w.chans[ch.id] = ch
	w.mu.Unlock()
	err = w.sendFD(workerproto.Frame{Kind: workerproto.KindOpen, Conn: ch.id, Body: body}, fds[1])
	unix.Close(fds[1]) // the worker has its own copy now
	if err != nil {
		w.forget(ch.id)
		ch.sock.close()
		return nil, err
	}
	return ch, nil
}

// awaited reports whether a connection waits for the worker: a request of it sent and
// not answered yet.
func (w *Worker) awaited() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.handed) > 0 {
		// a serving worker's requests never pass Go: one serving clients is pinged
		return true
	}
	for _, ch := range w.chans {
		if ch.awaited.Load() > 0 {
			return true
		}
	}
	return false
}

func (w *Worker) forget(id uint64) {
	w.mu.Lock()
	delete(w.chans, id)
	w.mu.Unlock()
}

// Ping checks that the worker answers: it sends PING and waits for PONG.
func (w *Worker) Ping(ctx context.Context) error {
	w.mu.Lock()
	if w.exitErr != nil {
		w.mu.Unlock()
		return w.exitErr
	}
	w.nextPing++
	seq := w.nextPing
	c := make(chan struct{})
	w.pings[seq] = c
	w.mu.Unlock()
	// a stuck worker may not even read: the write itself must not outlast ctx (it
	// returns once the worker is killed and the socket shut down)
	sent := make(chan error, 1)
	go func() { sent <- w.send(workerproto.Frame{Kind: workerproto.KindPing, Seq: seq, Body: seq}) }()
	for {
		select {
		case err := <-sent:
			if err != nil {
				return err
			}
			sent = nil
			continue
		case <-c:
			return nil
		case <-w.done:
			return w.exitErr
		case <-ctx.Done():
			w.mu.Lock()
			delete(w.pings, seq)
			w.mu.Unlock()
			return fmt.Errorf("pyhost: worker %d did not answer PING: %w", w.id, ctx.Err())
		}
	}
}

// Shutdown asks the worker to close its connections and exit (SHUTDOWN), waits for it
// until ctx is done, then kills it. It returns once the process is reaped and every
// channel has failed with a *WorkerExitError (Shutdown set).
func (w *Worker) Shutdown(ctx context.Context) error {
	w.mu.Lock()
	already := w.shutdown || w.exitErr != nil
	w.shutdown = true
	w.mu.Unlock()
	if !already {
		go w.send(workerproto.Frame{Kind: workerproto.KindShutdown}) // may block on a stuck worker until it is killed
	}
	select {
	case <-w.exited:
	case <-ctx.Done():
		w.kill()
	}
	<-w.done
	return nil
}

// ID is the worker's number in this process, used in logs and errors.
func (w *Worker) ID() int { return w.id }

// Pid is the worker's process id.
func (w *Worker) Pid() int { return w.cmd.Process.Pid }

// Hello is what the worker reported when it started.
func (w *Worker) Hello() Hello { return w.hello }

// Done is closed once the worker is gone and all its channels have failed.
func (w *Worker) Done() <-chan struct{} { return w.done }

// Err is the worker's exit error once Done is closed, else nil.
func (w *Worker) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.exitErr == nil {
		return nil
	}
	return w.exitErr
}

// Load is the number of open connections, and of connections being opened.
func (w *Worker) Load() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.chans) + len(w.handed) + int(w.opening.Load())
}

// tail keeps the last lines of the worker's stderr for start errors.
type tail struct {
	mu    sync.Mutex
	lines []string
}

func (t *tail) add(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == 20 {
		t.lines = t.lines[1:]
	}
	t.lines = append(t.lines, s)
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

// controlReader is what the control socket is read through: Go's network poller, on a
// duplicate of the socket, where it can be made. The reader waits there between PONGs
// for seconds at a time; a thread back from such a long system call wakes Go's sysmon,
// which then polls some 60 times before it sleeps again: a health ping of an idle
// worker would cost the Go process that much. (The socket is non-blocking from then on,
// for both descriptors: socket's writes wait for room with poll(2).)
func (w *Worker) controlReader() io.Reader {
	d, err := unix.FcntlInt(uintptr(w.sock.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return w.sock
	}
	f := os.NewFile(uintptr(d), "pybridge-worker-control")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return w.sock
	}
	w.ctl = c
	return c
}

func (w *Worker) closeControl() {
	if w.ctl != nil {
		w.ctl.Close()
	}
}
