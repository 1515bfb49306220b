package server

import (
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// blockingConn is a client socket switched to blocking mode and read and written with
// plain system calls by the connection's own thread. In embedded isolation that thread
// runs Python: when data arrives the kernel wakes it directly, where Go's network
// poller would wake a scheduler thread first and have it hand over to the pinned one
// (a second wake-up per request). Read deadlines are kept with poll(2).
type blockingConn struct {
	f        *os.File
	rc       syscall.RawConn
	laddr    net.Addr
	raddr    net.Addr
	deadline atomic.Int64 // read deadline, unix nanoseconds; 0: none
	closed   atomic.Bool
	tcp      bool
}

// toBlocking takes over c's socket as a blockingConn, or returns c as it is when it is
// no TCP or Unix socket.
func toBlocking(c net.Conn) net.Conn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	fd := -1
	raw.Control(func(s uintptr) { fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) })
	if err != nil || fd < 0 {
		return c
	}
	// Blocking before os.NewFile sees it, so the duplicate is never registered with Go's
	// network poller: nothing wakes a scheduler thread when data arrives.
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return c
	}
	f := os.NewFile(uintptr(fd), "client")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return c
	}
	_, isTCP := c.(*net.TCPConn)
	b := &blockingConn{f: f, rc: rc, laddr: c.LocalAddr(), raddr: c.RemoteAddr(), tcp: isTCP}
	c.Close() // the duplicate keeps the socket open
	return b
}

func (c *blockingConn) Read(p []byte) (int, error) {
	if d := c.deadline.Load(); d != 0 {
		if err := c.waitReadable(d); err != nil {
			return 0, err
		}
	}
	return c.f.Read(p)
}

// QuickAck has the next segments from the client acknowledged at once (TCP_QUICKACK,
// which the kernel clears as it goes; wire.FrameStream re-arms it before each read
// while the server waits for the client's reply to a callback).
func (c *blockingConn) QuickAck() {
	if c.tcp {
		c.rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1) })
	}
}

func (c *blockingConn) waitReadable(deadline int64) error {
	for {
		ms := (deadline - time.Now().UnixNano() + int64(time.Millisecond) - 1) / int64(time.Millisecond)
		if ms <= 0 {
			return os.ErrDeadlineExceeded
		}
		var n int
		var err error
		cerr := c.rc.Control(func(fd uintptr) {
			n, err = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(min(ms, 1<<30)))
		})
		switch {
		case cerr != nil:
			return cerr
		case err == unix.EINTR:
			continue
		case err != nil:
			return err
		case n > 0:
			return nil
		}
	}
}

func (c *blockingConn) Write(p []byte) (int, error) { return c.f.Write(p) }

// Close shuts the socket down first, which wakes a thread blocked reading it, then
// closes the descriptor (once no read or write is under way).
func (c *blockingConn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.rc.Control(func(fd uintptr) { unix.Shutdown(int(fd), unix.SHUT_RDWR) })
	return c.f.Close()
}

// CloseWrite shuts the sending half down (the peer reads EOF).
func (c *blockingConn) CloseWrite() error {
	var err error
	c.rc.Control(func(fd uintptr) { err = unix.Shutdown(int(fd), unix.SHUT_WR) })
	return err
}

// HoldFd runs f with the socket's descriptor, kept open meanwhile: a Close during f
// shuts the socket down (waking a thread blocked reading it) but closes the descriptor
// only once f has returned, so that its number is not reused while f may use it.
func (c *blockingConn) HoldFd(f func(fd int)) error {
	return c.rc.Control(func(s uintptr) { f(int(s)) })
}

// BlockingFd is the socket's descriptor, for poll(2) (bridge.Relay waits on it).
func (c *blockingConn) BlockingFd() int {
	fd := -1
	c.rc.Control(func(s uintptr) { fd = int(s) })
	return fd
}

func (c *blockingConn) LocalAddr() net.Addr  { return c.laddr }
func (c *blockingConn) RemoteAddr() net.Addr { return c.raddr }

func (c *blockingConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

func (c *blockingConn) SetReadDeadline(t time.Time) error {
	if t.IsZero() {
		c.deadline.Store(0)
	} else {
		c.deadline.Store(t.UnixNano())
	}
	return nil
}

// SetWriteDeadline is not supported: writes block until the peer reads.
func (c *blockingConn) SetWriteDeadline(time.Time) error { return nil }
