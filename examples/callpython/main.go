// Command callpython runs Python from Go with the python3 on PATH (nothing is
// installed into it: the pybridge package travels inside this binary) and calls it: a
// function of the standard library, a Pydantic model built from Go values, and a Python
// exception caught as a Go error. By default Python is embedded in this process; with
// -isolation shared it runs in a worker process this program starts and supervises.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/pybridge/pybridge/bridge"
	"github.com/pybridge/pybridge/pyhost"
)

const models = `
from pydantic import BaseModel

class Point(BaseModel):
    x: int
    y: int
    label: str = ""
    tags: list = []

def check(n):
    if n < 0:
        raise ValueError(f"negative: {n}")
    return n
`

func main() {
	isolation := flag.String("isolation", pyhost.IsolationEmbedded, "embedded, shared or connection")
	python := flag.String("python", "python3", "the interpreter (with pydantic installed)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	host, err := pyhost.Start(ctx, pyhost.Config{Python: *python, Isolation: *isolation, Logger: logger})
	if err != nil {
		log.Fatal(err)
	}
	defer host.Close()
	conn, err := host.Connect(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	// math.sqrt(2)
	math, err := conn.Import(ctx, "math")
	if err != nil {
		log.Fatal(err)
	}
	defer math.Close()
	r, err := bridge.As[float64](math.CallAttr(ctx, "sqrt", 2.0))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("math.sqrt(2) =", r)

	// a Pydantic model built in Python from Go values; model_dump() comes back by value
	if err := conn.Execute(ctx, models); err != nil {
		log.Fatal(err)
	}
	point, err := bridge.As[*bridge.Ref](conn.Eval(ctx, "Point"))
	if err != nil {
		log.Fatal(err)
	}
	p, err := bridge.As[*bridge.Ref](point.Call(ctx, bridge.Kwargs{"x": 3, "y": "4", "label": "from Go", "tags": []string{"a", "b"}}))
	if err != nil {
		log.Fatal(err)
	}
	dumped, err := bridge.As[*bridge.Ref](p.CallAttr(ctx, "model_dump"))
	if err != nil {
		log.Fatal(err)
	}
	dump, err := bridge.As[map[string]any](conn.Value(ctx, dumped)) // the dict, as a Go map
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("model_dump() =", dump)

	// a ValueError raised in Python, caught as a Go error
	check, err := bridge.As[*bridge.Ref](conn.Eval(ctx, "check"))
	if err != nil {
		log.Fatal(err)
	}
	_, err = check.Call(ctx, -1)
	var re *bridge.RemoteError
	if errors.As(err, &re) {
		fmt.Printf("caught %s: %v\n", re.Type, re.Args)
	} else {
		log.Fatalf("expected a ValueError, got %v", err)
	}
}
