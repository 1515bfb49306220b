"""Exceptions across the wire, in rpyc's vinegar layout.

dump: ((module, class name), args, attrs, traceback text), with non-dumpable args and
attributes replaced by their repr and ("_remote_version", version) appended; StopIteration
is the bare int 1. load: builtin exception classes are rebuilt; others are rebuilt by name
when the config allows importing them, else a generic class of that name; either way
str() of the exception ends with the remote traceback, as rpyc shows it.
"""
import builtins
import importlib
import sys
import traceback

from . import consts
from .boxing import dumpable

def _rpyc_version():
    """What rpyc's own server would report as its version: rpyc's, when the hosted
    environment has rpyc (a client of another major version is warned, as rpyc warns
    it), else "<version denied>" (no warning: nothing to compare)."""
    try:
        from importlib import metadata
        return metadata.version("rpyc")
    except Exception:
        return "<version denied>"


VERSION = _rpyc_version()


def _current_version():
    """rpyc's own __version__ once rpyc is imported here (what rpyc's server reports, even
    when it differs from the installed distribution's), else VERSION."""
    module = sys.modules.get("rpyc.version")
    version = getattr(module, "__version__", None)
    return version if type(version) is str else VERSION
_derived = {}


def dump(typ, val, tb, include_local_traceback=True, include_local_version=True):
    if typ is StopIteration:
        return consts.EXC_STOP_ITERATION
    if include_local_traceback:
        try:
            tbtext = "".join(traceback.format_exception(typ, val, tb))
        except Exception:
            tbtext = "<traceback unavailable>"
    else:
        tbtext = "<traceback denied>"
    args, attrs = [], []
    try:
        names = dir(val)
    except Exception:
        names = ["args"]
    for name in names:
        if name == "args":
            for a in getattr(val, "args", ()):
                args.append(a if dumpable(a) else _safe_repr(a))
        elif name.startswith("_") or name in ("_remote_tb", "with_traceback", "add_note"):
            continue
        else:
            try:
                v = getattr(val, name)
            except Exception:
                continue
            if callable(v) and not dumpable(v):
                continue
            attrs.append((name, v if dumpable(v) else _safe_repr(v)))
    attrs.append(("_remote_version", _current_version() if include_local_version else "<version denied>"))
    return (typ.__module__, typ.__name__), tuple(args), tuple(attrs), tbtext


def _safe_repr(v):
    try:
        return repr(v)
    except Exception:
        return f"<unrepresentable {type(v).__name__}>"


class GenericException(Exception):
    """An exception of the peer whose class is not available here."""


def _with_remote_tb(cls):
    """A subclass of cls whose str() appends the remote traceback, cached per class."""
    sub = _derived.get(cls)
    if sub is None:
        def __str__(self):
            text = cls.__str__(self)
            if getattr(self, "_remote_tb", None):
                text += "\n\n========= Remote Traceback (1) =========\n" + self._remote_tb
            return text
        try:
            sub = type(cls.__name__, (cls,), {"__str__": __str__, "__module__": cls.__module__})
        except TypeError:
            sub = cls
        _derived[cls] = sub
    return sub


def load(val, import_custom_exceptions=False, instantiate_custom_exceptions=False):
    if val == consts.EXC_STOP_ITERATION:
        return StopIteration()
    if isinstance(val, str):
        return GenericException(val)
    (modname, clsname), args, attrs, tbtext = val
    cls = None
    if modname == "builtins":
        cls = getattr(builtins, clsname, None)
    elif import_custom_exceptions and instantiate_custom_exceptions:
        try:
            cls = getattr(importlib.import_module(modname), clsname, None)
        except Exception:
            cls = None
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        cls = type(clsname, (GenericException,), {"__module__": modname})
    try:
        exc = _with_remote_tb(cls)(*args)
    except Exception:
        exc = _with_remote_tb(GenericException)(f"{modname}.{clsname}{tuple(args)!r}")
    for name, value in attrs:
        try:
            setattr(exc, name, value)
        except Exception:
            pass
    exc._remote_tb = tbtext
    return exc
