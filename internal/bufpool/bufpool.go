// Package bufpool recycles the large byte buffers big messages need (frames, inflated
// payloads, encodings over 1 MiB): a connection echoing megabytes reuses them rather
// than allocating them afresh for every message, which the collector then has to clear,
// sweep and fault in again (a 1 MiB echo allocated ~6 MiB per request). Buffers live in
// sync.Pools by power-of-two size, shared by every connection, so what is kept follows
// what is in use and is dropped within two collections of not being used.
package bufpool

import (
	"math/bits"
	"sync"
)

const (
	// Min is the smallest capacity pooled: owners keep smaller buffers themselves.
	Min = 1 << 20
	// Max is the largest: bigger buffers are rare and go back to the collector.
	Max = 64 << 20

	minClass = 20 // log2(Min)
	maxClass = 26 // log2(Max)
)

var pools [maxClass - minClass + 1]sync.Pool // of *[]byte

// Get returns an empty buffer of capacity at least n: a recycled one when there is one.
// For n up to Min it simply allocates n.
func Get(n int) []byte {
	if n <= Min || n > Max {
		return make([]byte, 0, n)
	}
	class := bits.Len(uint(n - 1)) // 1<<class >= n
	if p, ok := pools[class-minClass].Get().(*[]byte); ok {
		return (*p)[:0]
	}
	return make([]byte, 0, 1<<class)
}

// Put hands b back for a later Get; the caller must not use it afterwards. Buffers
// smaller than Min or larger than Max are left to the collector.
func Put(b []byte) {
	c := cap(b)
	if c < Min || c > Max {
		return
	}
	class := bits.Len(uint(c)) - 1 // 1<<class <= c
	b = b[:0]
	pools[class-minClass].Put(&b)
}
