package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/pybridge/pybridge/bridge"
	"github.com/pybridge/pybridge/bridge/brine"
	"github.com/pybridge/pybridge/pyhost"
)

// Calling Python from Go through a pybridge worker (any python3 on PATH).
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	host, err := pyhost.Start(ctx, pyhost.Config{Python: "python3"})
	if err != nil {
		log.Fatal(err)
	}
	defer host.Close()
	conn, err := host.Connect(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	math, err := conn.Import(ctx, "math")
	if err != nil {
		log.Fatal(err)
	}
	r, err := math.CallAttr(ctx, "sqrt", 2.0)
	fmt.Println(r, err)

	// a Go func as a Python callable
	builtins, _ := conn.Import(ctx, "builtins")
	total, err := builtins.CallAttr(ctx, "sum", []any{int64(1), int64(2), int64(3)})
	fmt.Println(total, err)
	double := func(x int64) int64 { return 2 * x }
	mapped, _ := builtins.CallAttr(ctx, "map", double, []any{int64(1), int64(2)})
	list, _ := builtins.CallAttr(ctx, "list", mapped)
	fmt.Println(conn.Value(ctx, list.(*bridge.Ref)))

	_, err = math.CallAttr(ctx, "sqrt", -1.0)
	var re *bridge.RemoteError
	fmt.Println(errors.As(err, &re), re.Type, re.Args)
	// Output:
	// 1.4142135623730951 <nil>
	// 6 <nil>
	// [2 4] <nil>
	// true ValueError [math domain error]
}

// A Go client of an rpyc classic server (rpyc_classic, ThreadedServer(SlaveService)):
// Dial finds out whether it speaks rpyc 5.x or 6.x.
func ExampleDial() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := bridge.Dial(ctx, "tcp", exampleAddr)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	math, err := conn.Import(ctx, "math")
	if err != nil {
		log.Fatal(err)
	}
	r, err := math.CallAttr(ctx, "sqrt", 2.0)
	fmt.Println("math.sqrt(2) =", r, err)

	// Python calls a Go func back: sorted([3, 1, 2], key=<Go func>)
	builtins, err := conn.Import(ctx, "builtins")
	if err != nil {
		log.Fatal(err)
	}
	neg := func(x int64) int64 { return -x }
	sorted, err := builtins.CallAttr(ctx, "sorted", brine.Tuple{int64(3), int64(1), int64(2)}, bridge.Kwargs{"key": neg})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(sorted.(*bridge.Ref).Repr(ctx))

	// a Python exception is a *bridge.RemoteError, its traceback the server's
	_, err = conn.Eval(ctx, "1 / 0")
	var re *bridge.RemoteError
	if errors.As(err, &re) {
		fmt.Println(re, strings.Contains(re.Traceback, "Traceback (most recent call last)"))
	}
	// Output:
	// math.sqrt(2) = 1.4142135623730951 <nil>
	// [3, 2, 1] <nil>
	// ZeroDivisionError: division by zero true
}
