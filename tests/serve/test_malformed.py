"""Hostile and broken input, one connection at a time: each gets a clear error or a
closed connection, and neither an already open client nor a new one notices."""
import socket
import struct
import zlib

import pytest
import rpyc
from rpyc.core import brine

REQ, REPLY, EXC = 1, 2, 3


def frame(payload, compressed=0, newline=b"\n"):
    return struct.pack(">IB", len(payload), compressed) + payload + newline


def msg6(typ, seq, body):
    return bytes([typ]) + brine.dump((seq, body))


def msg5(typ, seq, body):
    return brine.dump((typ, seq, body))


def req6(seq, handler, *boxed):
    return frame(msg6(REQ, seq, (handler, (2, boxed))))


def bomb(inflated):
    z = zlib.compressobj(9)
    chunk = b"\0" * (1 << 20)
    return b"".join([z.compress(chunk) for _ in range(inflated >> 20)] + [z.flush()])


def deep(n):
    return b"\x10" * n + b"\x00"  # n nested 1-tuples around None, as raw brine


CASES = {
    "text": b"hello world\n",
    "http": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "tls hello": bytes.fromhex("16030100a5010000a10303") + b"\0" * 160,
    "empty frame": frame(b""),
    "truncated header": b"\x00\x00\x01",
    "huge length": struct.pack(">IB", 0xFFFFFFFF, 0) + b"x",
    "bad compressed flag": frame(b"\x02\x11\x51\x00", compressed=2),
    "no trailing newline": frame(msg6(REQ, 1, (1, (1, (b"x",)))), newline=b"X"),
    "not zlib": frame(b"definitely not zlib", compressed=1),
    "truncated zlib": frame(zlib.compress(b"x" * 10000)[:20], compressed=1),
    "unknown brine tag": frame(b"\x01\x11\x51\x07"),
    "lying tuple count": frame(b"\x01\x11\x51\x15\x7f\xff\xff\xff"),
    "str without bytes": frame(b"\x01\x11\x51\x08\x00"),
    "bad utf-8": frame(b"\x01\x11\x51\x08\x0a\xff"),
    "trailing bytes": frame(msg6(REQ, 1, None) + b"\x00\x00"),
    "message type 0": frame(msg6(0, 1, None)),
    "message type 9": frame(b"\x09" + brine.dump((1, None))),
    "seq not an int": frame(msg6(REQ, "one", None)),
    "5.x pair": frame(brine.dump((1, 2))),
    "5.x type not int": frame(msg5("x", 1, None)),
    "request body None": frame(msg6(REQ, 1, None)),
    "unknown handler": req6(1, 99),
    "handler is a str": frame(msg6(REQ, 1, ("getattr", (2, ())))),
    "bogus object": req6(1, 4, (3, ("builtins.module", 1, 2)), (1, "pi")),
    "bogus DEL": req6(1, 15, (3, ("x", 1, 2)), (1, 10 ** 9)),
    "unknown box label": frame(msg6(REQ, 1, (4, (9, ())))),
    "id_pack not a tuple": req6(1, 4, (3, "nope"), (1, "pi")),
    "reply to nothing": frame(msg6(REPLY, 12345, (1, None))),
    "malformed exception": frame(msg6(EXC, 12345, (1, 2))),
    "int of 10000 digits": frame(b"\x01\x11\x51\x17" + struct.pack(">I", 10000) + b"9" * 10000),
    "nested too deep": frame(b"\x01\x11\x51" + deep(300)),
    "kwargs not pairs": req6(1, 7, (3, ("builtins.function", 1, 2)), (1, ()), (1, (1, 2, 3))),
    "attribute name not a str": req6(1, 8, (3, ("builtins.module", 1, 2)), (1, 42), (1, ()), (1, ())),
    "bind_threads prefix": frame(b"\x00" * 16 + msg6(REQ, 1, (1, (1, (b"x",))))),
    "half a frame, then gone": frame(msg6(REQ, 1, (1, (1, (b"x" * 100,)))))[:40],
    "zlib bomb": frame(bomb(600 << 20), compressed=1),
}


@pytest.fixture(scope="module")
def bystander(classic_server):
    c = rpyc.classic.connect("127.0.0.1", classic_server.port)
    yield c
    c.close()


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_harms_no_one_else(classic_server, bystander, name):
    s = socket.create_connection(("127.0.0.1", classic_server.port))
    try:
        s.sendall(CASES[name])
        s.settimeout(1.0)
        try:
            s.recv(1 << 16)  # an exception reply, EOF, or nothing: all fine
        except (socket.timeout, ConnectionResetError):
            pass
    finally:
        s.close()
    assert bystander.eval("6 * 7") == 42
    fresh = rpyc.classic.connect("127.0.0.1", classic_server.port)
    assert fresh.eval("2 ** 10") == 1024
    fresh.close()


def test_there_are_at_least_30_kinds():
    assert len(CASES) >= 30
