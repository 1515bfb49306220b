// Command floor is the cheapest server a round trip can have: it writes every read
// back unchanged, on a blocking socket and one thread per connection, as pybridge's
// server reads and writes its clients. bench/load.py measures its CPU per round trip
// next to rpyc's and pybridge's: the kernel's share (loopback TCP, waking the client,
// sleeping until the next request), which every server pays, so rpyc's CPU per request
// divided by it is the highest ratio any server could reach on the machine.
//
//	go run ./bench/floor 127.0.0.1:18861
package main

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: floor host:port")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		go echo(c.(*net.TCPConn))
	}
}

func echo(c *net.TCPConn) {
	// A blocking duplicate of the socket, read and written with plain system calls (as
	// server.toBlocking does): TCPConn.File would hand over a non-blocking descriptor
	// that Go's network poller waits on, which costs more than pybridge's own server.
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	fd := -1
	raw.Control(func(s uintptr) { fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) })
	c.Close()
	if err != nil || fd < 0 {
		return
	}
	defer unix.Close(fd)
	if unix.SetNonblock(fd, false) != nil {
		return
	}
	buf := make([]byte, 1<<16)
	for {
		n, err := unix.Read(fd, buf)
		if err != nil || n == 0 {
			return
		}
		if _, err := unix.Write(fd, buf[:n]); err != nil {
			return
		}
	}
}
