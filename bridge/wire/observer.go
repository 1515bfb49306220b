package wire

// Observer sees one FrameStream's traffic, for metrics (package server/metrics). Its
// methods run on the goroutine that reads or writes, inside the stream's own calls:
// they must be quick and must not call back into the stream. Reads come from one
// goroutine at a time; writes may come from several at once, and concurrently with
// reads.
type Observer interface {
	// Settled: the stream's dialect is known (given, read from the peer's first frame,
	// or assumed by a write that waited for that frame in vain). Called at most once.
	Settled(d Dialect)
	// Received: a message read, the handler of a REQUEST (0 for other messages, and for
	// a request naming none), and the bytes its frame took on the wire.
	Received(t MsgType, seq int64, h Handler, frameBytes int)
	// Sent: a message written, and the bytes its frame took on the wire.
	Sent(t MsgType, seq int64, frameBytes int)
	// Refused: a well-formed message over a value limit was read (an *OverLimitError):
	// it fails alone and the connection lives.
	Refused(t MsgType, frameBytes int)
}

// SetObserver has o see the stream's traffic. Call it before the stream is used; a
// dialect already settled (given to NewFrameStream) is reported at once.
func (fs *FrameStream) SetObserver(o Observer) {
	fs.obs = o
	if d := fs.Dialect(); d != nil {
		o.Settled(d)
	}
}
