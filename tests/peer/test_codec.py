"""The worker codec agrees with Go's (pyhost/internal/workerproto/testdata/golden.json, made with msgpack-python),
and the built-in codec writes the same bytes as the msgpack extension."""
import json
import math
import random

import pytest

from peerkit import REPO
from pybridge import codec, msgpack_builtin

GOLDEN = json.loads((REPO / "pyhost" / "internal" / "workerproto" / "testdata" / "golden.json").read_text())


def builtin_decode(data):
    return msgpack_builtin.unpackb(data, codec.decode_ext)


def has_list(v):
    if isinstance(v, (list, set)):
        return True
    if isinstance(v, (tuple, frozenset)):
        return any(has_list(x) for x in v)
    if isinstance(v, dict):
        return any(has_list(x) for x in v.values()) or any(has_list(k) for k in v)
    return False


@pytest.mark.parametrize("vec", GOLDEN, ids=[v["name"] for v in GOLDEN])
def test_golden(vec):
    v = eval(vec["py"], {"inf": math.inf, "nan": math.nan})
    want = bytes.fromhex(vec["hex"])
    if vec["frame"]:
        got = codec.encode_frame(*v)
        assert got[4:] == want or got == want
        assert codec.decode_payload(got[4:]) == v
        return
    wire_form = codec.by_value(v) if has_list(v) or isinstance(v, dict) else v
    for pack in (codec.packb, msgpack_builtin.packb):
        if vec["ordered"]:
            assert pack(wire_form) == want, pack
    for unpack in (codec.unpackb, builtin_decode):
        got = unpack(want)
        if isinstance(v, float) and math.isnan(v):
            assert math.isnan(got)
        else:
            assert got == v and type(got) is type(v)


def random_value(rng, depth=0):
    kinds = ["none", "bool", "int", "float", "str", "bytes", "complex", "ellipsis"]
    if depth < 3:
        kinds += ["tuple", "frozenset", "slice"]
    k = rng.choice(kinds)
    if k == "none":
        return None
    if k == "bool":
        return rng.random() < 0.5
    if k == "int":
        bits = rng.choice([3, 7, 8, 15, 16, 31, 32, 63, 64, 65, 200])
        return rng.randrange(-(1 << bits), 1 << bits)
    if k == "float":
        return rng.choice([0.0, -0.0, 1.5, rng.random() * 1e300, -rng.random(), math.inf])
    if k == "str":
        return "".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(0x80, 0x7ff), 0x1F600])) for _ in range(rng.choice([0, 1, 31, 32, 300])))
    if k == "bytes":
        return bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 255, 256, 70000])))
    if k == "complex":
        return complex(rng.random(), -rng.random())
    if k == "ellipsis":
        return rng.choice([Ellipsis, NotImplemented])
    if k == "tuple":
        return tuple(random_value(rng, depth + 1) for _ in range(rng.choice([0, 1, 15, 16, 20])))
    if k == "frozenset":
        return frozenset(rng.randrange(100) for _ in range(rng.randrange(5)))
    return slice(rng.randrange(10), None, rng.choice([None, 2]))


def test_builtin_codec_matches_the_extension():
    msgpack = pytest.importorskip("msgpack", reason="the msgpack extension is not installed in this venv")
    assert msgpack  # the comparison below needs it
    from pybridge import codec as active
    rng = random.Random(1234)
    for _ in range(400):
        v = random_value(rng)
        ext_bytes = msgpack.packb(v, use_bin_type=True, default=active._default) if active.NAME == "msgpack" else None
        built = msgpack_builtin.packb(v)
        if ext_bytes is not None:
            assert built == ext_bytes, v
        assert builtin_decode(built) == v or v != v
