package metrics_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/pybridge/pybridge/server"
	"github.com/pybridge/pybridge/server/metrics"
)

// The metrics of a server: hand them to server.Config and serve their Handler (what
// `pybridge serve --metrics-addr` does).
func ExampleNew() {
	m := metrics.New(func() metrics.Workers { return metrics.Workers{Alive: 1} })
	_ = server.Config{Metrics: m} // with Pool or Embedded, and the rest

	web := httptest.NewServer(m.Handler(false)) // true: and /debug/pprof/
	defer web.Close()
	resp, err := http.Get(web.URL + "/metrics")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(text), "\n") {
		if strings.HasPrefix(line, "pybridge_workers_alive") || strings.HasPrefix(line, `pybridge_requests_total{handler="GETATTR"}`) {
			fmt.Println(line)
		}
	}
	// Output:
	// pybridge_requests_total{handler="GETATTR"} 0
	// pybridge_workers_alive 1
}
