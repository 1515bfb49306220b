// Package metrics is what `pybridge serve --metrics-addr` exports in Prometheus' text
// format: connections, requests and their latency, bytes, workers and errors, on a
// registry of its own with the Go runtime's and the process's collectors.
//
// Start with New, hand the Metrics to server.Config.Metrics, and serve Handler. The
// server gives each client connection a Conn, which its wire.FrameStream reports to
// (wire.Observer): a request costs a few atomic adds, one uncontended lock and two
// clock reads, and allocates nothing; every label's child is resolved in New.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/pybridge/pybridge/bridge/wire"
)

// Workers says how the Python workers fare, for the workers metrics.
type Workers struct {
	Alive    int    // worker processes running (embedded isolation: 1, the interpreter)
	Restarts uint64 // workers that died unasked and were replaced
}

// Transport is how a client is connected, a label of the connection metrics.
type Transport int

const (
	TCP Transport = iota
	TLS
	Unix
	Stdio
	numTransports
)

var transportNames = [numTransports]string{"tcp", "tls", "unix", "stdio"}

func (t Transport) String() string { return transportNames[t] }

// dialect indexes: "none" until the client's first frame tells it
const (
	dialectNone = iota
	dialect5
	dialect6
	numDialects
)

var dialectNames = [numDialects]string{"none", "5.x", "6.x"}

func dialectIndex(d wire.Dialect) int32 {
	switch d {
	case wire.Dialect5:
		return dialect5
	case wire.Dialect6:
		return dialect6
	}
	return dialectNone
}

// handler label values: rpyc's handler names, index = handler number; 0 is any other
const numHandlers = int(wire.HandleInstanceCheck) + 1

func handlerName(h int) string {
	if h == 0 {
		return "OTHER"
	}
	return wire.Handler(h).String()
}

// LatencyBuckets are the request latency histogram's upper bounds, in seconds: from
// 10 µs (an attribute get served embedded takes tens of µs) to 10 s.
var LatencyBuckets = []float64{
	10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6,
	1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3,
	1, 2.5, 5, 10,
}

// Metrics are one server's metrics.
type Metrics struct {
	reg *prometheus.Registry

	open       [numDialects][numTransports]prometheus.Gauge
	opened     [numDialects][numTransports]prometheus.Counter
	requests   [numHandlers]prometheus.Counter
	exceptions [numHandlers]prometheus.Counter
	latency    [numHandlers]prometheus.Observer
	bytesIn    prometheus.Counter
	bytesOut   prometheus.Counter
	errors     [numKinds]prometheus.Counter
}

// New returns the metrics on a registry of their own. workers is called at each scrape
// (nil: no workers metrics).
func New(workers func() Workers) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	open := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "pybridge_connections_open",
		Help: "Client connections open, by rpyc dialect (none until the client's first frame) and transport.",
	}, []string{"dialect", "transport"})
	opened := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pybridge_connections_total",
		Help: "Client connections served, by rpyc dialect and transport; counted when the dialect is known, or as none when a connection closes before its first frame.",
	}, []string{"dialect", "transport"})
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pybridge_requests_total",
		Help: "Requests received from clients, by rpyc handler (GETATTR, CALLATTR, CALL, …).",
	}, []string{"handler"})
	exceptions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pybridge_request_exceptions_total",
		Help: "Requests answered with an exception (the hosted code raised, or the request was refused), by rpyc handler.",
	}, []string{"handler"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "pybridge_request_duration_seconds",
		Help:    "Time from a client's request read to its reply written, by rpyc handler.",
		Buckets: LatencyBuckets,
	}, []string{"handler"})
	m.bytesIn = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pybridge_received_bytes_total",
		Help: "Bytes of rpyc frames received from clients (on the wire: compressed as sent).",
	})
	m.bytesOut = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pybridge_sent_bytes_total",
		Help: "Bytes of rpyc frames sent to clients.",
	})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pybridge_errors_total",
		Help: "Errors by kind: malformed_frame, dialect_mismatch, over_limit, worker_crash, no_worker, tls, other.",
	}, []string{"kind"})
	m.reg.MustRegister(open, opened, requests, exceptions, latency, m.bytesIn, m.bytesOut, errs)

	for d := range numDialects {
		for t := range numTransports {
			m.open[d][t] = open.WithLabelValues(dialectNames[d], transportNames[t])
			m.opened[d][t] = opened.WithLabelValues(dialectNames[d], transportNames[t])
		}
	}
	for h := range numHandlers {
		name := handlerName(h)
		m.requests[h] = requests.WithLabelValues(name)
		m.exceptions[h] = exceptions.WithLabelValues(name)
		m.latency[h] = latency.WithLabelValues(name)
	}
	for k := range numKinds {
		m.errors[k] = errs.WithLabelValues(ErrorKind(k).String())
	}

	if workers != nil {
		m.reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "pybridge_workers_alive",
				Help: "Python worker processes running (embedded isolation: 1, the interpreter in this process).",
			}, func() float64 { return float64(workers().Alive) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "pybridge_worker_restarts_total",
				Help: "Python workers that died unasked (exit, signal, failed health pings) and were replaced.",
			}, func() float64 { return float64(workers().Restarts) }),
		)
	}
	return m
}

// Registry is the registry the metrics are on (to add collectors, or gather).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Error counts an error of kind k that no connection's Close reports.
func (m *Metrics) Error(k ErrorKind) { m.errors[k].Inc() }
