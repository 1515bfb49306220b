package wire

import (
	"errors"
	"fmt"

	"github.com/pybridge/pybridge/bridge/brine"
)

// A Dialect is one of rpyc's message layouts. Nothing in rpyc negotiates it: a peer of
// one layout cannot read the other's messages, so a server learns a client's dialect
// from the first frame it receives (DetectDialect).
type Dialect interface {
	// Name is the rpyc version family, e.g. "rpyc 5.x".
	Name() string
	// AppendMessage appends the payload of m (before framing) to dst.
	AppendMessage(dst []byte, m Message) ([]byte, error)
	// ParseMessage decodes one payload (after framing).
	ParseMessage(payload []byte, lim brine.Limits) (Message, error)
}

var (
	// Dialect5 is rpyc 5.x: the payload is brine of the 3-tuple (msg, seq, body).
	Dialect5 Dialect = dialect5{}
	// Dialect6 is rpyc 6.x: one raw byte msg, then brine of (seq, body).
	Dialect6 Dialect = dialect6{}
	// DialectNG is rpyc-ng 7.x, a fork of rpyc 6: the same layout as Dialect6 (an ng
	// client's first frame is byte for byte a 6.x client's), with its own protocol above
	// it (id_packs of four items, handlers 21–23, brine tags for type objects), and
	// payloads over 1024 bytes compressed at zlib's default level. SpotNG tells it apart.
	DialectNG Dialect = dialectNG{}
)

// DialectError reports a payload that fits no known layout, or not the expected one.
type DialectError struct {
	Dialect string // "" when detecting
	Msg     string
	Err     error
}

func (e *DialectError) Error() string {
	s := "rpyc message"
	if e.Dialect != "" {
		s += " (" + e.Dialect + ")"
	}
	s += ": " + e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *DialectError) Unwrap() error { return e.Err }

const brineTuple2, brineTuple3 = 0x11, 0x12

// DetectDialect tells the layout of a peer's first payload. rpyc 5.x payloads start
// with brine's 3-tuple tag (0x12); rpyc 6.x payloads start with the message type (1, 2
// or 3) followed by brine's 2-tuple tag (0x11). A payload prefixed by bind_threads'
// thread ids (an experimental rpyc mode, off by default) fits neither and is refused.
func DetectDialect(first []byte) (Dialect, error) {
	switch {
	case len(first) >= 2 && first[0] >= 1 && first[0] <= 3 && first[1] == brineTuple2:
		return Dialect6, nil
	case len(first) >= 1 && first[0] == brineTuple3:
		return Dialect5, nil
	}
	n := min(len(first), 8)
	return nil, &DialectError{Msg: fmt.Sprintf("first payload % x… fits neither rpyc 5.x nor 6.x (is RPYC_BIND_THREADS set?)", first[:n])}
}

type dialect5 struct{}

func (dialect5) Name() string { return "rpyc 5.x" }

func (dialect5) AppendMessage(dst []byte, m Message) ([]byte, error) {
	return brine.AppendDump(dst, brine.Tuple{int64(m.Type), m.Seq, m.Body})
}

func (d dialect5) ParseMessage(payload []byte, lim brine.Limits) (Message, error) {
	v, err := brine.LoadLimited(payload, lim)
	if err != nil {
		if ol := overLimit(err, payload, 1, nil); ol != nil {
			return Message{}, ol
		}
		return Message{}, &DialectError{Dialect: d.Name(), Msg: "bad payload", Err: err}
	}
	t, ok := v.(brine.Tuple)
	if !ok || len(t) != 3 {
		return Message{}, &DialectError{Dialect: d.Name(), Msg: fmt.Sprintf("want (msg, seq, body), got %T", v)}
	}
	typ, ok := t[0].(int64)
	if !ok {
		return Message{}, &DialectError{Dialect: d.Name(), Msg: "message type is not an int"}
	}
	return message(d, typ, t[1], t[2])
}

type dialect6 struct{}

func (dialect6) Name() string { return "rpyc 6.x" }

func (dialect6) AppendMessage(dst []byte, m Message) ([]byte, error) {
	return brine.AppendDump(append(dst, byte(m.Type)), brine.Tuple{m.Seq, m.Body})
}

func (d dialect6) ParseMessage(payload []byte, lim brine.Limits) (Message, error) {
	if len(payload) < 1 {
		return Message{}, &DialectError{Dialect: d.Name(), Msg: "empty payload"}
	}
	v, err := brine.LoadLimited(payload[1:], lim)
	if err != nil {
		typ := int64(payload[0])
		if ol := overLimit(err, payload, 2, &typ); ol != nil {
			return Message{}, ol
		}
		return Message{}, &DialectError{Dialect: d.Name(), Msg: "bad payload", Err: err}
	}
	t, ok := v.(brine.Tuple)
	if !ok || len(t) != 2 {
		return Message{}, &DialectError{Dialect: d.Name(), Msg: fmt.Sprintf("want (seq, body), got %T", v)}
	}
	return message(d, int64(payload[0]), t[0], t[1])
}

type dialectNG struct{ dialect6 }

func (dialectNG) Name() string { return "rpyc-ng 7.x" }

func (d dialectNG) ParseMessage(payload []byte, lim brine.Limits) (Message, error) {
	m, err := d.dialect6.ParseMessage(payload, lim)
	var de *DialectError
	if errors.As(err, &de) && de.Dialect == (dialect6{}).Name() {
		de.Dialect = d.Name()
	}
	return m, err
}

// compressionOf is how a dialect's senders compress.
func compressionOf(d Dialect) *compression {
	if d == DialectNG {
		return &ngCompression
	}
	return &rpycCompression
}

// SpotNG tells an rpyc-ng peer from an rpyc 6.x one by a message it sent in the 6.x
// layout, when the message shows it: ng is true for a REQUEST of a handler only ng has
// (BOOL, SUBCLASSCHECK, TYPE: 21–23) and for an object named by an id_pack of four
// items (ng's (name, class id, instance id, object type)), false for one of three (rpyc
// 5.x/6.x); known is false when the message names no object (a PING, a GETROOT, a reply
// of plain values). It looks at a REQUEST's first argument (as LOCAL_REF, or the plain
// id_pack INSPECT, TYPE and ng's DEL take) and at a REPLY that is a REMOTE_REF.
func SpotNG(m Message) (ng, known bool) {
	body, ok := m.Body.(brine.Tuple)
	if !ok || len(body) != 2 {
		return false, false
	}
	switch m.Type {
	case MsgReply: // (label, value)
		if label, _ := body[0].(int64); Label(label) == LabelRemoteRef {
			return idPackItems(body[1])
		}
	case MsgRequest: // (handler, (label, args))
		handler, _ := body[0].(int64)
		if handler >= int64(HandleBool) && handler <= int64(HandleType) {
			return true, true
		}
		boxed, ok := body[1].(brine.Tuple)
		if !ok || len(boxed) != 2 {
			return false, false
		}
		args, ok := boxed[1].(brine.Tuple)
		if !ok || len(args) == 0 {
			return false, false
		}
		switch label, _ := boxed[0].(int64); Label(label) {
		case LabelTuple: // each argument boxed
			if first, ok := args[0].(brine.Tuple); ok && len(first) == 2 {
				if l, _ := first[0].(int64); Label(l) == LabelLocalRef {
					return idPackItems(first[1])
				}
			}
		case LabelValue: // all arguments plain values
			switch Handler(handler) {
			case HandleInspect, HandleDel:
				return idPackItems(args[0])
			}
		}
	}
	return false, false
}

// idPackItems: an id_pack of four items is ng's, of three rpyc's.
func idPackItems(v any) (ng, known bool) {
	t, ok := v.(brine.Tuple)
	if !ok || len(t) < 3 || len(t) > 4 {
		return false, false
	}
	if _, ok := t[0].(string); !ok {
		return false, false
	}
	return len(t) == 4, true
}

func message(d Dialect, typ int64, seq, body any) (Message, error) {
	if typ < int64(MsgRequest) || typ > int64(MsgException) {
		return Message{}, &DialectError{Dialect: d.Name(), Msg: fmt.Sprintf("invalid message type %d", typ)}
	}
	s, ok := seq.(int64)
	if !ok {
		return Message{}, &DialectError{Dialect: d.Name(), Msg: fmt.Sprintf("sequence number is %T, not an int", seq)}
	}
	return Message{Type: MsgType(typ), Seq: s, Body: body}, nil
}

// OverLimitError is a well-formed message whose body goes past a value limit (nesting,
// items, int digits): the peer's request fails, the connection does not. Reply is the
// EXCEPTION to send back for a REQUEST.
type OverLimitError struct {
	Type MsgType
	Seq  int64
	Err  error
}

func (e *OverLimitError) Error() string {
	return fmt.Sprintf("%v %d over a value limit: %v", e.Type, e.Seq, e.Err)
}

func (e *OverLimitError) Unwrap() error { return e.Err }

// Reply is the EXCEPTION answering the request: a ValueError saying which limit.
func (e *OverLimitError) Reply() Message {
	msg := fmt.Sprintf("pybridge refused the request: %v", e.Err)
	return Message{Type: MsgException, Seq: e.Seq, Body: brine.Tuple{
		brine.Tuple{"builtins", "ValueError"}, brine.Tuple{msg},
		brine.Tuple{brine.Tuple{"_remote_version", "<version denied>"}}, ""}}
}

// overLimit reads the type and seq of a payload whose body failed a limit. skip is
// how many bytes come before the seq in the layout: 5.x: the 3-tuple tag and then the
// type (read here), 6.x: the type byte and the 2-tuple tag (typ given).
func overLimit(err error, payload []byte, skip int, typ *int64) *OverLimitError {
	var de *brine.DecodeError
	if !errors.As(err, &de) || !de.Limit || len(payload) <= skip {
		return nil
	}
	rest := payload[skip:]
	if typ == nil {
		if payload[0] != brineTuple3 {
			return nil
		}
		v, n, err := brine.LoadPrefix(rest, brine.Limits{})
		t, ok := v.(int64)
		if err != nil || !ok {
			return nil
		}
		typ, rest = &t, rest[n:]
	} else if payload[1] != brineTuple2 {
		return nil
	}
	v, _, e := brine.LoadPrefix(rest, brine.Limits{})
	seq, ok := v.(int64)
	if e != nil || !ok || *typ < int64(MsgRequest) || *typ > int64(MsgException) {
		return nil
	}
	return &OverLimitError{Type: MsgType(*typ), Seq: seq, Err: err}
}
