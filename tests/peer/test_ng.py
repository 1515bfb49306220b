"""The Python peer's rpyc-ng dialect (pybridge.ng), driven by hand: how a connection learns
whether its 6.x-framed peer is rpyc-ng, and what it then does differently. The real ng
client's view is tests/serve/test_rpycng.py."""
import threading

import pytest

from peerkit import FakePeer, ref, value
from pybridge import consts, ng, vinegar

REQ, REPLY = consts.MSG_REQUEST, consts.MSG_REPLY
ID3 = ("m.C", 1, 2)
ID4 = ("m.C", 1, 2, ng.INSTANCE)


@pytest.mark.parametrize("kind, body, want", [
    (REQ, (consts.HANDLE_GETROOT, value(())), None),
    (REQ, (consts.HANDLE_PING, value(("abc",))), None),
    (REQ, (consts.HANDLE_TYPE, value((ID4,))), True),
    (REQ, (consts.HANDLE_BOOL, (consts.LABEL_TUPLE, (ref(ID4),))), True),
    (REQ, (consts.HANDLE_GETATTR, (consts.LABEL_TUPLE, (ref(ID3), value("x")))), False),
    (REQ, (consts.HANDLE_GETATTR, (consts.LABEL_TUPLE, (ref(ID4), value("x")))), True),
    (REQ, (consts.HANDLE_INSPECT, value((ID3,))), False),
    (REQ, (consts.HANDLE_INSPECT, value((ID4,))), True),
    (REQ, (consts.HANDLE_DEL, value((ID4, 1))), True),
    (REQ, (consts.HANDLE_DEL, (consts.LABEL_TUPLE, (ref(ID3), value(1)))), False),
    (REPLY, (consts.LABEL_REMOTE_REF, ID3), False),
    (REPLY, (consts.LABEL_REMOTE_REF, ID4), True),
    (REPLY, value(ID4), None),
    (consts.MSG_EXCEPTION, 1, None),
])
def test_spot(kind, body, want):
    assert ng.spot(kind, body) is want


def test_unknown_peer_gets_four_items_until_it_shows_rpyc():
    peer = FakePeer()
    kind, body = peer.request(consts.HANDLE_GETROOT)
    assert kind == REPLY and body[0] == consts.LABEL_REMOTE_REF and len(body[1]) == 4  # every version reads it
    root = body[1][:3]  # what an rpyc 5.x/6.x client sends back
    kind, body = peer.request(consts.HANDLE_GETATTR, ref(root), value("namespace"))
    assert kind == REPLY and peer.conn.ng is False
    assert body[0] == consts.LABEL_REMOTE_REF and len(body[1]) == 3
    kind, body = peer.request(consts.HANDLE_GETATTR, ref(root), value("eval"))
    kind, body = peer.request(consts.HANDLE_CALL, ref(body[1]), value(("int",)), value(()))
    assert body == (consts.LABEL_REMOTE_REF, ("builtins.int", id(int), 0))  # by reference


def test_ng_peer_is_served_as_rpyc_ng_serves():
    peer = FakePeer()
    conn = peer.conn
    _, (_, root) = peer.request(consts.HANDLE_GETROOT)
    kind, body = peer.request(consts.HANDLE_TYPE, value(root))
    assert conn.ng is True
    cls = body[1]
    assert kind == REPLY and body[0] == consts.LABEL_REMOTE_REF
    assert cls[0] == "pybridge.classic.ClassicRoot" and cls[2] == 0 and cls[3] == ng.CLASS
    kind, body = peer.request(consts.HANDLE_INSPECT, value(cls))
    assert kind == REPLY and "eval" in dict(body[1])
    _, (_, ev) = peer.request(consts.HANDLE_GETATTR, ref(root), value("eval"))
    assert ev[3] == ng.INSTANCE

    def call(text):
        return peer.request(consts.HANDLE_CALL, ref(ev), value((text,)), value(()))

    assert call("(int, str, type(None))") == (REPLY, value((int, str, type(None))))
    _, (label, ellipsis_type) = call("type(...)")  # rpyc-ng cannot load its own tag for it
    assert label == consts.LABEL_REMOTE_REF
    _, (_, lst) = call("[]")
    assert peer.request(consts.HANDLE_BOOL, ref(lst)) == (REPLY, value(False))
    assert peer.request(consts.HANDLE_CMP, ref(lst), value(1), value("__cmp__")) == (REPLY, value(NotImplemented))
    _, (_, mod) = call("__import__('json')")
    assert mod[0] == "json" and mod[3] == ng.MODULE
    # DEL names the object by its plain id_pack
    held = len(conn.objects)
    assert peer.request(consts.HANDLE_DEL, value(lst), value(1)) == (REPLY, value(None))
    assert len(conn.objects) == held - 1
    # CTXEXIT carries a vinegar tuple; __exit__ gets the exception rebuilt
    _, (_, cm) = call("__import__('contextlib').suppress(KeyError)")
    try:
        raise KeyError("k")
    except KeyError as e:
        raw = vinegar.dump(KeyError, e, e.__traceback__)
    assert peer.request(consts.HANDLE_CTXEXIT, ref(cm), value(raw)) == (REPLY, value(True))
    kind, body = peer.request(consts.HANDLE_CTXEXIT, ref(cm), value(None))
    assert kind == REPLY and not body[1]


def answer(peer, replies):
    """Answers the connection's requests in order with replies (boxed); returns what it asked."""
    asked = []
    for reply in replies:
        kind, seq, body = peer.sent.get(timeout=10)
        assert kind == REQ
        asked.append(body)
        peer.transport.inbox.put((REPLY, seq, reply))
    return asked


def call_method(proxy, result):
    result.append(proxy.method(1, k=2))


def test_calls_into_an_ng_peer():
    peer = FakePeer(dialect="ng")
    conn = peer.conn
    fn = ("builtins.function", 7, 8, ng.INSTANCE)
    proxy = conn.proxy_for(fn)
    result = []
    t = threading.Thread(target=call_method, args=(proxy, result))
    t.start()
    attr = ("builtins.method", 9, 10, ng.INSTANCE)
    asked = answer(peer, [(consts.LABEL_REMOTE_REF, attr), value(42)])
    t.join(10)
    assert result == [42]
    assert asked[0] == (consts.HANDLE_GETATTR, (consts.LABEL_TUPLE, (ref(fn), value("method"))))
    assert asked[1][0] == consts.HANDLE_CALL  # no CALLATTR: rpyc-ng does not serve it
    del proxy
    conn._flush_dels()
    dels = []
    while not peer.sent.empty():
        kind, _, body = peer.sent.get()
        if body[0] == consts.HANDLE_DEL:
            dels.append(body[1])
    assert value((fn, 1)) in dels and value((attr, 1)) in dels
