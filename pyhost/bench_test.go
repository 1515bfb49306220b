package pyhost

import (
	"bufio"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pybridge/pybridge/bridge"
	"github.com/pybridge/pybridge/bridge/brine"
	"github.com/pybridge/pybridge/bridge/wire"
)

// a CALLATTR request as bridge.Conn sends it: (handler, (oid, name, args, kwargs))
var benchBody = brine.Tuple{int64(wire.HandleCallAttr), brine.Tuple{
	brine.Tuple{int64(4), brine.Tuple{"builtins.module", int64(140234), int64(140238)}},
	"sqrt", brine.Tuple{int64(2), brine.Tuple{brine.Tuple{int64(1), 2.0}}}, brine.Tuple{}}}

// latencies records each round trip and reports the median beside ns/op.
type latencies []time.Duration

func (l *latencies) add(d time.Duration) { *l = append(*l, d) }

func (l latencies) report(b *testing.B) {
	if len(l) == 0 {
		return
	}
	slices.Sort(l)
	b.ReportMetric(float64(l[len(l)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(l[len(l)*99/100].Nanoseconds()), "p99-ns")
}

// BenchmarkRoundTripJSONLines is the baseline: a Python subprocess answering JSON
// lines over pipes, calling add(a, b) per line.
func BenchmarkRoundTripJSONLines(b *testing.B) {
	cmd := exec.Command(testPython(b), "testdata/jsonlines.py")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	w := bufio.NewWriter(stdin)
	r := bufio.NewReader(stdout)
	var lat latencies
	type reply struct {
		ID     int `json:"id"`
		Result int `json:"result"`
	}
	i := 0
	for b.Loop() {
		i++
		t0 := time.Now()
		req, _ := json.Marshal(map[string]any{"id": i, "args": []int{i, 1}})
		w.Write(req)
		w.WriteByte('\n')
		w.Flush()
		line, err := r.ReadBytes('\n')
		if err != nil {
			b.Fatal(err)
		}
		var rep reply
		if err := json.Unmarshal(line, &rep); err != nil || rep.Result != i+1 {
			b.Fatalf("%s: %v", line, err)
		}
		lat.add(time.Since(t0))
	}
	lat.report(b)
}

// BenchmarkRoundTripFrames is the worker socket alone: a request frame to the fake
// worker (a plain Python loop echoing it) and its reply, through Channel.
func BenchmarkRoundTripFrames(b *testing.B) {
	ctx, cancel := contextWithTimeout(b, time.Minute)
	defer cancel()
	cfg := Config{Python: testPython(b), PackageDir: "testdata/fakeworker"}
	w, err := StartWorker(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Shutdown(ctx)
	ch, _ := w.Open(ctx, OpenOptions{Mode: "go"})
	var lat latencies
	seq := int64(0)
	for b.Loop() {
		seq++
		t0 := time.Now()
		if err := ch.WriteMessage(wire.Message{Type: wire.MsgRequest, Seq: seq, Body: benchBody}); err != nil {
			b.Fatal(err)
		}
		if _, err := ch.ReadMessage(); err != nil {
			b.Fatal(err)
		}
		lat.add(time.Since(t0))
	}
	lat.report(b)
}

// BenchmarkCallPython is a Go→Python call through a held Ref (math.sqrt(2.0)), with
// the worker spawned (isolation shared) and with Python embedded in this process;
// compare its p50 with BenchmarkRoundTripJSONLines' in the same run:
//
//	go test -run '^$' -bench 'CallPython|JSONLines' ./pyhost
func BenchmarkCallPython(b *testing.B) {
	python, _ := filepath.Abs("../.venv/rpyc6/bin/python")
	for _, isolation := range []string{IsolationShared, IsolationEmbedded} {
		b.Run(isolation, func(b *testing.B) {
			ctx := context.Background()
			h, err := Start(ctx, Config{Python: python, PingInterval: -1, Isolation: isolation})
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close()
			conn, err := h.Connect(ctx)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			math, err := conn.Import(ctx, "math")
			if err != nil {
				b.Fatal(err)
			}
			sqrt, err := math.Attr(ctx, "sqrt")
			if err != nil {
				b.Fatal(err)
			}
			held := sqrt.(*bridge.Ref)
			var l latencies
			for b.Loop() {
				t0 := time.Now()
				if _, err := held.Call(ctx, 2.0); err != nil {
					b.Fatal(err)
				}
				l.add(time.Since(t0))
			}
			l.report(b)
		})
	}
}
