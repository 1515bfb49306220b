package pyhost_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/pybridge/pybridge/bridge"
	"github.com/pybridge/pybridge/pyhost"
)

// Start a worker, call Python, get a Python exception as a Go error. (With Isolation
// pyhost.IsolationEmbedded the same code runs Python inside this process.)
func ExampleStart() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	host, err := pyhost.Start(ctx, pyhost.Config{Python: "python3", Isolation: pyhost.IsolationShared})
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
	r, err := bridge.As[float64](math.CallAttr(ctx, "sqrt", 2.0))
	fmt.Println(r, err)

	_, err = math.CallAttr(ctx, "sqrt", -1.0)
	fmt.Println(err)
	// Output:
	// 1.4142135623730951 <nil>
	// ValueError: math domain error
}
