// Command classic-client calls an rpyc classic server (rpyc_classic, or
// ThreadedServer(SlaveService), rpyc 5.x or 6.x) from Go.
//
//	go run ./examples/classic-client -addr 127.0.0.1:18812 -rpyc 5
//
// Nothing in rpyc negotiates the message layout: given the server's major version
// (-rpyc 5 or 6), Dial speaks it at once; with -rpyc auto it probes 6.x first, which a
// 5.x server logs as an error before Dial connects again in 5.x.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/pybridge/pybridge/bridge"
	"github.com/pybridge/pybridge/bridge/brine"
	"github.com/pybridge/pybridge/bridge/wire"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18812", "rpyc classic server")
	version := flag.String("rpyc", "auto", "the server's rpyc major version: 5, 6 or auto")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var opts []bridge.DialOption
	switch *version {
	case "5":
		opts = append(opts, bridge.WithDialect(wire.Dialect5))
	case "6":
		opts = append(opts, bridge.WithDialect(wire.Dialect6))
	}
	conn, err := bridge.Dial(ctx, "tcp", *addr, opts...)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	math, err := conn.Import(ctx, "math")
	if err != nil {
		log.Fatal(err)
	}
	r, err := bridge.As[float64](math.CallAttr(ctx, "sqrt", 2.0))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("math.sqrt(2) =", r)

	v, err := conn.Eval(ctx, "sum(i * i for i in range(10))")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("eval: sum(i * i for i in range(10)) =", v)

	_, err = conn.Eval(ctx, "1 / 0")
	var re *bridge.RemoteError
	if !errors.As(err, &re) {
		log.Fatalf("expected a ZeroDivisionError, got %v", err)
	}
	fmt.Printf("caught *bridge.RemoteError %v\n--- remote traceback ---\n%s", re, re.Traceback)

	builtins, err := conn.Import(ctx, "builtins")
	if err != nil {
		log.Fatal(err)
	}
	key := func(x int64) int64 { return -x } // Python calls this Go func
	sorted, err := builtins.CallAttr(ctx, "sorted", brine.Tuple{int64(3), int64(1), int64(2)}, bridge.Kwargs{"key": key})
	if err != nil {
		log.Fatal(err)
	}
	// iterate the Python list from Go (iter and next, until StopIteration)
	var out []string
	for v, err := range sorted.(*bridge.Ref).Iter(ctx) {
		if err != nil {
			log.Fatal(err)
		}
		out = append(out, fmt.Sprint(v))
	}
	fmt.Printf("sorted([3, 1, 2], key=<Go func>) = [%s]\n", strings.Join(out, ", "))
}
