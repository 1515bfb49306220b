package wire

import (
	"github.com/pybridge/pybridge/bridge/brine"
)

// BodyLoader decodes a message body from its brine bytes into values of its own (e.g.
// straight into another runtime's objects) rather than the brine value model, within
// lim: the stream's value limits as they apply to the body (a body is one level down
// in its message, after the header's items). It reports false for input it cannot
// decode, or will not (over lim); the stream's own decoder then decides. body is valid
// only during the call.
type BodyLoader func(body []byte, lim brine.Limits) (any, bool)

// ReadMessageLoading is ReadMessage with each body decoded by load. What load refuses
// is decoded by the stream as ReadMessage would: its error (an *OverLimitError, a
// *DialectError), or a body in the value model when the stream can read what load
// could not. Messages read while the dialect is not settled, or while an rpyc 6.x peer
// may still turn out to be rpyc-ng, come in the value model too: the caller handles
// both kinds. Not safe for concurrent use, as ReadMessage.
func (fs *FrameStream) ReadMessageLoading(load BodyLoader) (Message, error) {
	d := fs.Dialect()
	if fs.pending != nil || d == nil || fs.assumed || fs.spotting {
		return fs.ReadMessage()
	}
	fs.quickAck()
	payload, err := fs.bufs.Read(fs.r, fs.lim)
	if err != nil {
		return Message{}, err
	}
	typ, seq, body, header, ok := splitMessage(d, payload)
	var m Message
	if ok {
		m = Message{Type: typ, Seq: seq}
		var lim brine.Limits
		if lim, ok = bodyLimits(fs.lim.Value, header); ok {
			m.Body, ok = load(body, lim)
		}
	}
	if !ok {
		m, err = d.ParseMessage(payload, fs.lim.Value)
	}
	fs.received(m, err, encodedHandler(m, body))
	fs.bufs.Release() // the message holds copies
	return m, err
}

// splitMessage finds a payload's message type, sequence number and body bytes, and
// how many brine items came before the body, for the layouts whose header is plain
// (5.x: (msg, seq, body); 6.x and ng: msg, (seq, body)).
func splitMessage(d Dialect, payload []byte) (typ MsgType, seq int64, body []byte, header int, ok bool) {
	var t int64
	switch d {
	case Dialect5:
		if len(payload) < 3 || payload[0] != brineTuple3 {
			return 0, 0, nil, 0, false
		}
		t, header = int64(payload[1])-brineImmOffset, 3 // the tuple, msg, seq
		payload = payload[2:]
	case Dialect6, DialectNG:
		if len(payload) < 3 || payload[1] != brineTuple2 {
			return 0, 0, nil, 0, false
		}
		t, header = int64(payload[0]), 2 // the tuple, seq
		payload = payload[2:]
	default:
		return 0, 0, nil, 0, false
	}
	if t < int64(MsgRequest) || t > int64(MsgException) {
		return 0, 0, nil, 0, false
	}
	s, n, ok := loadSeq(payload)
	if !ok {
		return 0, 0, nil, 0, false
	}
	return MsgType(t), s, payload[n:], header, true
}

// loadSeq reads a sequence number at the start of b: a brine small int, or a decimal of
// up to 18 digits (brine's int of one length byte). Others are left to package brine.
func loadSeq(b []byte) (seq int64, n int, ok bool) {
	if len(b) == 0 {
		return 0, 0, false
	}
	if tag := b[0]; tag >= 0x20 && tag <= 0xef {
		return int64(tag) - brineImmOffset, 1, true
	}
	if b[0] != 0x16 || len(b) < 2 || int(b[1]) > 18 || len(b) < 2+int(b[1]) || b[1] == 0 {
		return 0, 0, false
	}
	digits, neg := b[2:2+int(b[1])], false
	if digits[0] == '-' {
		digits, neg = digits[1:], true
	}
	if len(digits) == 0 {
		return 0, 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, 0, false
		}
		seq = seq*10 + int64(c-'0')
	}
	if neg {
		seq = -seq
	}
	return seq, 2 + int(b[1]), true
}

// bodyLimits are lim as they apply to a body: one level down, after header items. false
// when nothing is left (0 means no bound).
func bodyLimits(lim brine.Limits, header int) (brine.Limits, bool) {
	if lim.MaxDepth > 0 {
		if lim.MaxDepth--; lim.MaxDepth == 0 {
			return lim, false
		}
	}
	if lim.MaxItems > 0 {
		if lim.MaxItems -= header; lim.MaxItems <= 0 {
			return lim, false
		}
	}
	return lim, true
}

// brineImmOffset: a brine small int n is the byte n+0x50.
const brineImmOffset = 0x50

// encodedHandler is a REQUEST's handler read from its encoded body ((handler, args),
// the handler a small int), or from the value model when body is nil.
func encodedHandler(m Message, body []byte) Handler {
	if m.Type != MsgRequest {
		return 0
	}
	if _, decoded := m.Body.(brine.Tuple); decoded || body == nil {
		return handlerOf(m)
	}
	if len(body) >= 2 && body[0] == brineTuple2 {
		if h := int(body[1]) - brineImmOffset; h > 0 && h < len(handlerNames) {
			return Handler(h)
		}
	}
	return 0
}

// handlerOf is a REQUEST's handler in the value model: its body is (handler, args).
func handlerOf(m Message) Handler {
	if m.Type != MsgRequest {
		return 0
	}
	if t, ok := m.Body.(brine.Tuple); ok && len(t) == 2 {
		if h, ok := t[0].(int64); ok && h > 0 && h < int64(len(handlerNames)) {
			return Handler(h)
		}
	}
	return 0
}
