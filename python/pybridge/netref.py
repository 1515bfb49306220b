"""Proxies for the peer's objects (the client's callbacks, its service, its lists…).

A proxy class is built from the peer's INSPECT answer (name, doc pairs), or taken from
prebuilt classes for builtin types whose methods are known here. The connection counts
how many times each id_pack was received and, when the proxy is collected, sends
DEL(count) (Connection.proxy_for). Proxies have no __del__: nothing of a dying proxy runs
before CPython clears its weakref, so it can never be handed out again.

As with rpyc's netrefs, a proxy's __class__ is the class of this interpreter its peer class
is named like (a builtin type, or a class of a module already imported here), so hosted
code's isinstance(arg, dict) holds for the client's dicts; when nothing here has that name,
__class__ is asked of the peer. A proxy of a class can be the second argument of
isinstance().
"""
import pickle
import sys
import types

from . import consts, rpyc_compat
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

    def __instancecheck__(self, other):
        """isinstance(other, proxy of a peer class)."""
        own = _getattribute(self, "____id_pack__")
        if own[2] != 0:
            raise TypeError("isinstance() arg 2 must be a type, a tuple of types, or a union")
        if issubclass(type(other), BaseNetref):
            theirs = _getattribute(other, "____id_pack__")
            if theirs[1] == own[1] and _getattribute(other, "____conn__") is _conn(self):
                return theirs[2] != 0  # an instance of this very class, or the class itself
            return syncreq(self, consts.HANDLE_INSTANCECHECK, theirs)
        local = local_class(type(self))
        return local is not None and isinstance(other, local)


class _ClassOf:
    """A proxy class's __class__: for an instance proxy the local class named like the
    peer's, for a class proxy that class's metaclass; the peer's answer when no local
    class has that name."""
    __slots__ = ("local",)

    def __init__(self, local):
        self.local = local

    def __get__(self, proxy, owner=None):
        if proxy is None:
            return self
        if self.local is None:
            return syncreq(proxy, consts.HANDLE_GETATTR, "__class__")
        if _getattribute(proxy, "____id_pack__")[2] == 0:
            return type(self.local)
        return self.local


def local_class(proxy_class):
    """The local class a proxy class stands for, or None."""
    d = proxy_class.__dict__.get("__class__")
    return d.local if type(d) is _ClassOf else None


def resolve_name(name_pack):
    """The type of this interpreter a peer's name_pack ("module.Class", or a module's own
    name) names: a builtin type, a class found in a module already imported here (nothing
    is imported, nothing is run but a module's attribute lookup), the module type for a
    module; else None."""
    cls = _builtin_by_name.get(name_pack)
    if cls is not None:
        return cls
    module_name, rest = name_pack, ""
    while module_name:
        module = sys.modules.get(module_name)
        if module is not None:
            if not rest:
                return type(module)
            try:
                found = vars(module).get(rest)
            except TypeError:
                return None
            return found if isinstance(found, type) else None
        module_name, _, tail = module_name.rpartition(".")
        rest = f"{tail}.{rest}" if rest else tail
    return None


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
    ns = {"__slots__": (), "__module__": module or None, "__class__": _ClassOf(resolve_name(name_pack))}
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

_builtin_by_name = {f"{t.__module__}.{t.__name__}": t for t in _builtin_types}

# name_pack -> proxy class for instances of builtin types: no INSPECT round trip, as rpyc
builtin_classes = {}
for _name_pack, _t in _builtin_by_name.items():
    builtin_classes[_name_pack] = class_factory((_name_pack, 0, 0), instance_methods(_t))

# hosted code's isinstance(proxy, rpyc.BaseNetref) holds once rpyc is imported here
rpyc_compat.count_as_rpyc_netrefs(BaseNetref)
