package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pybridge/pybridge/registry"
)

type registryFlags struct {
	mode      string
	host      string
	port      int
	ipv6      bool
	pruning   secondsOrDuration
	listing   bool
	quiet     bool
	logLevel  string
	logFormat string
	logFile   string

	level slog.Level
}

// secondsOrDuration is a flag taking rpyc_registry's whole seconds ("240") or a Go
// duration ("4m").
type secondsOrDuration struct{ d time.Duration }

func (s *secondsOrDuration) String() string { return s.d.String() }

func (s *secondsOrDuration) Set(v string) error {
	if n, err := strconv.Atoi(v); err == nil {
		s.d = time.Duration(n) * time.Second
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return errors.New("want seconds or a duration such as 4m")
	}
	s.d = d
	return nil
}

// rpycRegistryArgs rewrites rpyc_registry's switches that take a value where pybridge's
// are plain flags: "-l true" (plumbum's bool switch; here the word's meaning counts,
// where plumbum takes any word, even "False", as true) and "-q X" (rpyc_registry's -q
// takes an argument, and any makes it quiet).
func rpycRegistryArgs(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		out = append(out, a)
		if i+1 >= len(args) {
			continue
		}
		next := args[i+1]
		switch a {
		case "-l", "--listing":
			switch strings.ToLower(next) {
			case "true", "yes", "on", "1":
				out[len(out)-1], i = a+"=true", i+1
			case "false", "no", "off", "0":
				out[len(out)-1], i = a+"=false", i+1
			}
		case "-q", "--quiet":
			if !strings.HasPrefix(next, "-") {
				i++
			}
		}
	}
	return out
}

func parseRegistry(args []string) (*registryFlags, error) {
	f := &registryFlags{pruning: secondsOrDuration{registry.DefaultPruningTimeout}}
	fs := flag.NewFlagSet("registry", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: pybridge registry [flags]

An rpyc registry server, as rpyc_registry: rpyc servers register with it (rpyc_classic
--register, pybridge serve --register, auto_register=True), and clients find them with
rpyc.discover() and rpyc.connect_by_service(). rpyc 5.x and 6.x speak the same protocol.

`)
		fs.PrintDefaults()
	}
	fs.StringVar(&f.mode, "mode", "UDP", "UDP or TCP")
	fs.StringVar(&f.mode, "m", "UDP", "short for --mode")
	fs.StringVar(&f.host, "host", "", "address to bind (default every address, as rpyc_registry: 0.0.0.0, or :: with --ipv6)")
	fs.IntVar(&f.port, "port", registry.DefaultPort, "UDP or TCP port (0 picks a free one and logs it)")
	fs.IntVar(&f.port, "p", registry.DefaultPort, "short for --port")
	fs.BoolVar(&f.ipv6, "ipv6", false, "listen on IPv6 (:: takes IPv4 senders too)")
	fs.BoolVar(&f.ipv6, "6", false, "short for --ipv6")
	fs.Var(&f.pruning, "timeout", "pruning timeout: a registration not renewed for this long is dropped (seconds, or a duration such as 4m)")
	fs.Var(&f.pruning, "t", "short for --timeout")
	fs.Var(&f.pruning, "pruning-timeout", "same as --timeout")
	fs.BoolVar(&f.listing, "listing", false, "answer LIST (rpyc.list_services) with the registered names; without it LIST gets None")
	fs.BoolVar(&f.listing, "l", false, "short for --listing")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&f.quiet, "quiet", false, "log errors only")
	fs.BoolVar(&f.quiet, "q", false, "short for --quiet")
	fs.StringVar(&f.logFormat, "log-format", "text", "text or json")
	fs.StringVar(&f.logFile, "logfile", "", "append the log to `path` instead of standard error")
	if err := fs.Parse(rpycRegistryArgs(args)); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	f.mode = strings.ToUpper(f.mode)
	if f.mode != "UDP" && f.mode != "TCP" {
		return nil, fmt.Errorf("--mode %q: want UDP or TCP", f.mode)
	}
	if f.port < 0 || f.port > 65535 {
		return nil, fmt.Errorf("--port %d: want 0 to 65535", f.port)
	}
	if f.pruning.d <= 0 {
		return nil, errors.New("--timeout must be positive")
	}
	if f.logFormat != "text" && f.logFormat != "json" {
		return nil, fmt.Errorf("--log-format %q: want text or json", f.logFormat)
	}
	if err := f.level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", f.logLevel)
	}
	if f.host == "" {
		f.host = "0.0.0.0"
		if f.ipv6 {
			f.host = "::"
		}
	}
	return f, nil
}

func registryCmd(args []string) int {
	f, err := parseRegistry(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pybridge registry:", err)
		return 2
	}
	log, err := openLogger(f.level, f.quiet, f.logFormat, f.logFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pybridge registry:", err)
		return 1
	}
	if err := runRegistry(f, log); err != nil {
		log.Error("pybridge registry failed", "err", err)
		return 1
	}
	return 0
}

func runRegistry(f *registryFlags, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// "udp"/"tcp", not "udp6": a wildcard address then takes IPv4 senders too, as
	// rpyc_registry -6 on "::" does
	network := strings.ToLower(f.mode)
	addr := net.JoinHostPort(f.host, strconv.Itoa(f.port))
	reg := registry.New(registry.Config{PruningTimeout: f.pruning.d, AllowListing: f.listing, Logger: log})
	var serve func() error
	if f.mode == "UDP" {
		pc, err := net.ListenPacket(network, addr)
		if err != nil {
			return err
		}
		addr = pc.LocalAddr().String()
		serve = func() error { return reg.ServeUDP(ctx, pc) }
	} else {
		ln, err := net.Listen(network, addr)
		if err != nil {
			return err
		}
		addr = ln.Addr().String()
		serve = func() error { return reg.ServeTCP(ctx, ln) }
	}
	log.Info("registry serving", "mode", f.mode, "addr", addr, "pruning_timeout", f.pruning.d.String(), "listing", f.listing)
	err := serve()
	log.Info("registry stopped")
	return err
}
