"""id_packs: how a peer names an object it holds, spelled exactly as rpyc spells them.

Computed from type(obj), never obj.__class__: an object that hides, breaks or fakes
__class__ (a property that raises, a __getattribute__ that intercepts it, a mock) is named
by what it really is, and naming it never runs the object's own code. rpyc reads
obj.__class__ here and, when that raises, fails while replying and loses the connection.
"""
import sys
import types

_ModuleType = types.ModuleType


def _static(cls, name, default=None):
    """A class attribute looked up through the MRO's __dict__s, running no descriptor."""
    for base in type.__dict__["__mro__"].__get__(cls):
        d = type.__dict__["__dict__"].__get__(base)
        if name in d:
            return d[name]
    return default


def _type_name(cls):
    name = type.__dict__["__name__"].__get__(cls)
    try:
        module = type.__dict__["__module__"].__get__(cls)
    except AttributeError:  # made by type() where the globals had no __name__
        return name
    return f"{module}.{name}"


def get_id_pack(obj):
    """(name_pack, class id, instance id): ("module.Class", id(type(obj)), id(obj)) for an
    instance, ("module.Class", id(cls), 0) for a class, the module's name for a module."""
    cls = type(obj)
    if issubclass(cls, _ModuleType):
        name = obj.__dict__.get("__name__") if isinstance(getattr(obj, "__dict__", None), dict) else None
        if name is None or name in sys.modules:
            return (name or "module", id(cls), id(obj))
        return (f"{_type_name(cls)}.{name}", id(cls), id(obj))
    if issubclass(cls, type):
        return (_type_name(obj), id(obj), 0)
    return (_type_name(cls), id(cls), id(obj))
