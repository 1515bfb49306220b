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
	f, err := c.File() // a blocking descriptor: read(2) and write(2), no poller
	c.Close()
	if err != nil {
		return
	}
	defer f.Close()
	buf := make([]byte, 1<<16)
	for {
		n, err := f.Read(buf)
		if err != nil {
			return
		}
		if _, err := f.Write(buf[:n]); err != nil {
			return
		}
	}
}
