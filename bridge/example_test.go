package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/pybridge/pybridge/bridge"
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
