"""The Python halves of the four fixes, each on its own: ids from type(obj), method
enumeration that evaluates nothing, the proxy cache without a window, stdio fds."""
import dataclasses
import enum
import gc
import sys
import threading

import pytest

from peerkit import REPO, FakePeer, read_frame, ref, spawn_stdio_worker, value, write_frame
from pybridge import consts
from pybridge.idpack import get_id_pack
from pybridge.inspect_methods import get_methods


class RaisingClass:
    @property
    def __class__(self):
        raise RuntimeError("no class for you")

    def hello(self):
        return "hi"


class InterceptingClass:
    def __getattribute__(self, name):
        if name == "__class__":
            raise AttributeError(name)
        return object.__getattribute__(self, name)

    def hello(self):
        return "hi"


class LyingClass:
    __class__ = int

    def hello(self):
        return "hi"


@pytest.mark.parametrize("cls", [RaisingClass, InterceptingClass, LyingClass])
def test_id_pack_comes_from_type(cls):
    obj = cls()
    assert get_id_pack(obj) == (f"{__name__}.{cls.__name__}", id(cls), id(obj))
    assert get_id_pack(cls) == (f"{__name__}.{cls.__name__}", id(cls), 0)


def test_a_class_without_module_is_named_by_its_name():
    # type() where the globals have no __name__ (exec(src, {})) sets no __module__, and
    # the class's __module__ raises AttributeError: named as repr() names it
    ns = {}
    exec("C = type('C', (), {})", ns)
    cls = ns["C"]
    obj = cls()
    assert get_id_pack(obj) == ("C", id(cls), id(obj))
    assert get_id_pack(cls) == ("C", id(cls), 0)


@pytest.mark.parametrize("cls", [RaisingClass, InterceptingClass, LyingClass])
def test_hidden_class_is_served(cls):
    peer = FakePeer()
    peer.conn.objects.add(cls)
    kind, body = peer.request(consts.HANDLE_CALL, ref(get_id_pack(cls)), value(()), value(()))
    assert kind == consts.MSG_REPLY and body[0] == consts.LABEL_REMOTE_REF
    obj_pack = tuple(body[1])
    assert obj_pack[0].endswith(cls.__name__)
    kind, body = peer.request(consts.HANDLE_CALLATTR, ref(obj_pack), value("hello"), value(()), value(()))
    assert (kind, body) == (consts.MSG_REPLY, value("hi"))
    kind, body = peer.request(consts.HANDLE_INSPECT, value(obj_pack))
    assert kind == consts.MSG_REPLY and "hello" in dict(body[1])


def test_rpyc_naming_matches_for_ordinary_objects():
    rpyc_lib = pytest.importorskip("rpyc.lib", reason="rpyc is not installed in this venv")
    import math
    for obj in [[1], {}, math, math.sqrt, len, type, int, dataclasses, object(), enum.Enum]:
        assert get_id_pack(obj) == rpyc_lib.get_id_pack(obj), obj


@dataclasses.dataclass
class Point:
    x: int
    y: int = 0

    def norm(self):
        return self.x


class Color(enum.Enum):
    RED = 1

    def describe(self):
        return self.name


class Hostile:
    def __getattr__(self, name):
        raise RuntimeError(f"touched {name}")

    @property
    def boom(self):
        raise RuntimeError("property evaluated")

    def ok(self):
        """fine"""


class Meta(type):
    def meta_method(cls):
        return 1


class WithMeta(metaclass=Meta):
    def own(self):
        return 2


def test_inspect_never_evaluates_attributes():
    methods = dict(get_methods(Hostile()))
    assert "ok" in methods and methods["ok"] == "fine" and "boom" not in methods
    assert "norm" in dict(get_methods(Point(1)))
    assert "describe" in dict(get_methods(Color.RED))
    cls_methods = dict(get_methods(WithMeta))
    assert "meta_method" in cls_methods and "own" in cls_methods


def test_inspect_matches_rpyc_for_ordinary_objects():
    rpyc_lib = pytest.importorskip("rpyc.lib", reason="rpyc is not installed in this venv")
    import rpyc
    from rpyc.core.netref import LOCAL_ATTRS
    import sys
    objects = [[1], {}, Point(1), WithMeta(), 3, WithMeta]
    if sys.version_info >= (3, 10):
        objects.append("s")  # 3.9's inspect.isroutine does not count str's raw staticmethod
    if not rpyc.__version__.startswith("5"):
        objects.append(Color.RED)  # rpyc 5.3.1 evaluates enum attributes; 6.x reads __dict__s as we do
    for obj in objects:
        # the names build the proxy class; docstrings of staticmethods differ between rpyc
        # versions themselves
        assert set(dict(get_methods(obj))) == set(dict(rpyc_lib.get_methods(LOCAL_ATTRS, obj))), obj


def test_inspect_pydantic_models():
    pydantic = pytest.importorskip("pydantic")
    ns = {}
    exec("from pydantic import BaseModel\n"
         "class Item(BaseModel):\n"
         "    name: str\n"
         "    def label(self):\n"
         "        return self.name\n"
         "class Forward(BaseModel):\n"
         "    other: 'NotYetDefined'\n", ns)
    item = ns["Item"](name="tea")
    assert "label" in dict(get_methods(item))
    assert "label" in dict(get_methods(ns["Item"]))
    methods = dict(get_methods(ns["Forward"]))  # unresolved forward ref: must not raise
    if pydantic.VERSION.startswith("2"):
        with pytest.raises(Exception):
            ns["Forward"].__pydantic_validator__.validate_python({})
        assert "model_dump" in methods
    else:
        assert "dict" in methods


def test_proxy_cache_gc_churn_balances_dels():
    """Many threads receive the same peer object again and again while GC runs; every
    reception is counted exactly once in the DELs sent when the proxies die."""
    peer = FakePeer()
    conn = peer.conn
    id_pack = ("builtins.function", 1, 2)
    receptions_per_thread, threads = 3000, 4
    stop = threading.Event()

    def collector():
        while not stop.is_set():
            gc.collect(0)

    def receiver():
        for _ in range(receptions_per_thread):
            proxy = conn.proxy_for(id_pack)
            assert type(proxy).__name__ == "function"
            del proxy

    # frequent thread switches: more interleavings, and no thread waits out a 5 ms
    # switch interval for a lock another one holds
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    g = threading.Thread(target=collector)
    g.start()
    ts = [threading.Thread(target=receiver) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    stop.set()
    g.join()
    sys.setswitchinterval(interval)
    gc.collect()
    conn._flush_dels()
    released = 0
    while not peer.sent.empty():
        kind, seq, body = peer.sent.get()
        if kind == consts.MSG_REQUEST and body[0] == consts.HANDLE_DEL:
            (_, (ref_box, count_box)) = body[1]
            assert tuple(ref_box[1]) == id_pack
            released += count_box[1]
    assert released == receptions_per_thread * threads


def test_proxy_in_use_is_never_released():
    """The peer may drop an object only once no proxy of it is in use. Thread A drops the
    last reference to a proxy; whatever Python code runs for that death (a __del__, a
    weakref callback) is paused, and meanwhile thread B receives the same object. B's
    proxy must stay counted: a proxy revived from the middle of its death would be
    released with it while B still holds it."""
    peer = FakePeer()
    conn = peer.conn
    id_pack = ("builtins.function", 1, 3)
    released = []
    real_send = peer.transport.send

    def send(kind, seq, body):
        if kind == consts.MSG_REQUEST and body[0] == consts.HANDLE_DEL:
            released.append(body[1][1][1][1])
        real_send(kind, seq, body)

    peer.transport.send = send
    dying, received = threading.Event(), threading.Event()
    held = []

    def pause_in_death(frame, event, arg):
        if event == "call" and frame.f_code.co_filename.startswith(str(REPO / "python")):
            dying.set()
            received.wait(5)
        return None

    def a():
        proxy = conn.proxy_for(id_pack)
        sys.settrace(pause_in_death)
        try:
            del proxy
        finally:
            sys.settrace(None)
            dying.set()

    def b():
        dying.wait(5)
        held.append(conn.proxy_for(id_pack))
        received.set()

    tb = threading.Thread(target=b)
    tb.start()
    a()
    tb.join()
    conn._flush_dels()
    assert sum(released) == 1, "the reception B holds was released with A's"
    held.clear()
    gc.collect()
    conn._flush_dels()
    assert sum(released) == 2


HOSTED_NOISE = ("print('print from hosted code')\n"
                "import os\n"
                "os.system('echo from a child process')\n"
                "os.write(1, b'raw bytes on fd 1')\n")


def test_stdio_worker_keeps_the_stream_intact():
    proc = spawn_stdio_worker()
    try:
        kind, _, _, hello = read_frame(proc.stdout)
        assert kind == consts.KIND_HELLO and hello["protocol"] == 2
        write_frame(proc.stdin, consts.KIND_OPEN, 1, 0, {"mode": "classic"})
        write_frame(proc.stdin, consts.MSG_REQUEST, 1, 1, (consts.HANDLE_GETROOT, value(())))
        kind, conn, seq, body = read_frame(proc.stdout)
        assert (kind, seq) == (consts.MSG_REPLY, 1) and body[0] == consts.LABEL_REMOTE_REF
        root = tuple(body[1])
        write_frame(proc.stdin, consts.MSG_REQUEST, 1, 2, (consts.HANDLE_CALLATTR, (consts.LABEL_TUPLE, (
            ref(root), value("execute"), value((HOSTED_NOISE,)), value(())))))
        kind, conn, seq, body = read_frame(proc.stdout)
        assert (kind, seq) == (consts.MSG_REPLY, 2), body
        write_frame(proc.stdin, consts.MSG_REQUEST, 1, 3, (consts.HANDLE_CALLATTR, (consts.LABEL_TUPLE, (
            ref(root), value("eval"), value(("6 * 7",)), value(())))))
        assert read_frame(proc.stdout)[2:] == (3, value(42))
        proc.stdin.close()  # the client hangs up: the worker ends its connection and exits
        assert proc.wait(20) == 0
        err = proc.stderr.read()
        assert b"raw bytes on fd 1" in err and b"from a child process" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
