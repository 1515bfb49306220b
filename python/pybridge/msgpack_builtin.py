"""A small msgpack codec in pure Python, for interpreters without the msgpack extension.

It writes exactly the bytes msgpack-python writes with use_bin_type=True (the smallest
integer form, float 64, str/bin, arrays for tuples and lists, maps for dicts) and reads
every msgpack format. Extension types are left to the caller's hook.
"""
import struct


class ExtType(tuple):
    __slots__ = ()

    def __new__(cls, code, data):
        return tuple.__new__(cls, (code, data))

    @property
    def code(self):
        return self[0]

    @property
    def data(self):
        return self[1]


_B = struct.Struct(">B").pack
_H = struct.Struct(">H").pack
_I = struct.Struct(">I").pack
_Q = struct.Struct(">Q").pack
_b = struct.Struct(">b").pack
_h = struct.Struct(">h").pack
_i = struct.Struct(">i").pack
_q = struct.Struct(">q").pack
_d = struct.Struct(">d").pack
_COMPLEX = struct.Struct(">dd").pack


# type objects rpyc-ng's brine carries by value (extension 8: the type's name)
_TYPE_OBJECTS = frozenset([type(None), int, bool, float, bytes, str, complex, type(NotImplemented), type(Ellipsis)])


def packb(obj):
    out = []
    _pack(obj, out.append)
    return b"".join(out)


def _pack_int(o, w):
    if 0 <= o < 128:
        w(_B(o))
    elif -32 <= o < 0:
        w(_b(o))
    elif o >= 0:
        if o <= 0xFF:
            w(b"\xcc" + _B(o))
        elif o <= 0xFFFF:
            w(b"\xcd" + _H(o))
        elif o <= 0xFFFFFFFF:
            w(b"\xce" + _I(o))
        elif o <= 0xFFFFFFFFFFFFFFFF:
            w(b"\xcf" + _Q(o))
        else:
            _pack_ext(1, str(o).encode("ascii"), w)
    elif o >= -0x80:
        w(b"\xd0" + _b(o))
    elif o >= -0x8000:
        w(b"\xd1" + _h(o))
    elif o >= -0x80000000:
        w(b"\xd2" + _i(o))
    elif o >= -0x8000000000000000:
        w(b"\xd3" + _q(o))
    else:
        _pack_ext(1, str(o).encode("ascii"), w)


def _pack_ext(code, data, w):
    n = len(data)
    fixed = {1: b"\xd4", 2: b"\xd5", 4: b"\xd6", 8: b"\xd7", 16: b"\xd8"}.get(n)
    if fixed:
        w(fixed + _b(code))
    elif n < 0x100:
        w(b"\xc7" + _B(n) + _b(code))
    elif n < 0x10000:
        w(b"\xc8" + _H(n) + _b(code))
    else:
        w(b"\xc9" + _I(n) + _b(code))
    w(data)


def _pack(o, w):
    t = type(o)
    if o is None:
        w(b"\xc0")
    elif t is bool:
        w(b"\xc3" if o else b"\xc2")
    elif t is int:
        _pack_int(o, w)
    elif t is float:
        w(b"\xcb" + _d(o))
    elif t is str:
        b = o.encode("utf-8")
        n = len(b)
        if n < 32:
            w(_B(0xA0 | n))
        elif n < 0x100:
            w(b"\xd9" + _B(n))
        elif n < 0x10000:
            w(b"\xda" + _H(n))
        else:
            w(b"\xdb" + _I(n))
        w(b)
    elif t is bytes or t is bytearray or t is memoryview:
        b = bytes(o)
        n = len(b)
        if n < 0x100:
            w(b"\xc4" + _B(n))
        elif n < 0x10000:
            w(b"\xc5" + _H(n))
        else:
            w(b"\xc6" + _I(n))
        w(b)
    elif t is ExtType or t.__name__ == "ExtType":  # ours, or msgpack's namedtuple
        _pack_ext(o[0], o[1], w)
    elif t is tuple or t is list:
        n = len(o)
        if n < 16:
            w(_B(0x90 | n))
        elif n < 0x10000:
            w(b"\xdc" + _H(n))
        else:
            w(b"\xdd" + _I(n))
        for x in o:
            _pack(x, w)
    elif t is dict:
        n = len(o)
        if n < 16:
            w(_B(0x80 | n))
        elif n < 0x10000:
            w(b"\xde" + _H(n))
        else:
            w(b"\xdf" + _I(n))
        for k, v in o.items():
            _pack(k, w)
            _pack(v, w)
    elif t is complex:
        _pack_ext(2, _COMPLEX(o.real, o.imag), w)
    elif t is frozenset:
        _pack_ext(3, packb(tuple(o)), w)
    elif t is slice:
        _pack_ext(4, packb((o.start, o.stop, o.step)), w)
    elif o is Ellipsis:
        _pack_ext(5, b"", w)
    elif o is NotImplemented:
        _pack_ext(6, b"", w)
    elif t is type and o in _TYPE_OBJECTS:
        _pack_ext(8, o.__name__.encode("ascii"), w)
    else:
        raise TypeError(f"cannot encode {t.__name__} for the worker protocol")


_UNPACK = {fmt: struct.Struct(fmt).unpack_from for fmt in (">B", ">H", ">I", ">Q", ">b", ">h", ">i", ">q", ">f", ">d")}


def unpackb(data, ext_hook):
    data = bytes(data)
    obj, pos = _unpack(data, 0, ext_hook)
    if pos != len(data):
        raise ValueError("extra data after msgpack value")
    return obj


def _n(data, pos, fmt, size):
    return _UNPACK[fmt](data, pos)[0], pos + size


def _unpack(d, pos, hook):
    c = d[pos]
    pos += 1
    if c <= 0x7F:
        return c, pos
    if c >= 0xE0:
        return c - 0x100, pos
    if 0x80 <= c <= 0x8F:
        return _map(d, pos, c & 0x0F, hook)
    if 0x90 <= c <= 0x9F:
        return _array(d, pos, c & 0x0F, hook)
    if 0xA0 <= c <= 0xBF:
        n = c & 0x1F
        return d[pos:pos + n].decode("utf-8"), pos + n
    if c == 0xC0:
        return None, pos
    if c == 0xC2:
        return False, pos
    if c == 0xC3:
        return True, pos
    if c in (0xC4, 0xC5, 0xC6):
        n, pos = _n(d, pos, (">B", ">H", ">I")[c - 0xC4], (1, 2, 4)[c - 0xC4])
        _need(d, pos, n)
        return d[pos:pos + n], pos + n
    if c in (0xC7, 0xC8, 0xC9):
        n, pos = _n(d, pos, (">B", ">H", ">I")[c - 0xC7], (1, 2, 4)[c - 0xC7])
        code, pos = _n(d, pos, ">b", 1)
        _need(d, pos, n)
        return hook(code, d[pos:pos + n]), pos + n
    if c == 0xCA:
        return _n(d, pos, ">f", 4)
    if c == 0xCB:
        return _n(d, pos, ">d", 8)
    if 0xCC <= c <= 0xCF:
        i = c - 0xCC
        return _n(d, pos, (">B", ">H", ">I", ">Q")[i], (1, 2, 4, 8)[i])
    if 0xD0 <= c <= 0xD3:
        i = c - 0xD0
        return _n(d, pos, (">b", ">h", ">i", ">q")[i], (1, 2, 4, 8)[i])
    if 0xD4 <= c <= 0xD8:
        n = (1, 2, 4, 8, 16)[c - 0xD4]
        code, pos = _n(d, pos, ">b", 1)
        _need(d, pos, n)
        return hook(code, d[pos:pos + n]), pos + n
    if c in (0xD9, 0xDA, 0xDB):
        n, pos = _n(d, pos, (">B", ">H", ">I")[c - 0xD9], (1, 2, 4)[c - 0xD9])
        _need(d, pos, n)
        return d[pos:pos + n].decode("utf-8"), pos + n
    if c in (0xDC, 0xDD):
        n, pos = _n(d, pos, (">H", ">I")[c - 0xDC], (2, 4)[c - 0xDC])
        return _array(d, pos, n, hook)
    if c in (0xDE, 0xDF):
        n, pos = _n(d, pos, (">H", ">I")[c - 0xDE], (2, 4)[c - 0xDE])
        return _map(d, pos, n, hook)
    raise ValueError(f"invalid msgpack byte 0x{c:02x}")


def _need(d, pos, n):
    if pos + n > len(d):
        raise ValueError("truncated msgpack data")


def _array(d, pos, n, hook):
    items = []
    for _ in range(n):
        x, pos = _unpack(d, pos, hook)
        items.append(x)
    return tuple(items), pos


def _map(d, pos, n, hook):
    out = {}
    for _ in range(n):
        k, pos = _unpack(d, pos, hook)
        v, pos = _unpack(d, pos, hook)
        out[k] = v
    return out, pos
