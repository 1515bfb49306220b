"""Checks the Go worker codec against the real msgpack-python, both ways.

Reads a JSON list on stdin: [{"name", "py" (a Python expression), "go" (hex of Go's
encoding), "ordered" (false when the value holds a dict of several keys, whose Go
encoding order is random)}]. For each vector it packs the evaluated expression as the
worker protocol says (docs/worker-protocol.md), compares the bytes with Go's, decodes
Go's bytes and compares the value, type for type. Prints a JSON object
{name: {"py": hex, "errors": [...]}} on stdout.
"""
import json
import struct
import sys

import msgpack


def conv(v):
    """A value in the form msgpack.packb turns into the protocol's bytes."""
    t = type(v)
    if v is None or t in (bool, float, str, bytes):
        return v
    if t is int:
        if -(2**63) <= v < 2**64:
            return v
        return msgpack.ExtType(1, str(v).encode("ascii"))
    if t is tuple:
        return tuple(conv(x) for x in v)
    if t is list:
        return msgpack.ExtType(7, pack(tuple(v)))
    if t is dict:
        return {conv(k): conv(x) for k, x in v.items()}
    if t is complex:
        return msgpack.ExtType(2, struct.pack(">dd", v.real, v.imag))
    if t is frozenset:
        return msgpack.ExtType(3, pack(tuple(v)))
    if t is slice:
        return msgpack.ExtType(4, pack((v.start, v.stop, v.step)))
    if v is Ellipsis:
        return msgpack.ExtType(5, b"")
    if v is NotImplemented:
        return msgpack.ExtType(6, b"")
    if t is type:
        return msgpack.ExtType(8, v.__name__.encode("ascii"))
    raise TypeError(t)


TYPES = {t.__name__: t for t in (type(None), int, bool, float, bytes, str, complex, type(NotImplemented), type(Ellipsis))}


def pack(v):
    return msgpack.packb(conv(v), use_bin_type=True)


def ext_hook(code, data):
    if code == 1:
        return int(data.decode("ascii"))
    if code == 2:
        return complex(*struct.unpack(">dd", data))
    if code == 3:
        return frozenset(unpack(data))
    if code == 4:
        return slice(*unpack(data))
    if code == 5:
        return Ellipsis
    if code == 6:
        return NotImplemented
    if code == 7:
        return list(unpack(data))
    if code == 8:
        return TYPES[data.decode("ascii")]
    raise ValueError("unknown ext %d" % code)


def unpack(b):
    return msgpack.unpackb(b, raw=False, use_list=False, ext_hook=ext_hook, strict_map_key=False)


def same(a, b):
    """Equal and of the same types all the way down (1 == True == 1.0 in Python)."""
    if type(a) is not type(b):
        return False
    if type(a) in (tuple, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if type(a) is slice:
        return same((a.start, a.stop, a.step), (b.start, b.stop, b.step))
    if type(a) is float and a != a:
        return b != b
    if type(a) is float:
        return struct.pack(">d", a) == struct.pack(">d", b)
    return a == b


def main():
    out = {}
    for vec in json.load(sys.stdin):
        errors = []
        if vec.get("frame"):
            kind, conn, seq, body = eval(vec["py"])
            raw = msgpack.packb((kind, conn, seq, conv(body)), use_bin_type=True)
            mine = struct.pack(">I", len(raw)) + raw
            value = (kind, conn, seq, body)
            go = bytes.fromhex(vec["go"])
            got = unpack(go[4:]) if len(go) >= 4 else None
            if got is not None and struct.unpack(">I", go[:4])[0] != len(go) - 4:
                errors.append("bad length prefix")
        else:
            value = eval(vec["py"])
            mine = pack(value)
            go = bytes.fromhex(vec["go"])
            got = unpack(go)
        if vec.get("ordered", True) and mine != go:
            errors.append("bytes differ: python %s, go %s" % (mine.hex(), go.hex()))
        if not same(got, value):
            errors.append("go's bytes decode to %r, want %r" % (got, value))
        out[vec["name"]] = {"py": mine.hex(), "errors": errors}
    json.dump(out, sys.stdout)


main()
