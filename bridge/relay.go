package bridge

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/pybridge/pybridge/bridge/wire"
)

// Relay carries RPyC messages 1:1 between a client and a worker until either side ends,
// then closes both. It interprets nothing: the worker is the peer the client talks to,
// Go only changes the encoding (the two streams do that) and enforces the client
// stream's limits.
//
// When the client has sent all it will (EOF: it closed, or shut its sending half) and
// the worker stream can close its own sending half (CloseWrite), the worker is told so
// and still answers every request it got before the relay ends: a request sent just
// before a hang-up runs, and a half-closed client reads its replies, as with rpyc's
// own server.
//
// It returns nil when the client went away cleanly (EOF), else the first error that
// ended the relay: the client's (a malformed frame, a limit) or the worker's (the
// connection closed at the Python side, or the worker died). Closing the worker stream
// tells the worker to drop every object the connection held; closing the client stream
// gives the client a clean EOF.
func Relay(ctx context.Context, client, worker wire.MessageStream) error {
	var (
		once     sync.Once
		firstErr error
	)
	finish := func(err error) {
		once.Do(func() {
			firstErr = err
			client.Close()
			worker.Close()
		})
	}
	stop := context.AfterFunc(ctx, func() { finish(ctx.Err()) })
	defer stop()

	done := make(chan struct{})
	go func() {
		defer close(done)
		finish(pump(worker, client))
	}()
	err := pump(client, worker)
	if cw, ok := worker.(interface{ CloseWrite() error }); ok && errors.Is(err, io.EOF) {
		cw.CloseWrite() // the worker answers what it got, then ends: the other pump sees it
	} else {
		finish(err)
	}
	<-done
	if errors.Is(firstErr, io.EOF) {
		return nil
	}
	return firstErr
}

// pump copies messages from src to dst until one side fails.
func pump(src, dst wire.MessageStream) error {
	for {
		m, err := src.ReadMessage()
		if err != nil {
			return err
		}
		if err := dst.WriteMessage(m); err != nil {
			return err
		}
	}
}
