"""Proxies for the peer's objects (the client's callbacks, its service, its lists…).

A proxy class is built from the peer's INSPECT answer (name, doc pairs), or taken from
prebuilt classes for builtin types whose methods are known here. The connection counts
how many times each id_pack was received and, when the proxy is collected, sends
DEL(count) (Connection.proxy_for). Proxies have no __del__: nothing of a dying proxy runs
before CPython clears its weakref, so it can never be handed out again.
"""
import pickle
import types

from . import consts
from .inspect_methods import LOCAL_ATTRS, instance_methods

_getattribute = object.__getattribute__
_setattr = object.__setattr__


def _conn(proxy):
    return _getattribute(proxy, "____conn__")


def syncreq(proxy, handler, *args):
    return _conn(proxy).sync_request(handler, proxy, *args)


class BaseNetref:
    __slots__ = ("____conn__", "____id_pack__", "__weakref__")

    def __init__(self, conn, id_pack):
        _setattr(self, "____conn__", conn)
        _setattr(self, "____id_pack__", id_pack)

    def __getattribute__(self, name):
        if name in LOCAL_ATTRS:
            if name == "__class__":
                return _getattribute(self, "__class__")
            if name == "__doc__":
                return syncreq(self, consts.HANDLE_GETATTR, "__doc__")
            if name in ("__array_struct__", "__array_interface__"):
                raise AttributeError(name)
            return _getattribute(self, name)
        if name == "__call__":
            return _getattribute(self, "__call__")
        return syncreq(self, consts.HANDLE_GETATTR, name)

    def __getattr__(self, name):
        return syncreq(self, consts.HANDLE_GETATTR, name)

    def __delattr__(self, name):
        if name in LOCAL_ATTRS:
            object.__delattr__(self, name)
        else:
            syncreq(self, consts.HANDLE_DELATTR, name)

    def __setattr__(self, name, value):
        if name in LOCAL_ATTRS:
            _setattr(self, name, value)
        else:
            syncreq(self, consts.HANDLE_SETATTR, name, value)

    def __dir__(self):
        return list(syncreq(self, consts.HANDLE_DIR))

    def __hash__(self):
        return syncreq(self, consts.HANDLE_HASH)

    def __eq__(self, other):
        return syncreq(self, consts.HANDLE_CMP, other, "__eq__")

    def __ne__(self, other):
        return syncreq(self, consts.HANDLE_CMP, other, "__ne__")

    def __lt__(self, other):
        return syncreq(self, consts.HANDLE_CMP, other, "__lt__")

    def __gt__(self, other):
        return syncreq(self, consts.HANDLE_CMP, other, "__gt__")

    def __le__(self, other):
        return syncreq(self, consts.HANDLE_CMP, other, "__le__")

    def __ge__(self, other):
        return syncreq(self, consts.HANDLE_CMP, other, "__ge__")

    def __repr__(self):
        return syncreq(self, consts.HANDLE_REPR)

    def __str__(self):
        return syncreq(self, consts.HANDLE_STR)

    def __exit__(self, exc, typ, tb):
        return _conn(self).ctxexit_request(self, exc, typ, tb)

    def __reduce_ex__(self, proto):
        return pickle.loads, (syncreq(self, consts.HANDLE_PICKLE, proto),)


def _make_method(name, doc):
    if name == "__call__":
        def __call__(_self, *args, **kwargs):
            return syncreq(_self, consts.HANDLE_CALL, args, tuple(kwargs.items()))
        __call__.__doc__ = doc
        return __call__

    def method(_self, *args, **kwargs):
        return syncreq(_self, consts.HANDLE_CALLATTR, name, args, tuple(kwargs.items()))
    method.__name__ = name
    method.__doc__ = doc
    return method


def class_factory(id_pack, methods):
    """A proxy class for the peer class named by id_pack with these (name, doc) methods."""
    name_pack = id_pack[0]
    module, _, clsname = name_pack.rpartition(".")
    ns = {"__slots__": (), "__module__": module or None}
    for mname, doc in methods:
        mname = str(mname)
        if mname not in LOCAL_ATTRS:
            ns[mname] = _make_method(mname, doc)
    return type(clsname or name_pack, (BaseNetref,), ns)


_builtin_types = [
    type, object, bool, complex, dict, float, int, list, slice, str, tuple, set, frozenset,
    BaseException, Exception, type(None), types.BuiltinFunctionType, types.GeneratorType,
    types.MethodType, types.CodeType, types.FrameType, types.TracebackType, types.ModuleType,
    types.FunctionType, types.MappingProxyType, type(int.__add__), type((1).__add__),
    type(iter([])), type(iter(())), type(iter(set())), bytes, bytearray, type(iter(range(10))),
    memoryview,
]

# name_pack -> proxy class for instances of builtin types: no INSPECT round trip, as rpyc
builtin_classes = {}
for _t in _builtin_types:
    _name_pack = f"{_t.__module__}.{_t.__name__}"
    builtin_classes[_name_pack] = class_factory((_name_pack, 0, 0), instance_methods(_t))
