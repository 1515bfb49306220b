"""Requests served in C. Where the client's frames are read in C (embedded isolation and
serving workers), GETATTR, CALL and CALLATTR on the server's objects with plain
arguments are served by the C channel without the Python peer's request path
(pyhost/internal/cpython/serve.c). These tests hold it to what rpyc's own server does
with the same requests, on the cases where it must hand over to Python: exceptions and
their tracebacks, results that go by reference or compressed, keyword arguments,
classes that override access, and an access policy hosted code changes while serving."""
import json
import os
import sys

import pytest
import rpyc

from servers import Server, free_port, pybridge_args, pybridge_server

HOSTED = '''
class Box:
    def __init__(self):
        self.items = [1, 2]

    @property
    def broken(self):
        raise ValueError("boom in a property")

    def add(self, a, b=0, *, c=0):
        return a + b + c

    def fails(self):
        raise KeyError("missing")

    def text(self):
        return "x" * 20000

    def stop(self):
        raise StopIteration

    def kinds(self):
        return (int, "x"), frozenset([1]), slice(1, 2)


class Guarded:
    def _rpyc_getattr(self, name):
        if name == "secret":
            raise AttributeError("no secret here")
        return "guarded " + name


box, guarded = Box(), Guarded()
'''


@pytest.fixture
def hosted(target):
    c = rpyc.classic.connect("127.0.0.1", target.port)
    c.execute(HOSTED)
    yield c
    c.close()


def test_attribute_gets_and_calls_answer_as_rpyc_does(hosted):
    box, guarded = hosted.namespace["box"], hosted.namespace["guarded"]
    for _ in range(3):  # the first time a class is looked at in Python, then in C
        with pytest.raises(ValueError, match="boom in a property") as ei:
            box.broken
        assert "in broken" in str(ei.value)  # the remote traceback
        with pytest.raises(KeyError, match="missing"):
            box.fails()
        with pytest.raises(StopIteration):
            box.stop()
        assert box.add(1) == 1
        assert box.add(1, 2) == 3
        assert box.add(1, b=2, c=3) == 6
        with pytest.raises(TypeError):
            box.add(1, d=4)
        items = box.items  # by reference
        assert list(items) == [1, 2]
        items.append(3)
        assert len(box.items) == 3
        items.pop()
        assert box.text() == "x" * 20000  # compressed on the wire
        # type objects go by reference to rpyc 5.x/6.x (by value only to rpyc-ng)
        (kind, x), numbers, part = box.kinds()
        assert kind.__name__ == "int" and kind("7") == 7 and x == "x"
        assert numbers == frozenset([1]) and part == slice(1, 2)
        assert hosted.builtins.int("5") == 5
        assert guarded.anything == "guarded anything"
        with pytest.raises(AttributeError, match="no secret here"):
            guarded.secret
        assert hosted.modules.math.pi == pytest.approx(3.141592653589793)


def test_a_call_with_a_client_callback_is_served(hosted):
    box = hosted.namespace["box"]
    seen = []

    def callback(x):
        seen.append(x)
        return x * 10

    apply = hosted.eval("lambda f, x: f(x)")
    for i in range(3):
        assert apply(callback, i) == i * 10
        assert box.add(1, c=apply(callback, 2)) == 21
    assert seen == [0, 2, 1, 2, 2, 2]


LOCKING_SERVICE = '''
import rpyc


class LockingService(rpyc.Service):
    secret = "s3cret"

    def on_connect(self, conn):
        self._conn = conn

    def lock(self):
        self._conn._config["allow_all_attrs"] = False

    def forbid_getattr(self):
        self._conn._config["allow_getattr"] = False
'''

STOCK_LOCKING = """
import json, sys
sys.path.insert(0, sys.argv[2])
from rpyc.utils.server import ThreadedServer
from locking_service import LockingService
ThreadedServer(LockingService, hostname="127.0.0.1", port=int(sys.argv[1]),
               protocol_config=json.loads(sys.argv[3])).start()
"""


@pytest.mark.parametrize("server", ["pybridge", "rpyc"])
@pytest.mark.parametrize("change", ["lock", "forbid_getattr"])
def test_an_access_policy_changed_by_hosted_code_applies_to_the_next_request(tmp_path, server, change):
    (tmp_path / "locking_service.py").write_text(LOCKING_SERVICE)
    port = free_port()
    cfg = json.dumps({"allow_all_attrs": True, "allow_exposed_attrs": False})
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    if server == "rpyc":
        srv = Server([sys.executable, "-c", STOCK_LOCKING, str(port), str(tmp_path), cfg], port)
    else:
        srv = Server(pybridge_args("--service", "locking_service:LockingService", "--port", str(port),
                                   "--protocol-config", cfg), port, env=env, cwd=str(tmp_path))
    try:
        c = rpyc.connect("127.0.0.1", port)
        for _ in range(3):
            assert c.root.secret == "s3cret"
        getattr(c.root, change)()
        for _ in range(3):
            with pytest.raises(AttributeError):
                c.root.secret
        c.close()
    finally:
        srv.stop()


COUNT_REQUESTS = '''
import pybridge.protocol as _protocol
handled_in_python = []  # the handler of each request Python's request path served
_serve_request = _protocol.Connection._serve_request


def _counted(self, seq, body, *args):
    handled_in_python.append(body[0])
    return _serve_request(self, seq, body, *args)


_protocol.Connection._serve_request = _counted


class Adder:
    def add(self, a, b=0):
        return a + b


adder = Adder()
'''


@pytest.mark.parametrize("where", [("--isolation", "embedded"), ("--isolation", "shared", "--worker", "embedded")],
                         ids=["embedded", "serving-worker"])
def test_plain_requests_are_served_without_the_python_request_path(where):
    # what makes embedded serving cheaper than rpyc's own server: attribute gets, calls
    # and method calls with plain values never reach Python's request handlers
    with pybridge_server("--classic", "--workers", "1", *where) as srv:
        c = rpyc.classic.connect("127.0.0.1", srv.port)
        c.execute(COUNT_REQUESTS)
        math, adder = c.modules.math, c.namespace["adder"]
        sqrt = math.sqrt
        for _ in range(3):  # the first time a class is looked at in Python, then in C
            assert math.pi == pytest.approx(3.141592653589793)
            assert sqrt(4.0) == 2.0
            assert adder.add(1, b=2) == 3
        handled = c.eval("handled_in_python")
        before = len(handled)
        for _ in range(100):
            assert math.pi == pytest.approx(3.141592653589793)
            assert sqrt(4.0) == 2.0
            assert adder.add(1, b=2) == 3
        served_in_python = list(handled[before:])
        getattr_call_callattr = (4, 7, 8)
        assert [h for h in served_in_python if h in getattr_call_callattr] == []
        c.close()
