package bridge

import (
	"context"
	"errors"
	"io"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/pybridge/pybridge/bridge/wire"
	"github.com/pybridge/pybridge/internal/sched"
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
// When both streams read a descriptor directly (a client socket in blocking mode and
// a worker's connection socket: Fd), one thread relays both ways, waiting on both with
// poll(2); otherwise a goroutine pumps each way.
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

	if pc, ok := client.(pollable); ok {
		if pw, ok := worker.(pollableWorker); ok {
			if cfd, ok := pc.Fd(); ok {
				if wfd, ok := pw.Fd(); ok {
					finish(pollRelay(pc, cfd, pw, wfd))
					return relayResult(firstErr)
				}
			}
		}
	}

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
	return relayResult(firstErr)
}

func relayResult(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// pump copies messages from src to dst until one side fails.
func pump(src, dst wire.MessageStream) error {
	for {
		m, err := readForRelay(src, dst)
		if err != nil {
			return err
		}
		if m == nil {
			continue
		}
		if err := dst.WriteMessage(*m); err != nil {
			return err
		}
	}
}

// readForRelay reads the next message of src to forward to dst. A message over a value
// limit fails alone (nil message, nil error): a request gets its EXCEPTION back on src,
// a reply reaches dst as an EXCEPTION for the request it answers.
func readForRelay(src, dst wire.MessageStream) (*wire.Message, error) {
	m, err := src.ReadMessage()
	if err == nil {
		return &m, nil
	}
	var ol *wire.OverLimitError
	if !errors.As(err, &ol) {
		return nil, err
	}
	failed := ol.Reply()
	if ol.Type == wire.MsgRequest {
		return nil, src.WriteMessage(failed)
	}
	return &failed, nil
}

// pollable is a stream over one descriptor read in blocking mode.
type pollable interface {
	wire.MessageStream
	Fd() (int, bool)
	Buffered() int // bytes of its next messages already read
}

// pollableWorker is a worker's stream the relay can write without waiting (what the
// socket does not take now is sent once poll(2) says it has room).
type pollableWorker interface {
	pollable
	WriteMessageNoWait(m wire.Message) (unsent []byte, err error)
	WriteUnsent(unsent []byte) ([]byte, error)
}

// pollRelay relays both ways on the calling goroutine: a message already buffered is
// forwarded at once, otherwise poll(2) waits for either side. One thread, woken by the
// kernel directly, with no hand-off between goroutines.
//
// It never waits to hand the worker a request: the worker's thread may itself be
// waiting to hand us a reply (a client that pipelines requests and reads the replies
// later backs both up), and a relay waiting on it would never read that reply. What
// the worker's socket does not take goes out as poll(2) reports room, replies are
// relayed meanwhile, and the client is not read until it is gone: the client waits,
// as it would on rpyc's own server.
func pollRelay(client pollable, cfd int, worker pollableWorker, wfd int) error {
	fds := []unix.PollFd{{Fd: int32(cfd), Events: unix.POLLIN}, {Fd: int32(wfd), Events: unix.POLLIN}}
	clientDone := false
	var unsent []byte // of the last request to the worker
	// The goroutine keeps its thread: it only ever waits in poll(2), and moving between
	// threads would cost a wake-up of another one.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer sched.Outside()()
	var yield sched.Yielder
	for {
		yield.Tick()
		readClient := !clientDone && unsent == nil
		fromClient := readClient && client.Buffered() > 0
		fromWorker := worker.Buffered() > 0
		toWorker := false
		if !fromClient && !fromWorker {
			fds[0].Fd, fds[1].Events = -1, unix.POLLIN
			if readClient {
				fds[0].Fd = int32(cfd)
			}
			if unsent != nil {
				fds[1].Events |= unix.POLLOUT
			}
			fds[0].Revents, fds[1].Revents = 0, 0
			if _, err := unix.Poll(fds, -1); err != nil {
				if err == unix.EINTR {
					continue
				}
				return err
			}
			fromClient = readClient && fds[0].Revents != 0
			fromWorker = fds[1].Revents&^unix.POLLOUT != 0
			toWorker = fds[1].Revents&unix.POLLOUT != 0
		}
		if toWorker {
			var err error
			if unsent, err = worker.WriteUnsent(unsent); err != nil {
				return err
			}
		}
		if fromClient {
			m, err := readForRelay(client, worker)
			switch {
			case err == nil && m == nil:
			case err == nil:
				if unsent, err = worker.WriteMessageNoWait(*m); err != nil {
					return err
				}
			case errors.Is(err, io.EOF):
				cw, ok := worker.(interface{ CloseWrite() error })
				if !ok {
					return err
				}
				clientDone = true // the worker answers what it got, then ends
				cw.CloseWrite()
			default:
				return err
			}
		}
		if fromWorker {
			m, err := worker.ReadMessage()
			if err != nil {
				if clientDone && errors.Is(err, io.EOF) {
					return io.EOF
				}
				return err
			}
			if err := client.WriteMessage(m); err != nil {
				return err
			}
		}
	}
}
