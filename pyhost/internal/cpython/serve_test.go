package cpython

import (
	"fmt"
	"testing"

	"github.com/pybridge/pybridge/bridge/brine"
	"github.com/pybridge/pybridge/bridge/wire"
)

// The state pybridge.protocol.Connection._serve_in_c hands the channel, over a stand-in
// connection whose object table holds a few objects.
const serveSetup = `
import collections, threading

class Conn:
    pass

conn = Conn()
conn._config = {"allow_getattr": True, "allow_all_attrs": True, "allow_exposed_attrs": False}
conn._waiters = 0

class Thing:
    value = 7

    def add(self, a, b=0, *, c=0):
        return a + b + c

    @property
    def broken(self):
        raise ValueError("broken property")

    def items(self):
        return [1, 2]

    def kind(self):
        return (int, 1)

class Hooked:
    def _rpyc_getattr(self, name):
        return "hooked"

thing, hooked, unseen = Thing(), Hooked(), type("Unseen", (), {"x": 1})()
slots = {("t", 1, 1): [thing, 1], ("h", 1, 2): [hooked, 1], ("u", 1, 3): [unseen, 1], ("f", 1, 4): [thing.add, 1]}
overrides = {(Thing, "_rpyc_getattr"): None, (Hooked, "_rpyc_getattr"): Hooked._rpyc_getattr,
             (type(thing.add), "_rpyc_getattr"): None}
lock = threading.Lock()
state = (conn, slots, overrides, "_config", "allow_getattr", "allow_all_attrs", "allow_exposed_attrs",
         "_rpyc_getattr", "_waiters", lock.release, lock.acquire, (False,), collections.deque(), lambda: None)
`

// servingState is serveState for a test that holds the GIL until it ends.
func servingState(t *testing.T) (state, conn Object) {
	start(t)
	Enter()
	t.Cleanup(Leave) // after the references are dropped (cleanups run last first)
	state, conn = serveState(t)
	t.Cleanup(func() {
		state.DecRef()
		conn.DecRef()
	})
	return state, conn
}

func serveState(t testing.TB) (state, conn Object) {
	t.Helper()
	g := eval(t, fmt.Sprintf("(exec(%q, globals()), globals())[1]", serveSetup))
	defer g.DecRef()
	for _, name := range []string{"state", "conn"} {
		k, _ := Str(name)
		o, err := g.Item(k)
		k.DecRef()
		if err != nil {
			t.Fatal(err)
		}
		if name == "state" {
			state = o
		} else {
			conn = o
		}
	}
	return state, conn
}

func ref(name string, class, instance int64) brine.Tuple {
	return brine.Tuple{int64(wire.LabelLocalRef), brine.Tuple{name, class, instance}}
}

func value(v any) brine.Tuple { return brine.Tuple{int64(wire.LabelValue), v} }

func request(handler wire.Handler, args ...any) brine.Tuple {
	return brine.Tuple{int64(wire.MsgRequest), int64(5), brine.Tuple{int64(handler), brine.Tuple{int64(wire.LabelTuple), brine.Tuple(args)}}}
}

var (
	thing  = ref("t", 1, 1)
	addFn  = ref("f", 1, 4)
	noArgs = value(brine.Tuple{})
)

var servedRequests = []struct {
	name string
	msg  brine.Tuple
	want string // repr of the reply or of the message for Python; "" not served
}{
	{"getattr", request(wire.HandleGetAttr, thing, value("value")), "(2, 5, (1, 7))"},
	{"getattr raises", request(wire.HandleGetAttr, thing, value("broken")), "(-2, 5, ValueError('broken property'))"},
	{"getattr missing", request(wire.HandleGetAttr, thing, value("nothing")),
		`(-2, 5, AttributeError("'Thing' object has no attribute 'nothing'"))`},
	{"call", request(wire.HandleCall, addFn, value(brine.Tuple{int64(1)}), noArgs), "(2, 5, (1, 1))"},
	{"call without kwargs", request(wire.HandleCall, addFn, value(brine.Tuple{int64(1), int64(2)})), "(2, 5, (1, 3))"},
	{"callattr with kwargs", request(wire.HandleCallAttr, thing, value("add"), value(brine.Tuple{int64(1)}),
		value(brine.Tuple{brine.Tuple{"b", int64(2)}, brine.Tuple{"c", int64(3)}})), "(2, 5, (1, 6))"},
	{"callattr raises", request(wire.HandleCallAttr, thing, value("add"), value(brine.Tuple{int64(1), "x"}), noArgs),
		`(-2, 5, TypeError("unsupported operand type(s) for +: 'int' and 'str'"))`},
	{"a result by reference", request(wire.HandleCallAttr, thing, value("items"), noArgs, noArgs), "(-1, 5, [1, 2])"},
	{"a type object in a tuple", request(wire.HandleCallAttr, thing, value("kind"), noArgs, noArgs), "(-1, 5, (<class 'int'>, 1))"},
	{"a class with _rpyc_getattr", request(wire.HandleGetAttr, ref("h", 1, 2), value("x")), ""},
	{"a class not looked at yet", request(wire.HandleGetAttr, ref("u", 1, 3), value("x")), ""},
	{"a bytes name", request(wire.HandleGetAttr, thing, value([]byte("value"))), ""},
	{"an rpyc-ng id_pack", request(wire.HandleGetAttr, brine.Tuple{int64(wire.LabelLocalRef), brine.Tuple{"t", int64(1), int64(1), int64(0)}}, value("value")), ""},
	{"an object not in the table", request(wire.HandleGetAttr, ref("t", 1, 9), value("value")), ""},
	{"a client's object among the arguments", request(wire.HandleCallAttr, thing, value("add"),
		brine.Tuple{int64(wire.LabelTuple), brine.Tuple{brine.Tuple{int64(wire.LabelRemoteRef), brine.Tuple{"c", int64(1), int64(1)}}}}, noArgs), ""},
	{"a keyword that is not a str", request(wire.HandleCallAttr, thing, value("add"), value(brine.Tuple{int64(1)}),
		value(brine.Tuple{brine.Tuple{int64(1), int64(2)}})), ""},
	{"args that are not a tuple", request(wire.HandleCall, addFn, value(int64(1)), noArgs), ""},
	{"too many arguments", request(wire.HandleGetAttr, thing, value("value"), value(int64(1))), ""},
	{"another handler", request(wire.HandleStr, thing), ""},
	{"a reply", brine.Tuple{int64(wire.MsgReply), int64(5), value(int64(1))}, ""},
}

// serve.c serves what Python's handlers would serve as they would, and leaves
// everything else to Python before running anything.
func TestServeRequestAnswersAsTheHandlers(t *testing.T) {
	state, _ := servingState(t)
	enc := &Encoder{}
	for _, tc := range servedRequests {
		msg, err := enc.Object(tc.msg)
		if err != nil {
			t.Fatal(err)
		}
		out, served, err := ServeRequest(state, msg)
		msg.DecRef()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if PyErrOccurred() {
			t.Fatalf("%s: a Python exception was left set", tc.name)
		}
		got := ""
		if served {
			got = repr(out)
			out.DecRef()
		}
		if got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

// The access policy is read from the connection's _config at each request.
func TestServeRequestFollowsTheConfig(t *testing.T) {
	state, conn := servingState(t)
	msg, _ := (&Encoder{}).Object(request(wire.HandleGetAttr, thing, value("value")))
	defer msg.DecRef()
	config, err := conn.Attr("_config")
	if err != nil {
		t.Fatal(err)
	}
	defer config.DecRef()
	for _, key := range []string{"allow_getattr", "allow_all_attrs", "allow_exposed_attrs"} {
		k, _ := Str(key)
		old, _ := config.Item(k)
		flipped, _ := (&Encoder{}).Object(!old.IsNone() && repr(old) == "False")
		if err := config.SetItem(k, flipped); err != nil {
			t.Fatal(err)
		}
		if out, served, _ := ServeRequest(state, msg); served {
			t.Errorf("%s flipped: served, %s", key, repr(out))
			out.DecRef()
		}
		config.SetItem(k, old)
		old.DecRef()
		flipped.DecRef()
		k.DecRef()
	}
	out, served, _ := ServeRequest(state, msg)
	if !served || repr(out) != "(2, 5, (1, 7))" {
		t.Fatalf("restored: served %v", served)
	}
	out.DecRef()
}

// Whatever a client sends, serving it in C leaves no exception set, and a message
// served is a reply or a message for Python.
func FuzzServeRequest(f *testing.F) {
	for _, l := range channelLayouts {
		for _, tc := range servedRequests {
			m := wire.Message{Type: wire.MsgType(tc.msg[0].(int64)), Seq: tc.msg[1].(int64), Body: tc.msg[2]}
			payload, err := l.d.AppendMessage(nil, m)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(payload)
		}
	}
	start(f)
	var state Object
	f.Fuzz(func(t *testing.T, payload []byte) {
		Enter()
		defer Leave()
		if state.IsNil() {
			state, _ = serveState(t) // kept for the process's life
		}
		for _, l := range channelLayouts {
			msg, ok := ChannelMessage(l.layout, payload, brine.DefaultLimits)
			if !ok {
				continue
			}
			out, served, err := ServeRequest(state, msg)
			msg.DecRef()
			if err != nil {
				t.Fatal(err)
			}
			if PyErrOccurred() {
				t.Fatal("a Python exception was left set")
			}
			if served {
				if s := repr(out); len(s) < 4 || !(s[:3] == "(2," || s[:4] == "(-1," || s[:4] == "(-2,") {
					t.Fatalf("served as %s", s)
				}
				out.DecRef()
			}
		}
	})
}
