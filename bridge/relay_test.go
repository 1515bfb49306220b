package bridge

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/pybridge/pybridge/bridge/brine"
	"github.com/pybridge/pybridge/bridge/wire"
)

// relayEnd is one end of an in-memory message pipe: what one end writes, the other reads.
type relayEnd struct {
	in     <-chan wire.Message
	out    chan<- wire.Message
	closed chan struct{}
	once   *sync.Once
	err    error // returned by ReadMessage once the pipe is closed
}

func relayPipe(closeErr error) (a, b *relayEnd) {
	ab, ba := make(chan wire.Message, 16), make(chan wire.Message, 16)
	closed, once := make(chan struct{}), new(sync.Once)
	return &relayEnd{in: ba, out: ab, closed: closed, once: once, err: closeErr},
		&relayEnd{in: ab, out: ba, closed: closed, once: once, err: closeErr}
}

func (e *relayEnd) ReadMessage() (wire.Message, error) {
	select {
	case m := <-e.in:
		return m, nil
	case <-e.closed:
		return wire.Message{}, e.err
	}
}

func (e *relayEnd) WriteMessage(m wire.Message) error {
	select {
	case e.out <- m:
		return nil
	case <-e.closed:
		return io.ErrClosedPipe
	}
}

func (e *relayEnd) Close() error {
	e.once.Do(func() { close(e.closed) })
	return nil
}

func (e *relayEnd) isClosed() bool {
	select {
	case <-e.closed:
		return true
	default:
		return false
	}
}

func TestRelayCarriesMessagesBothWaysUnchanged(t *testing.T) {
	client, clientSide := relayPipe(io.EOF)
	worker, workerSide := relayPipe(io.EOF)
	result := make(chan error, 1)
	go func() { result <- Relay(context.Background(), clientSide, workerSide) }()

	req := wire.Message{Type: wire.MsgRequest, Seq: 7, Body: brine.Tuple{int64(wire.HandleGetRoot), brine.Tuple{}}}
	if err := client.WriteMessage(req); err != nil {
		t.Fatal(err)
	}
	got, err := worker.ReadMessage()
	if err != nil || got.Type != req.Type || got.Seq != req.Seq {
		t.Fatalf("worker got %+v, %v; want %+v", got, err, req)
	}
	rep := wire.Message{Type: wire.MsgReply, Seq: 7, Body: brine.Tuple{int64(wire.LabelRemoteRef), brine.Tuple{"rpyc.core.service.SlaveService", int64(1), int64(2)}}}
	if err := worker.WriteMessage(rep); err != nil {
		t.Fatal(err)
	}
	if got, err := client.ReadMessage(); err != nil || got.Seq != 7 || got.Type != wire.MsgReply {
		t.Fatalf("client got %+v, %v", got, err)
	}

	client.Close() // the client goes away cleanly
	select {
	case err := <-result:
		if err != nil {
			t.Fatalf("Relay after client EOF = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Relay did not end after the client closed")
	}
	if !worker.isClosed() {
		t.Fatal("worker stream left open: the worker would keep the connection's objects")
	}
}

func TestRelayWorkerDeathClosesClient(t *testing.T) {
	died := errors.New("worker 1 killed by SIGSEGV")
	client, clientSide := relayPipe(io.EOF)
	worker, workerSide := relayPipe(died)
	result := make(chan error, 1)
	go func() { result <- Relay(context.Background(), clientSide, workerSide) }()

	worker.Close()
	select {
	case err := <-result:
		if !errors.Is(err, died) {
			t.Fatalf("Relay = %v, want the worker's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Relay did not end after the worker died")
	}
	if !client.isClosed() {
		t.Fatal("client left open after its worker died: it would hang")
	}
}

func TestRelayEndsWithContext(t *testing.T) {
	_, clientSide := relayPipe(io.EOF)
	_, workerSide := relayPipe(io.EOF)
	ctx, cancel := context.WithCancel(context.Background())
	result := make(chan error, 1)
	go func() { result <- Relay(ctx, clientSide, workerSide) }()
	cancel()
	select {
	case err := <-result:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Relay = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Relay ignored its context")
	}
}
