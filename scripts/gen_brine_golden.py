"""Writes bridge/brine/testdata/golden.json: values dumped by the REAL rpyc brine.

    .venv/rpyc5/bin/python scripts/gen_brine_golden.py bridge/brine/testdata/golden.json
    .venv/rpycng/bin/python scripts/gen_brine_golden.py bridge/brine/testdata/golden_ng.json

Each vector holds the bytes rpyc produces and a tagged description of the value that the Go
test rebuilds, so Go's Dump and Load are checked against rpyc in both directions. Runs the
same under rpyc 5.x and 6.x (their brine is identical). Under rpyc-ng it adds the type
objects ng's brine has tags for; ng dumps NotImplementedType and ellipsis but cannot load
them (its loader registers them under the wrong keys), so those vectors say "ng_loads": false.
"""
import json
import struct
import sys

import rpyc
from rpyc.core import brine


NG_TYPES = [type(None), int, bool, float, bytes, str, complex, type(NotImplemented), type(Ellipsis)]
NG_UNLOADABLE = (type(NotImplemented), type(Ellipsis))
IS_NG = hasattr(brine, "TAG_INTTYPE")


def describe(v):
    if type(v) is type:
        return {"t": "type", "v": v.__name__}
    if v is None:
        return {"t": "none"}
    if v is Ellipsis:
        return {"t": "ellipsis"}
    if v is NotImplemented:
        return {"t": "notimplemented"}
    if isinstance(v, bool):
        return {"t": "bool", "v": v}
    if isinstance(v, int):
        return {"t": "int", "v": str(v)}
    if isinstance(v, float):
        return {"t": "float", "v": struct.pack("!d", v).hex()}
    if isinstance(v, complex):
        return {"t": "complex", "v": struct.pack("!dd", v.real, v.imag).hex()}
    if isinstance(v, str):
        return {"t": "str", "v": v}
    if isinstance(v, bytes):
        return {"t": "bytes", "v": v.hex()}
    if isinstance(v, tuple):
        return {"t": "tuple", "v": [describe(x) for x in v]}
    if isinstance(v, frozenset):
        return {"t": "frozenset", "v": [describe(x) for x in tuple(v)]}
    if isinstance(v, slice):
        return {"t": "slice", "v": [describe(v.start), describe(v.stop), describe(v.step)]}
    raise TypeError(type(v))


def values():
    yield from [None, True, False, Ellipsis, NotImplemented, (), b"", ""]
    for i in [0, 1, -1, -48, -49, 159, 160, 255, 256, 10**6, -10**6, 2**31, 2**63 - 1, 2**63,
              -2**63, -2**63 - 1, 2**64, 10**100, -10**100, 10**300]:
        yield i
    yield 10**300 * 10**10  # > 255 digits: 4-byte length
    for f in [0.0, -0.0, 1.5, -2.25, 1e308, 5e-324, float("inf"), float("-inf")]:
        yield f
    yield from [1 + 2j, -0.5j, complex(float("inf"), 0)]
    for n in [1, 2, 3, 4, 5, 255, 256]:
        yield b"\xab" * n
    yield from ["a", "héllo", "✓✓", "日本語テキスト", "x" * 300, "\x00nul"]
    for n in [1, 2, 3, 4, 5, 255, 256]:
        yield tuple(range(n))
    yield (1, (2, (3, (4, ("deep",)))), b"x", None)
    yield frozenset()
    yield frozenset([1])
    yield frozenset(["a", (1, 2)])
    yield slice(1, 10, 2)
    yield slice(None, -1, None)
    yield (1, "two", b"three", 4.0, 5j, None, True, slice(1, 2, 3), frozenset([5]), Ellipsis, NotImplemented)
    if IS_NG:
        yield from NG_TYPES
        yield (int, "x", (str, None), frozenset([bool]))


def loads(v):
    """Whether this brine can load what it dumped for v."""
    return not (type(v) is type and v in NG_UNLOADABLE)


def main(path):
    vectors = []
    for v in values():
        vec = {"hex": brine.dump(v).hex(), "value": describe(v)}
        if loads(v):
            assert brine.load(bytes.fromhex(vec["hex"])) == v or v != v
        else:
            vec["ng_loads"] = False
        vectors.append(vec)
    with open(path, "w") as f:
        json.dump({"rpyc": rpyc.__version__, "vectors": vectors}, f, indent=0)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
