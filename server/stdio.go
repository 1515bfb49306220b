package server

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// TakeStdio takes the process's stdin and stdout for one connection, the way pybridge
// takes std streams everywhere: the connection gets duplicates of fds 0 and 1, then fd 0
// is pointed at /dev/null and fd 1 at stderr. Whatever later writes to fd 1 (a log line,
// a child process) lands on stderr and cannot corrupt the stream, and closing the
// connection closes only the duplicates: fds 0, 1 and 2 stay valid.
func TakeStdio() (*StdioConn, error) {
	in, err := unix.FcntlInt(0, unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, fmt.Errorf("dup stdin: %w", err)
	}
	out, err := unix.FcntlInt(1, unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		unix.Close(in)
		return nil, fmt.Errorf("dup stdout: %w", err)
	}
	null, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err == nil {
		err = unix.Dup3(null, 0, 0)
		unix.Close(null)
	}
	if err == nil {
		err = unix.Dup3(2, 1, 0)
	}
	if err != nil {
		unix.Close(in)
		unix.Close(out)
		return nil, fmt.Errorf("re-point fds 0 and 1: %w", err)
	}
	return &StdioConn{in: os.NewFile(uintptr(in), "stdio-in"), out: os.NewFile(uintptr(out), "stdio-out")}, nil
}

// StdioConn is a connection over duplicated std fds.
type StdioConn struct {
	in, out *os.File
}

func (c *StdioConn) Read(p []byte) (int, error)  { return c.in.Read(p) }
func (c *StdioConn) Write(p []byte) (int, error) { return c.out.Write(p) }

// Close closes both duplicates.
func (c *StdioConn) Close() error {
	return errors.Join(c.in.Close(), c.out.Close())
}
