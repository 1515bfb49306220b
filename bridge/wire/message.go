// Package wire is RPyC's transport layer: frames, the message layouts (dialects) of
// rpyc 5.x, 6.x and rpyc-ng 7.x, and the constants every RPyC peer shares.
//
// A MessageStream carries whole RPyC messages whose bodies are values of the brine value
// model (package brine). Over a socket to an rpyc peer the stream frames and brine-encodes
// them in one dialect (FrameStream); over a pybridge worker's socketpair, package pyhost
// carries the same messages encoded in msgpack. Nothing above a MessageStream knows which.
package wire

import "strconv"

// MsgType is the first field of every RPyC message.
type MsgType uint8

const (
	MsgRequest   MsgType = 1
	MsgReply     MsgType = 2
	MsgException MsgType = 3
)

func (t MsgType) String() string {
	switch t {
	case MsgRequest:
		return "REQUEST"
	case MsgReply:
		return "REPLY"
	case MsgException:
		return "EXCEPTION"
	}
	return "MSG(" + strconv.Itoa(int(t)) + ")"
}

// Handler names the operation a REQUEST asks for (rpyc's consts.HANDLE_*).
type Handler int

const (
	HandlePing          Handler = 1
	HandleClose         Handler = 2
	HandleGetRoot       Handler = 3
	HandleGetAttr       Handler = 4
	HandleDelAttr       Handler = 5
	HandleSetAttr       Handler = 6
	HandleCall          Handler = 7
	HandleCallAttr      Handler = 8
	HandleRepr          Handler = 9
	HandleStr           Handler = 10
	HandleCmp           Handler = 11
	HandleHash          Handler = 12
	HandleDir           Handler = 13
	HandlePickle        Handler = 14
	HandleDel           Handler = 15
	HandleInspect       Handler = 16
	HandleBuffIter      Handler = 17
	HandleOldSlicing    Handler = 18
	HandleCtxExit       Handler = 19
	HandleInstanceCheck Handler = 20
	// rpyc-ng only (it never sends CALLATTR, and its peer does not serve it)
	HandleBool          Handler = 21
	HandleSubclassCheck Handler = 22
	HandleType          Handler = 23
)

var handlerNames = [...]string{"", "PING", "CLOSE", "GETROOT", "GETATTR", "DELATTR", "SETATTR",
	"CALL", "CALLATTR", "REPR", "STR", "CMP", "HASH", "DIR", "PICKLE", "DEL", "INSPECT",
	"BUFFITER", "OLDSLICING", "CTXEXIT", "INSTANCECHECK", "BOOL", "SUBCLASSCHECK", "TYPE"}

func (h Handler) String() string {
	if h > 0 && int(h) < len(handlerNames) {
		return handlerNames[h]
	}
	return "HANDLER(" + strconv.Itoa(int(h)) + ")"
}

// Label tags a boxed value: (label, value).
type Label int

const (
	LabelValue     Label = 1 // a brine value
	LabelTuple     Label = 2 // a tuple of boxed items
	LabelLocalRef  Label = 3 // id_pack of an object living at the receiver
	LabelRemoteRef Label = 4 // id_pack of an object living at the sender
)

// Message is one RPyC message. Body is a value of the brine value model:
// REQUEST: Tuple{handler int64, boxedArgs}; REPLY: the boxed result;
// EXCEPTION: the vinegar tuple (or int64 1 for StopIteration).
type Message struct {
	Type MsgType
	Seq  int64
	Body any
}

// MessageStream carries whole RPyC messages in both directions. ReadMessage is called
// from one goroutine at a time; WriteMessage is safe for concurrent use.
type MessageStream interface {
	ReadMessage() (Message, error)
	WriteMessage(Message) error
	Close() error
}
