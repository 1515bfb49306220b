// Command callpython starts a Python worker with the python3 on PATH (nothing is
// installed into it: the pybridge package travels inside this binary) and calls it
// from Go: a function of the standard library, a Pydantic model built from Go values,
// and a Python exception caught as a Go error.
package main

import (
	"context"
	"errors"
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
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	host, err := pyhost.Start(ctx, pyhost.Config{Python: "python3", Logger: logger})
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
	r, err := math.CallAttr(ctx, "sqrt", 2.0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("math.sqrt(2) =", r)

	// a Pydantic model built in Python from Go values; model_dump() comes back by value
	if err := conn.Execute(ctx, models); err != nil {
		log.Fatal(err)
	}
	point, err := conn.Eval(ctx, "Point")
	if err != nil {
		log.Fatal(err)
	}
	p, err := point.(*bridge.Ref).Call(ctx, bridge.Kwargs{"x": 3, "y": "4", "label": "from Go", "tags": []string{"a", "b"}})
	if err != nil {
		log.Fatal(err)
	}
	dumped, err := p.(*bridge.Ref).CallAttr(ctx, "model_dump")
	if err != nil {
		log.Fatal(err)
	}
	dump, err := conn.Value(ctx, dumped.(*bridge.Ref)) // the dict, as a Go map
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("model_dump() =", dump)

	// a ValueError raised in Python, caught as a Go error
	check, err := conn.Eval(ctx, "check")
	if err != nil {
		log.Fatal(err)
	}
	_, err = check.(*bridge.Ref).Call(ctx, -1)
	var re *bridge.RemoteError
	if errors.As(err, &re) {
		fmt.Printf("caught %s: %v\n", re.Type, re.Args)
	} else {
		log.Fatalf("expected a ValueError, got %v", err)
	}
}
