// Command pybridge serves rpyc clients (5.x and 6.x on one port) from supervised Python
// workers. See docs/cli.md.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pybridge/pybridge/bridge/wire"
	"github.com/pybridge/pybridge/pyhost"
	"github.com/pybridge/pybridge/registry"
	"github.com/pybridge/pybridge/server"
	"github.com/pybridge/pybridge/server/metrics"
)

// Version is the pybridge version (set with -ldflags "-X main.Version=…"); without it,
// the module version from the build info.
var Version = ""

// versionLine is "pybridge <version> (<vcs revision>[, modified], <go version>)".
func versionLine() string {
	v, rev, modified, goVersion := Version, "", false, runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" && bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	parts := []string{}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if modified {
			rev += ", modified"
		}
		parts = append(parts, rev)
	}
	parts = append(parts, goVersion, "cgo "+strconv.FormatBool(embedAvailable))
	return "pybridge " + v + " (" + strings.Join(parts, ", ") + ")"
}

const usage = `pybridge serves existing rpyc clients from supervised Python workers.

Usage:
  pybridge serve [flags]     serve rpyc 5.x and 6.x clients on one port
  pybridge registry [flags]  an rpyc registry server (as rpyc_registry), UDP or TCP
  pybridge version           print the version

Run 'pybridge serve --help' or 'pybridge registry --help' for their flags.
`

// gcPercent is pybridge serve's GOGC unless the environment sets one: large values
// (a 1 MiB echo allocates a few MiB) made the default 100 collect on every request
// (bench: 1 MiB echo 10.1 ms of server CPU at 100, 4.4 ms at 400, 5.0 at 200).
const gcPercent = 400

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		os.Exit(serve(os.Args[2:]))
	case "registry":
		os.Exit(registryCmd(os.Args[2:]))
	case "version", "--version", "-v":
		fmt.Println(versionLine())
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "pybridge: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
}

type serveFlags struct {
	classic        bool
	service        string
	protocolConfig string
	host           string
	port           int
	ipv6           bool
	unixPath       string
	mode           string
	sslKey         string
	sslCert        string
	sslCA          string
	python         string
	workers        int
	isolation      string
	rpycVersion    string
	logLevel       string
	quiet          bool
	pingInterval   time.Duration
	pingTimeout    time.Duration
	pingFailures   int
	shutdownGrace  time.Duration
	logFormat      string
	logFile        string
	register       bool
	registryType   string
	registryHost   string
	registryPort   int
	registryEvery  time.Duration
	metricsAddr    string
	pprof          bool
	worker         string
	workerFd       int

	config map[string]any // --protocol-config, decoded
	level  slog.Level
}

func parseServe(args []string) (*serveFlags, error) {
	f := &serveFlags{}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: pybridge serve (--classic | --service module:Attr) [flags]

Serves rpyc clients, like rpyc_classic or ThreadedServer(MyService), from Python workers.
Clients of rpyc 5.x and 6.x connect to the same port unchanged.

What to serve:
`)
		fs.PrintDefaults()
	}
	fs.BoolVar(&f.classic, "classic", false, "classic mode (SlaveService: modules, eval, execute, namespace)")
	fs.StringVar(&f.service, "service", "", "serve an rpyc.Service or pybridge.Service subclass, as `module:Attr`")
	fs.StringVar(&f.protocolConfig, "protocol-config", "", "rpyc protocol_config keys as a JSON object")
	fs.StringVar(&f.host, "host", "", "address to bind (default 127.0.0.1, or ::1 with --ipv6)")
	fs.IntVar(&f.port, "port", -1, "TCP port (default 18812 classic, 18821 classic with TLS, 18861 service; 0 picks one)")
	fs.IntVar(&f.port, "p", -1, "short for --port")
	fs.BoolVar(&f.ipv6, "ipv6", false, "listen on IPv6")
	fs.StringVar(&f.unixPath, "unix", "", "listen on a Unix socket at `path` instead of TCP")
	fs.StringVar(&f.mode, "mode", "threaded", "threaded (many connections), forking (a worker process per connection: --isolation connection), oneshot (serve one connection, then exit) or stdio (one connection over stdin/stdout)")
	fs.StringVar(&f.mode, "m", "threaded", "short for --mode (as rpyc_classic)")
	fs.StringVar(&f.sslKey, "ssl-keyfile", "", "TLS private key (PEM)")
	fs.StringVar(&f.sslCert, "ssl-certfile", "", "TLS certificate (PEM)")
	fs.StringVar(&f.sslCA, "ssl-cafile", "", "require client certificates signed by this CA (PEM)")
	fs.StringVar(&f.python, "python", "python3", "worker interpreter; nothing needs to be installed in it")
	fs.IntVar(&f.workers, "workers", 1, "worker processes (spawned isolations)")
	fs.StringVar(&f.isolation, "isolation", "auto", "auto, embedded (Python inside this process), shared (connections spread over --workers processes) or connection (a worker process per connection); auto is embedded when the interpreter has a shared library and --workers is 1, else shared")
	fs.StringVar(&f.rpycVersion, "rpyc-version", "auto", "client protocol: auto (detected per connection), 5, 6 or ng (rpyc-ng 7.x)")
	fs.StringVar(&f.worker, "worker", "auto", "what a spawned worker process is: embedded (pybridge with Python embedded, serving the client's socket itself: the fast path), python (a Python process; Go relays each message to it) or auto (embedded when the interpreter has a shared library, cgo is in and no --metrics-addr is given)")
	fs.IntVar(&f.workerFd, "worker-fd", -1, "internal: serve the connections a pybridge pool hands over the control socket at this fd (how pybridge starts its embedded workers)")
	fs.DurationVar(&f.pingInterval, "ping-interval", 10*time.Second, "how often spawned workers are pinged (0 or less: never)")
	fs.DurationVar(&f.pingTimeout, "ping-timeout", 10*time.Second, "a ping unanswered this long fails")
	fs.IntVar(&f.pingFailures, "ping-failures", 3, "failed pings in a row, with the worker using no CPU meanwhile, that make it count as hung: it is killed and replaced (a worker busy in C code is never killed)")
	fs.DurationVar(&f.shutdownGrace, "shutdown-grace", 10*time.Second, "on SIGTERM or SIGINT: stop accepting, close idle connections, and give the others this long to finish their requests")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&f.quiet, "quiet", false, "log errors only")
	fs.BoolVar(&f.quiet, "q", false, "short for --quiet (as rpyc_classic)")
	fs.StringVar(&f.logFormat, "log-format", "text", "text or json")
	fs.StringVar(&f.logFile, "logfile", "", "append the log to `path` instead of standard error")
	fs.BoolVar(&f.register, "register", false, "register with an rpyc registry (as rpyc_classic --register), renew the registration every --registry-interval, unregister on exit; failures are logged, never fatal")
	fs.StringVar(&f.registryType, "registry-type", "UDP", "UDP or TCP registry")
	fs.StringVar(&f.registryHost, "registry-host", "", "the registry's address (UDP default 255.255.255.255, a broadcast; TCP: required)")
	fs.IntVar(&f.registryPort, "registry-port", registry.DefaultPort, "the registry's UDP or TCP port")
	fs.DurationVar(&f.registryEvery, "registry-interval", registry.ReregisterInterval, "how often the registration is renewed (rpyc's servers: 60s); keep it under the registry's pruning timeout")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "serve Prometheus metrics at http://`host:port`/metrics")
	fs.BoolVar(&f.pprof, "pprof", false, "also serve Go's profiles under /debug/pprof/ on the --metrics-addr listener")
	if err := fs.Parse(splitShortValues(args)); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if f.classic == (f.service != "") {
		return nil, errors.New("give exactly one of --classic and --service module:Attr")
	}
	if f.service != "" && !strings.Contains(f.service, ":") {
		return nil, fmt.Errorf("--service %q: want module:Attr", f.service)
	}
	switch f.mode {
	case "threaded", "stdio", "oneshot":
	case "forking":
		f.isolation = "connection" // rpyc's ForkingServer: each connection in a process of its own
	default:
		return nil, fmt.Errorf("--mode %q: want threaded, forking, oneshot or stdio", f.mode)
	}
	switch f.isolation {
	case "auto", "shared", "connection", "embedded":
	default:
		return nil, fmt.Errorf("--isolation %q: want auto, embedded, shared or connection", f.isolation)
	}
	switch f.worker {
	case "auto", "embedded", "python":
	default:
		return nil, fmt.Errorf("--worker %q: want auto, embedded or python", f.worker)
	}
	if f.workerFd >= 0 {
		if f.mode != "threaded" || f.register || f.metricsAddr != "" {
			return nil, errors.New("--worker-fd is pybridge's own: it takes no --mode, --register or --metrics-addr")
		}
		f.isolation = pyhost.IsolationEmbedded
	}
	if f.workers < 1 {
		return nil, fmt.Errorf("--workers %d: want at least 1", f.workers)
	}
	if f.shutdownGrace < 0 {
		return nil, errors.New("--shutdown-grace must not be negative")
	}
	if f.pingTimeout <= 0 || f.pingFailures < 1 {
		return nil, errors.New("--ping-timeout must be positive and --ping-failures at least 1")
	}
	if f.pingInterval <= 0 {
		f.pingInterval = -1 // never
	}
	if (f.sslKey == "") != (f.sslCert == "") || (f.sslCA != "" && f.sslCert == "") {
		return nil, errors.New("TLS needs both --ssl-keyfile and --ssl-certfile (--ssl-cafile adds client certificates to them)")
	}
	if f.metricsAddr != "" {
		if _, _, err := net.SplitHostPort(f.metricsAddr); err != nil {
			return nil, fmt.Errorf("--metrics-addr %q: want host:port", f.metricsAddr)
		}
	} else if f.pprof {
		return nil, errors.New("--pprof needs --metrics-addr (it serves on that listener)")
	}
	if f.logFormat != "text" && f.logFormat != "json" {
		return nil, fmt.Errorf("--log-format %q: want text or json", f.logFormat)
	}
	f.registryType = strings.ToUpper(f.registryType)
	if f.registryType != "UDP" && f.registryType != "TCP" {
		return nil, fmt.Errorf("--registry-type %q: want UDP or TCP", f.registryType)
	}
	if f.registryPort < 1 || f.registryPort > 65535 {
		return nil, fmt.Errorf("--registry-port %d: want 1 to 65535", f.registryPort)
	}
	if f.registryEvery <= 0 {
		return nil, errors.New("--registry-interval must be positive")
	}
	if f.register && f.registryType == "TCP" && f.registryHost == "" {
		return nil, errors.New("--registry-type TCP needs --registry-host (as rpyc_classic)")
	}
	if f.register && f.unixPath != "" {
		return nil, errors.New("--register needs a TCP port: a registry cannot point clients at --unix")
	}
	if err := f.level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", f.logLevel)
	}
	if f.protocolConfig != "" {
		dec := json.NewDecoder(strings.NewReader(f.protocolConfig))
		if err := dec.Decode(&f.config); err != nil {
			return nil, fmt.Errorf("--protocol-config: want a JSON object of rpyc protocol_config keys: %v", err)
		}
		if err := pyhost.ValidateProtocolConfig(f.config); err != nil {
			return nil, fmt.Errorf("--protocol-config: %w", err)
		}
	}
	if f.port < 0 {
		switch {
		case f.service != "":
			f.port = 18861
		case f.sslCert != "":
			f.port = 18821 // rpyc_classic's TLS port
		default:
			f.port = 18812
		}
	}
	if f.host == "" {
		f.host = "127.0.0.1"
		if f.ipv6 {
			f.host = "::1"
		}
	}
	return f, nil
}

// splitShortValues turns rpyc_classic's attached short-flag values (-p0, -p18812,
// -moneshot) into the two arguments the flag package reads; long flags that begin with
// the same letter (-python, -ping-timeout, -mode) are left alone.
func splitShortValues(args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		switch {
		case a == "--":
			return append(out, args[i:]...)
		case len(a) > 2 && strings.HasPrefix(a, "-p") && strings.Trim(a[2:], "0123456789") == "":
			out = append(out, "-p", a[2:])
		case len(a) > 2 && strings.HasPrefix(a, "-m") && slices.Contains([]string{"threaded", "forking", "oneshot", "stdio"}, a[2:]):
			out = append(out, "-m", a[2:])
		default:
			out = append(out, a)
		}
	}
	return out
}

func serve(args []string) int {
	f, err := parseServe(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pybridge serve:", err)
		return 2
	}
	log, err := newLogger(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pybridge serve:", err)
		return 1
	}
	if err := run(f, log); err != nil {
		log.Error("pybridge serve failed", "err", err)
		return 1
	}
	return 0
}

func newLogger(f *serveFlags) (*slog.Logger, error) {
	return openLogger(f.level, f.quiet, f.logFormat, f.logFile)
}

// openLogger is the logger of --log-level, -q, --log-format and --logfile.
func openLogger(level slog.Level, quiet bool, format, logFile string) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	if quiet {
		opts.Level = slog.LevelError
	}
	var out io.Writer = os.Stderr
	if logFile != "" {
		file, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("--logfile: %w", err)
		}
		out = file // open for the process's life
	}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(out, opts)), nil
	}
	return slog.New(slog.NewTextHandler(out, opts)), nil
}

func run(f *serveFlags, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// In stdio mode the connection's fds are taken before any worker starts, so nothing
	// can write to the real stdout afterwards.
	var stdio io.ReadWriteCloser
	if f.mode == "stdio" {
		var err error
		if stdio, err = server.TakeStdio(); err != nil {
			return err
		}
	}

	open := pyhost.OpenOptions{Mode: "classic"}
	if f.service != "" {
		open = pyhost.OpenOptions{Mode: "service", Service: f.service}
	}
	open.Config = f.config
	var dialect wire.Dialect
	switch f.rpycVersion {
	case "auto":
	case "5":
		dialect = wire.Dialect5
	case "6":
		dialect = wire.Dialect6
	case "ng", "7":
		dialect = wire.DialectNG
	default:
		return fmt.Errorf("--rpyc-version %q: want auto, 5, 6 or ng", f.rpycVersion)
	}

	if f.workerFd >= 0 {
		return serveHanded(ctx, f, log, open, dialect)
	}

	// the interpreter, and the service, are checked before anything listens
	if _, err := pyhost.CheckPython(ctx, f.python); err != nil {
		return err
	}
	aliases := []string{"SLAVE"} // rpyc_classic serves SlaveService, registered as SLAVE
	if f.service != "" {
		var err error
		if f.register && f.mode != "stdio" {
			aliases, err = pyhost.ServiceAliases(ctx, pyhost.Config{Python: f.python}, f.service)
		} else {
			err = pyhost.CheckService(ctx, pyhost.Config{Python: f.python}, f.service)
		}
		if err != nil {
			return err
		}
	}

	var metricsLn net.Listener
	if f.metricsAddr != "" {
		var err error
		if metricsLn, err = net.Listen("tcp", f.metricsAddr); err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		defer metricsLn.Close()
	}

	hostCfg := pyhost.Config{
		Python:       f.python,
		Workers:      f.workers,
		Isolation:    f.isolation,
		PingInterval: f.pingInterval,
		PingTimeout:  f.pingTimeout,
		PingFailures: f.pingFailures,
		Logger:       log,
	}
	srvCfg := server.Config{Open: open, Dialect: dialect, Logger: log, ShutdownGrace: f.shutdownGrace,
		OneShot: f.mode == "oneshot"}
	if f.sslCert != "" {
		var err error
		if srvCfg.TLS, err = tlsConfig(f); err != nil {
			return err
		}
	}
	var interp string
	isolation := f.isolation
	if isolation == "auto" && f.workers > 1 {
		isolation = pyhost.IsolationShared
	}
	if isolation == "auto" || isolation == pyhost.IsolationEmbedded {
		emb, err := pyhost.StartEmbedded(ctx, hostCfg)
		switch {
		case err == nil:
			srvCfg.Embedded = emb
			isolation = pyhost.IsolationEmbedded
			interp = fmt.Sprintf("Python %s (%s, embedded from %s)", emb.Python(), emb.Executable(), emb.Library())
		case isolation == "auto" && errors.Is(err, pyhost.ErrCannotEmbed):
			log.Info("isolation auto: cannot embed, spawning workers", "reason", err)
			isolation = pyhost.IsolationShared
		default:
			return err
		}
	}
	if srvCfg.Embedded == nil {
		hostCfg.Isolation = isolation
		serving, err := servingWorkers(ctx, f, stdio != nil)
		if err != nil {
			return err
		}
		if serving {
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("--worker embedded: %w", err)
			}
			hostCfg.ServingWorker = servingWorkerArgs(exe, f)
			// the workers drain their connections themselves on SHUTDOWN
			hostCfg.ShutdownTimeout = f.shutdownGrace + 5*time.Second
		}
		pool, err := pyhost.NewPool(ctx, hostCfg)
		if err != nil && serving && f.worker == "auto" && ctx.Err() == nil {
			// an embedded worker that could not start (what CanEmbed cannot see):
			// Python workers serve the same, relayed
			log.Warn("--worker auto: embedded workers did not start; spawning Python workers", "err", err)
			hostCfg.ServingWorker = nil
			pool, err = pyhost.NewPool(ctx, hostCfg)
		}
		if err != nil {
			return err
		}
		defer pool.Shutdown(context.Background())
		srvCfg.Pool = pool
		kind := "Python"
		if pool.Serving() {
			kind = "pybridge, Python embedded"
		}
		if ws := pool.Workers(); len(ws) > 0 {
			interp = fmt.Sprintf("Python %s (%s, %d worker processes: %s)", ws[0].Hello().Python, f.python, f.workers, kind)
		}
	}
	if metricsLn != nil {
		workers := func() metrics.Workers { return metrics.Workers{Alive: 1} } // embedded
		if pool := srvCfg.Pool; pool != nil {
			workers = func() metrics.Workers {
				st := pool.Stats()
				return metrics.Workers{Alive: st.Alive, Restarts: st.Restarts}
			}
		}
		srvCfg.Metrics = metrics.New(workers)
		hs := &http.Server{Handler: srvCfg.Metrics.Handler(f.pprof), ReadHeaderTimeout: 10 * time.Second}
		go hs.Serve(metricsLn)
		defer hs.Close()
		log.Info("metrics", "url", "http://"+metricsLn.Addr().String()+"/metrics", "pprof", f.pprof)
	}
	srv := server.New(srvCfg)

	what := "classic"
	if f.service != "" {
		what = "service " + f.service
	}
	dialects := "rpyc 5.x, 6.x and rpyc-ng 7.x (detected per connection)"
	if dialect != nil {
		dialects = dialect.Name()
	}
	if stdio != nil {
		if f.register {
			log.Warn("--register is ignored in stdio mode (as by rpyc_classic): there is no port to register")
		}
		log.Info("serving", "what", what, "addr", "stdio", "isolation", isolation, "python", interp, "dialects", dialects)
		return srv.ServeConn(ctx, stdio, "stdio")
	}
	ln, err := listen(f)
	if err != nil {
		return err
	}
	var nofile unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &nofile) == nil {
		// Go raised the soft limit to the hard one at start; each connection takes one
		// descriptor, and with spawned workers two more
		log.Debug("descriptor limit", "RLIMIT_NOFILE", nofile.Cur)
	}
	addr := ln.Addr().String()
	if srvCfg.TLS != nil {
		addr += " (TLS)"
	}
	log.Info("serving", "what", what, "addr", addr, "isolation", isolation, "python", interp, "dialects", dialects)
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && f.mode == "oneshot" {
		// as rpyc_classic --mode oneshot announces itself (scripts that pass -p0 read the port)
		fmt.Printf("rpyc-oneshot\n%s\t%d\n", tcp.IP, tcp.Port)
	}
	var once sync.Once
	shuttingDown := func() {
		once.Do(func() { log.Info("shutting down: no new connections", "grace", f.shutdownGrace) })
	}
	context.AfterFunc(ctx, shuttingDown)
	var announcer *registry.Announcer
	if f.register {
		// as rpyc's servers: unregistered as soon as the shutdown begins (the Close
		// after Serve waits for it, or unregisters after a oneshot's connection)
		announcer = announce(f, ln, aliases, log)
		context.AfterFunc(ctx, func() { _ = announcer.Close() })
	}
	err = srv.Serve(ctx, ln)
	if ctx.Err() != nil {
		shuttingDown()
	}
	if pool := srvCfg.Pool; pool != nil && pool.Serving() {
		// its workers serve the connections: they drain them now (--shutdown-grace)
		pool.Shutdown(context.Background())
	}
	if announcer != nil {
		_ = announcer.Close() // logged
	}
	log.Info("stopped")
	return err
}

// announce registers the server's names for ln's port, sent from ln's address unless it
// listens on every address (the registry records the sender's address).
func announce(f *serveFlags, ln net.Listener, aliases []string, log *slog.Logger) *registry.Announcer {
	addr := ln.Addr().(*net.TCPAddr)
	c := &registry.Client{Network: f.registryType, Host: f.registryHost, Port: f.registryPort}
	if ip := addr.AddrPort().Addr().Unmap(); !ip.IsUnspecified() {
		c.Local = ip.String()
	}
	log.Info("registering", "registry", c.Addr(), "names", aliases, "port", addr.Port, "every", f.registryEvery.String())
	return c.Announce(aliases, addr.Port, registry.AnnounceOptions{Interval: f.registryEvery, Logger: log})
}

func listen(f *serveFlags) (net.Listener, error) {
	var (
		ln  net.Listener
		err error
	)
	switch {
	case f.unixPath != "":
		if err := removeStaleSocket(f.unixPath); err != nil {
			return nil, err
		}
		ln, err = net.Listen("unix", f.unixPath)
	case f.ipv6:
		ln, err = net.Listen("tcp6", net.JoinHostPort(f.host, strconv.Itoa(f.port)))
	default:
		ln, err = net.Listen("tcp", net.JoinHostPort(f.host, strconv.Itoa(f.port)))
	}
	return ln, err
}

// removeStaleSocket clears path for a Unix socket: nothing there, or a socket nobody
// listens on (removed). A live socket or any other file is refused, never deleted.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("--unix %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("--unix %s: a file that is not a socket is there; not touching it", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("--unix %s: another server is listening on it", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("--unix %s: removing the stale socket: %w", path, err)
	}
	return nil
}

func tlsConfig(f *serveFlags) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(f.sslCert, f.sslKey)
	if err != nil {
		return nil, fmt.Errorf("TLS key pair: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if f.sslCA != "" {
		pem, err := os.ReadFile(f.sslCA)
		if err != nil {
			return nil, fmt.Errorf("--ssl-cafile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ssl-cafile %s: no certificates", f.sslCA)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// servingWorkers decides --worker: whether spawned workers are pybridge processes with
// Python embedded that serve their clients' sockets themselves (pyhost.Config.ServingWorker),
// rather than Python processes Go relays every message to.
func servingWorkers(ctx context.Context, f *serveFlags, stdio bool) (bool, error) {
	if f.worker == "python" {
		return false, nil
	}
	why := ""
	switch {
	case stdio:
		why = "stdio mode has one connection, relayed"
	case f.mode == "oneshot":
		why = "oneshot mode serves one connection, relayed"
	case f.metricsAddr != "":
		why = "--metrics-addr counts messages as Go relays them"
	case !embedAvailable:
		why = "this pybridge was built without cgo"
	default:
		if err := pyhost.CanEmbed(ctx, f.python); err != nil {
			why = err.Error()
		}
	}
	if why == "" {
		return true, nil
	}
	if f.worker == "embedded" {
		return false, fmt.Errorf("--worker embedded: %s", why)
	}
	return false, nil
}

// servingWorkerArgs is the command line of a serving worker: this program, serving
// what the flags say on the connections its pool hands it (TLS and logging included).
func servingWorkerArgs(exe string, f *serveFlags) []string {
	args := []string{exe, "serve", "--worker-fd", "3", "--python", f.python,
		"--rpyc-version", f.rpycVersion, "--shutdown-grace", f.shutdownGrace.String(),
		"--log-level", f.logLevel, "--log-format", f.logFormat}
	if f.classic {
		args = append(args, "--classic")
	} else {
		args = append(args, "--service", f.service)
	}
	if f.protocolConfig != "" {
		args = append(args, "--protocol-config", f.protocolConfig)
	}
	if f.sslCert != "" {
		args = append(args, "--ssl-keyfile", f.sslKey, "--ssl-certfile", f.sslCert)
		if f.sslCA != "" {
			args = append(args, "--ssl-cafile", f.sslCA)
		}
	}
	if f.quiet {
		args = append(args, "--quiet")
	}
	if f.logFile != "" {
		args = append(args, "--logfile", f.logFile)
	}
	return args
}

// serveHanded is a serving worker's life (--worker-fd): Python embedded, the
// connections its pool hands over the control socket served until the pool asks it to
// shut down (then drained, as pybridge serve drains on SIGTERM) or is gone.
func serveHanded(ctx context.Context, f *serveFlags, log *slog.Logger, open pyhost.OpenOptions, dialect wire.Dialect) error {
	emb, err := pyhost.StartEmbedded(ctx, pyhost.Config{Python: f.python, Logger: log})
	if err != nil {
		return err
	}
	ln, err := pyhost.ListenHanded(f.workerFd, pyhost.Hello{Python: emb.Python(), Codec: "embedded"}, emb.Responsive)
	if err != nil {
		return err
	}
	srvCfg := server.Config{Embedded: emb, Open: open, Dialect: dialect, Logger: log,
		ShutdownGrace: f.shutdownGrace, Ended: ln.Ended}
	if f.sslCert != "" {
		if srvCfg.TLS, err = tlsConfig(f); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ln.Done()
		cancel()
	}()
	return server.New(srvCfg).Serve(ctx, ln)
}
