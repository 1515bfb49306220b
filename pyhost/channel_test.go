//go:build cgo

package pyhost

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pybridge/pybridge/bridge"
	"github.com/pybridge/pybridge/bridge/wire"
)

// blockingSocket is one end of a socketpair read and written with blocking system
// calls, as the server's client sockets are: frames on it are the C channel's.
type blockingSocket struct {
	f  *os.File
	rc syscall.RawConn
}

func newBlockingSocket(t *testing.T, fd int) *blockingSocket {
	f := os.NewFile(uintptr(fd), "socket")
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return &blockingSocket{f: f, rc: rc}
}

func (s *blockingSocket) Read(p []byte) (int, error)  { return s.f.Read(p) }
func (s *blockingSocket) Write(p []byte) (int, error) { return s.f.Write(p) }
func (s *blockingSocket) Close() error {
	s.rc.Control(func(fd uintptr) { unix.Shutdown(int(fd), unix.SHUT_RDWR) })
	return s.f.Close()
}
func (s *blockingSocket) HoldFd(f func(fd int)) error {
	return s.rc.Control(func(fd uintptr) { f(int(fd)) })
}

// testEmbedded is this process's embedded interpreter, and a context for the test.
func testEmbedded(t *testing.T) (*Embedded, context.Context) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	e, err := StartEmbedded(ctx, Config{Python: embeddedPython(t)})
	if err != nil {
		t.Fatal(err)
	}
	return e, ctx
}

// serveSocket serves a classic connection in layout d over a socketpair in embedded
// isolation (ctx ends it) and returns the server's stream, a Go RPyC client of it, and
// what Serve returns, once it does.
func serveSocket(ctx context.Context, t *testing.T, e *Embedded, d wire.Dialect) (*wire.FrameStream, *bridge.Conn, <-chan error) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	server := wire.NewFrameStream(newBlockingSocket(t, fds[0]), d, wire.DefaultLimits())
	version := map[wire.Dialect]string{wire.Dialect5: "5", wire.Dialect6: "6"}[d]
	served := make(chan error, 1)
	go func() { served <- e.Serve(ctx, server, OpenOptions{Mode: "classic", Dialect: version}) }()
	client := bridge.NewConn(wire.NewFrameStream(newBlockingSocket(t, fds[1]), d, wire.DefaultLimits()), bridge.Config{})
	t.Cleanup(func() { client.Close() })
	return server, client, served
}

// An RPyC client served over a socket in embedded isolation, in both message layouts:
// its frames go through the C channel and Go in turns (small ones, compressed ones,
// back to back, callbacks into the client), and every request is answered as asked.
func TestEmbeddedServesASocket(t *testing.T) {
	for _, d := range []wire.Dialect{wire.Dialect5, wire.Dialect6} {
		t.Run(d.Name(), func(t *testing.T) {
			e, ctx := testEmbedded(t)
			server, client, served := serveSocket(ctx, t, e, d)

			for i := range 200 {
				if v, err := client.Eval(ctx, fmt.Sprintf("%d * 7", i)); err != nil || v != int64(i*7) {
					t.Fatalf("eval %d: %v, %v", i, v, err)
				}
			}
			// a reply over the compression threshold, and a request over it
			blob, err := client.Eval(ctx, "b'x' * 100000")
			if err != nil || !bytes.Equal(blob.([]byte), bytes.Repeat([]byte("x"), 100000)) {
				t.Fatalf("large reply: %v", err)
			}
			length, err := client.Eval(ctx, "len")
			if err != nil {
				t.Fatal(err)
			}
			if n, err := length.(*bridge.Ref).Call(ctx, bytes.Repeat([]byte("y"), 50000)); err != nil || n != int64(50000) {
				t.Fatalf("large request: %v, %v", n, err)
			}
			// requests back to back: several frames to a read
			var pending []*bridge.AsyncResult
			for i := range 100 {
				pending = append(pending, length.(*bridge.Ref).CallAsync(bytes.Repeat([]byte("z"), i*97)))
			}
			for i, a := range pending {
				if n, err := a.Wait(ctx); err != nil || n != int64(i*97) {
					t.Fatalf("async %d: %v, %v", i, n, err)
				}
			}
			// Python calls the client back while serving
			apply, err := client.Eval(ctx, "lambda f: tuple(f(i) for i in range(20))")
			if err != nil {
				t.Fatal(err)
			}
			got, err := apply.(*bridge.Ref).Call(ctx, func(i int64) int64 { return i * i })
			if err != nil {
				t.Fatal(err)
			}
			want := make([]any, 20)
			for i := range want {
				want[i] = int64(i * i)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("callbacks: %v, want %v", got, want)
			}
			if _, err := client.Eval(ctx, "1 / 0"); err == nil || !errors.As(err, new(*bridge.RemoteError)) {
				t.Fatalf("a Python exception: %v", err)
			}
			if !server.Idle() {
				t.Fatal("every request was answered, yet the stream counts one unanswered")
			}
			client.Close()
			select {
			case err := <-served:
				// a client gone is how a connection ends (the server's hangup)
				if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
					t.Fatalf("Serve: %v", err)
				}
			case <-ctx.Done():
				t.Fatal("Serve did not return once the client closed")
			}
		})
	}
}

// Hosted threads that serve their own connection (as rpyc's BgServingThread does) go on
// receiving after the serve loop ended and the C channel was let go: they get EOFError,
// and the process lives on.
func TestEmbeddedHostedThreadsServingAfterTheConnectionEnded(t *testing.T) {
	e, ctx := testEmbedded(t)
	for range 40 {
		_, client, served := serveSocket(ctx, t, e, wire.Dialect5)
		root, err := client.Root(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := root.CallAttr(ctx, "getconn")
		if err != nil {
			t.Fatal(err)
		}
		err = client.Execute(ctx, "import threading\n"+
			"def _serve(c):\n"+
			"    while True:\n"+
			"        try:\n"+
			"            c.serve(0.0005)\n"+
			"        except EOFError:\n"+
			"            return\n"+
			"def _start(c):\n"+
			"    for _ in range(4):\n"+
			"        threading.Thread(target=_serve, args=(c,), daemon=True).start()\n")
		if err != nil {
			t.Fatal(err)
		}
		start, err := client.Eval(ctx, "_start")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := start.(*bridge.Ref).Call(ctx, conn); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
		client.Close()
		select {
		case <-served:
		case <-ctx.Done():
			t.Fatal("Serve did not return once the client closed")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
