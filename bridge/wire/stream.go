package wire

import (
	"bufio"
	"fmt"
	"io"
	"sync"
)

// FrameStream is a MessageStream over an rpyc socket (or pipe pair) in one dialect.
type FrameStream struct {
	rwc     io.ReadWriteCloser
	r       *bufio.Reader
	dialect Dialect
	lim     Limits
	rbuf    []byte
	pending *Message // the first message, read by AcceptFrameStream

	wmu      sync.Mutex
	compress bool
	closeMu  sync.Once
	closeErr error
}

// NewFrameStream speaks dialect d over rwc.
func NewFrameStream(rwc io.ReadWriteCloser, d Dialect, lim Limits) *FrameStream {
	return &FrameStream{rwc: rwc, r: bufio.NewReaderSize(rwc, 64<<10), dialect: d, lim: lim, compress: true}
}

// AcceptFrameStream reads the peer's first frame, picks the dialect it is written in,
// and returns a stream whose first ReadMessage yields that message.
func AcceptFrameStream(rwc io.ReadWriteCloser, lim Limits) (*FrameStream, error) {
	fs := NewFrameStream(rwc, nil, lim)
	payload, err := ReadFrame(fs.r, lim, nil)
	if err != nil {
		return nil, err
	}
	if fs.dialect, err = DetectDialect(payload); err != nil {
		return nil, err
	}
	m, err := fs.dialect.ParseMessage(payload, lim.Value)
	if err != nil {
		return nil, err
	}
	fs.pending = &m
	return fs, nil
}

// Dialect is the stream's message layout.
func (fs *FrameStream) Dialect() Dialect { return fs.dialect }

// SetCompression turns compression of large payloads on (the default, as rpyc) or off.
func (fs *FrameStream) SetCompression(on bool) {
	fs.wmu.Lock()
	fs.compress = on
	fs.wmu.Unlock()
}

// ReadMessage reads the next message. Not safe for concurrent use.
func (fs *FrameStream) ReadMessage() (Message, error) {
	if m := fs.pending; m != nil {
		fs.pending = nil
		return *m, nil
	}
	payload, err := ReadFrame(fs.r, fs.lim, fs.rbuf)
	if err != nil {
		return Message{}, err
	}
	if cap(payload) <= 1<<20 {
		fs.rbuf = payload[:0]
	}
	return fs.dialect.ParseMessage(payload, fs.lim.Value)
}

// WriteMessage encodes m and writes its frame with one Write. Safe for concurrent use.
func (fs *FrameStream) WriteMessage(m Message) error {
	payload, err := fs.dialect.AppendMessage(nil, m)
	if err != nil {
		return fmt.Errorf("encode %v %d: %w", m.Type, m.Seq, err)
	}
	fs.wmu.Lock()
	defer fs.wmu.Unlock()
	frame := AppendFrame(make([]byte, 0, len(payload)+frameHeaderLen+1), payload, fs.compress)
	_, err = fs.rwc.Write(frame)
	return err
}

// Close closes the underlying connection.
func (fs *FrameStream) Close() error {
	fs.closeMu.Do(func() { fs.closeErr = fs.rwc.Close() })
	return fs.closeErr
}
