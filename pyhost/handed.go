package pyhost

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pybridge/pybridge/pyhost/internal/workerproto"
)

// HandedListener is a serving worker's side of Pool.Hand (Config.ServingWorker): a
// net.Listener whose Accept returns the client connections the pool hands this
// process over the control socket. It says HELLO when made, answers PINGs with ping,
// and Done is closed on SHUTDOWN or when the pool is gone; the program then stops
// accepting, lets its connections finish and exits. Ended reports each accepted
// connection's end to the pool.
type HandedListener struct {
	ctl    *net.UnixConn // the control socket, through Go's network poller
	ping   func(context.Context) error
	wmu    sync.Mutex
	conns  chan handedConn
	done   chan struct{}
	closed chan struct{}
	once   sync.Once
	stop   sync.Once

	mu  sync.Mutex
	ids map[net.Conn]uint64
}

type handedConn struct {
	c  net.Conn
	id uint64
}

// ListenHanded takes over the control socket at fd (the worker protocol, as a Python
// worker speaks it), says HELLO with hello's Python, Codec and Rpyc, and reads the
// pool's frames. ping answers a PING (nil: healthy); it runs on a goroutine of its own.
func ListenHanded(fd int, hello Hello, ping func(context.Context) error) (*HandedListener, error) {
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return nil, fmt.Errorf("pyhost: control socket fd %d: %w", fd, err)
	}
	// Through the poller, not blocking system calls: a thread back from a system call
	// wakes Go's sysmon, which then polls some 60 times before it sleeps again, so a
	// PING of an idle worker would cost that much. (net.FileConn takes a duplicate,
	// close-on-exec; the original goes.)
	f := os.NewFile(uintptr(fd), "control")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("pyhost: control socket fd %d: %w", fd, err)
	}
	ctl, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("pyhost: control socket fd %d is no Unix socket", fd)
	}
	l := &HandedListener{ctl: ctl, ping: ping, conns: make(chan handedConn), done: make(chan struct{}),
		closed: make(chan struct{}), ids: map[net.Conn]uint64{}}
	body := map[string]any{"protocol": int64(protocolVersion), "pid": int64(os.Getpid()),
		"python": hello.Python, "codec": hello.Codec, "serving": true}
	if hello.Rpyc != "" {
		body["rpyc"] = hello.Rpyc
	}
	if err := l.send(workerproto.Frame{Kind: workerproto.KindHello, Body: body}); err != nil {
		return nil, fmt.Errorf("pyhost: HELLO: %w", err)
	}
	go l.read()
	return l, nil
}

func (l *HandedListener) send(f workerproto.Frame) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	return workerproto.Write(f, DefaultLimits(), func(b []byte) error {
		_, err := l.ctl.Write(b)
		return err
	})
}

// fdReader reads the control socket with recvmsg(2) (close-on-exec descriptors),
// queueing the descriptors that come with the bytes (SCM_RIGHTS) in order: an OPEN's
// socket arrives with its frame's first byte, so it is queued by the time the frame has
// been read.
type fdReader struct {
	c   *net.UnixConn
	oob []byte
	fds []int
}

func (r *fdReader) Read(p []byte) (int, error) {
	n, oobn, _, _, err := r.c.ReadMsgUnix(p, r.oob)
	if err != nil {
		return 0, err
	}
	if oobn > 0 {
		if msgs, err := unix.ParseSocketControlMessage(r.oob[:oobn]); err == nil {
			for _, m := range msgs {
				if fds, err := unix.ParseUnixRights(&m); err == nil {
					r.fds = append(r.fds, fds...)
				}
			}
		}
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}

func (r *fdReader) take() (int, bool) {
	if len(r.fds) == 0 {
		return -1, false
	}
	fd := r.fds[0]
	r.fds = r.fds[1:]
	return fd, true
}

func (l *HandedListener) read() {
	defer l.shutdown()
	fr := &fdReader{c: l.ctl, oob: make([]byte, unix.CmsgSpace(16*4))}
	rd := bufio.NewReaderSize(fr, 16<<10)
	var buf []byte
	for {
		var f workerproto.Frame
		var err error
		f, buf, err = workerproto.ReadFrame(rd, buf, DefaultLimits())
		if err != nil {
			return
		}
		switch f.Kind {
		case workerproto.KindOpen:
			fd, ok := fr.take()
			if !ok {
				continue // an OPEN without its socket: nothing to serve
			}
			file := os.NewFile(uintptr(fd), "client")
			c, err := net.FileConn(file)
			file.Close()
			if err != nil {
				l.send(workerproto.Frame{Kind: workerproto.KindEnded, Conn: f.Conn, Body: err.Error()})
				continue
			}
			select {
			case l.conns <- handedConn{c, f.Conn}:
			case <-l.closed:
				c.Close()
				l.send(workerproto.Frame{Kind: workerproto.KindEnded, Conn: f.Conn, Body: "shutting down"})
			}
		case workerproto.KindPing:
			go func(f workerproto.Frame) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if l.ping == nil || l.ping(ctx) == nil {
					l.send(workerproto.Frame{Kind: workerproto.KindPong, Seq: f.Seq, Body: f.Body})
				}
			}(f)
		case workerproto.KindShutdown:
			l.shutdown()
		}
	}
}

func (l *HandedListener) shutdown() { l.once.Do(func() { close(l.done) }) }

// Done is closed when the pool asks this worker to shut down, or is gone.
func (l *HandedListener) Done() <-chan struct{} { return l.done }

// Accept returns the next client connection the pool hands over.
func (l *HandedListener) Accept() (net.Conn, error) {
	select {
	case hc := <-l.conns:
		l.mu.Lock()
		l.ids[hc.c] = hc.id
		l.mu.Unlock()
		return hc.c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Ended tells the pool that c, a connection Accept returned, has ended.
func (l *HandedListener) Ended(c net.Conn) {
	l.mu.Lock()
	id, ok := l.ids[c]
	delete(l.ids, c)
	l.mu.Unlock()
	if ok {
		l.send(workerproto.Frame{Kind: workerproto.KindEnded, Conn: id})
	}
}

// Close stops Accept; the control socket stays open for Ended and PONGs.
func (l *HandedListener) Close() error {
	l.stop.Do(func() { close(l.closed) })
	return nil
}

// Addr is the control socket's (a Unix socketpair: no name).
func (l *HandedListener) Addr() net.Addr { return &net.UnixAddr{Net: "unix", Name: "@pybridge-worker"} }
