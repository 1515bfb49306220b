package pyhost

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// socket is Go's end of a worker's socketpair (the control socket, or one
// connection's), used with blocking system calls rather than Go's network poller: a
// reader blocked in read(2) is woken by the kernel directly when the worker answers,
// which halves the round-trip latency measured here against epoll plus a goroutine
// wake-up (BenchmarkRoundTrip*). It costs one OS thread per reader while it waits.
//
// A blocked reader or writer is woken by shutdown(2), never by closing the fd under it
// (the number could be reused); close waits for I/O in flight to return.
type socket struct {
	fd     int
	mu     sync.RWMutex // shared by I/O, exclusive by close
	closed bool
	wmu    sync.Mutex // whole frames only

	// an eventfd that interrupts waitInput, made when first needed (under mu, shared)
	kickMu sync.Mutex
	kick   int
	kicks  bool // kick is made
}

func (s *socket) Read(p []byte) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, net.ErrClosed
	}
	for {
		n, err := unix.Read(s.fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, os.NewSyscallError("read", err)
		}
		if n == 0 && len(p) > 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

// write sends b whole. MSG_NOSIGNAL: a dead worker is an EPIPE error, not a SIGPIPE.
func (s *socket) write(b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return net.ErrClosed
	}
	for len(b) > 0 {
		n, err := unix.SendmsgN(s.fd, b, nil, nil, unix.MSG_NOSIGNAL)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			s.waitWritable()
			continue
		}
		if err != nil {
			return os.NewSyscallError("sendmsg", err)
		}
		b = b[n:]
	}
	return nil
}

// waitWritable waits for room on a socket that is non-blocking (a worker's control
// socket, read through Go's poller on a duplicate: see Worker.controlReader).
func (s *socket) waitWritable() {
	fds := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLOUT}}
	unix.Poll(fds, -1) // room, an error or a hang-up: the next send says which
}

// sendNoWait sends what of b the socket takes now, without waiting for room: n is
// how much (0 with a nil error when it is full).
func (s *socket) sendNoWait(b []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, net.ErrClosed
	}
	for {
		n, err := unix.SendmsgN(s.fd, b, nil, nil, unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
		switch err {
		case nil:
			return n, nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, nil
		}
		return 0, os.NewSyscallError("sendmsg", err)
	}
}

// writeWithFD sends b whole, with fd attached to its first byte (SCM_RIGHTS).
func (s *socket) writeWithFD(b []byte, fd int) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return net.ErrClosed
	}
	oob := unix.UnixRights(fd)
	for len(b) > 0 {
		n, err := unix.SendmsgN(s.fd, b, oob, nil, unix.MSG_NOSIGNAL)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			s.waitWritable()
			continue
		}
		if err != nil {
			return os.NewSyscallError("sendmsg", err)
		}
		b, oob = b[n:], nil
	}
	return nil
}

// closeWrite shuts the sending half down: the peer reads what was sent, then EOF.
func (s *socket) closeWrite() {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.closed {
		unix.Shutdown(s.fd, unix.SHUT_WR)
	}
}

// waitReadable waits until the socket has data or EOF, the deadline passes, ctx is
// done or the process exited; it polls in short slices to notice the latter two.
func (s *socket) waitReadable(ctx context.Context, deadline time.Time, exited <-chan struct{}) error {
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return os.ErrDeadlineExceeded
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		select {
		case <-exited:
			return nil // read what is left, then EOF
		default:
		}
		fds := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(min(left, 20*time.Millisecond)/time.Millisecond)+1)
		if err != nil && err != unix.EINTR {
			return os.NewSyscallError("poll", err)
		}
		if n > 0 {
			return nil
		}
	}
}

// kickFd is the eventfd that interrupts waitInput, made on first use; false when it
// cannot be made now (out of descriptors: tried again next time). The caller holds mu
// (shared) and has seen the socket open, so close cannot run meanwhile.
func (s *socket) kickFd() (int, bool) {
	s.kickMu.Lock()
	defer s.kickMu.Unlock()
	if !s.kicks {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			return -1, false
		}
		s.kick, s.kicks = fd, true
	}
	return s.kick, true
}

// waitInput waits in poll(2) until the socket has input (data, EOF or an error: the
// next read says which) or interrupt is called; interrupted says it was the latter.
// An interrupt that came while nobody waited makes the next waitInput return at once.
// When it cannot wait so (the socket is closed, no eventfd can be made, poll fails) it
// returns at once, not interrupted: the read that follows then waits, or says why not.
func (s *socket) waitInput() (interrupted bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return false
	}
	kick, ok := s.kickFd()
	if !ok {
		return false
	}
	fds := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}, {Fd: int32(kick), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil || fds[0].Revents != 0 {
			return false
		}
		var b [8]byte
		unix.Read(kick, b[:]) // reset the eventfd's count
		return true
	}
}

// interrupt makes a waitInput under way, or the next one, return.
func (s *socket) interrupt() {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return
	}
	if kick, ok := s.kickFd(); ok {
		var b [8]byte
		binary.NativeEndian.PutUint64(b[:], 1)
		unix.Write(kick, b[:])
	}
}

// shutdown wakes any reader and writer: reads return EOF, writes EPIPE.
func (s *socket) shutdown() {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.closed {
		unix.Shutdown(s.fd, unix.SHUT_RDWR)
	}
}

func (s *socket) close() {
	s.shutdown()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		unix.Close(s.fd)
		if s.kicks { // none is made after closed is set (kickFd runs under mu, shared)
			unix.Close(s.kick)
		}
	}
}
