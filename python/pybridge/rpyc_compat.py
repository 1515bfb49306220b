"""What rpyc's client-side helpers need of the server's interpreter, without rpyc there.

rpyc.classic.teleport_function calls conn.modules["rpyc.utils.teleportation"]
.import_function on the server, and rpyc.classic.deliver calls
conn.modules["rpyc.lib.compat"].pickle.loads (rpyc 5.x and 6.x alike). A worker needs
nothing installed, so when rpyc cannot be imported there, the classic root's getmodule
answers those two names with the stand-ins below. They are not put in sys.modules: hosted
code's `import rpyc` still fails as it should.

When rpyc is importable, hosted code and rpyc's own helpers (import_function's "function
globals must be real dicts" test, services that obtain() what they are given) test
isinstance(x, rpyc.core.netref.BaseNetref): once that module is imported here, that test
counts pybridge's proxies too (count_as_rpyc_netrefs). Nothing imports rpyc for it.
"""
import builtins
import pickle
import sys
import types

# marks a code object nested in an exported code tuple (a lambda, a comprehension):
# (CODE_MARK, code tuple), as rpyc's teleportation spells it on the wire
CODE_MARK = "MAg1c J0hNNzo0hn ZqhuBP17LQk8"

# The fields of an exported code tuple, by its length, which depends on the exporting
# Python: 18 from 3.11 on, 16 for 3.8 to 3.10, 15 before.
_LAYOUTS = {
    18: ("argcount", "posonlyargcount", "kwonlyargcount", "nlocals", "stacksize", "flags", "code",
         "consts", "names", "varnames", "filename", "name", "qualname", "firstlineno", "linetable",
         "exceptiontable", "freevars", "cellvars"),
    16: ("argcount", "posonlyargcount", "kwonlyargcount", "nlocals", "stacksize", "flags", "code",
         "consts", "names", "varnames", "filename", "name", "firstlineno", "linetable", "freevars",
         "cellvars"),
    15: ("argcount", "kwonlyargcount", "nlocals", "stacksize", "flags", "code", "consts", "names",
         "varnames", "filename", "name", "firstlineno", "linetable", "freevars", "cellvars"),
}


def _code_from_tuple(values):
    layout = _LAYOUTS.get(len(values))
    if layout is None:
        raise ValueError(f"not an exported code object: {len(values)} fields")
    f = dict(zip(layout, values))
    consts = tuple(_code_from_tuple(c[1]) if type(c) is tuple and len(c) == 2 and c[0] == CODE_MARK else c
                   for c in f["consts"])
    common = (f["argcount"], f.get("posonlyargcount", 0), f["kwonlyargcount"], f["nlocals"], f["stacksize"],
              f["flags"], f["code"], consts, f["names"], f["varnames"], f["filename"], f["name"])
    linetable = f["linetable"]
    if sys.version_info >= (3, 11):
        return types.CodeType(*common, f.get("qualname", f["name"]), f["firstlineno"], linetable,
                              f.get("exceptiontable", b""), f["freevars"], f["cellvars"])
    if len(values) == 18 or (sys.version_info < (3, 10) and len(values) == 16):
        linetable = b""  # another Python's line table format: no line numbers rather than wrong ones
    return types.CodeType(*common, f["firstlineno"], linetable, f["freevars"], f["cellvars"])


def import_function(functup, globals=None, def_=True):
    """Rebuilds a function rpyc's export_function exported: (name, module, defaults,
    kwdefaults, code tuple). Its globals are `globals` (a proxy of the peer's dict is
    copied here: function globals must be a real dict), else its module's; with def_,
    the function is also bound to its name there."""
    name, module_name, defaults, kwdefaults, codetup = functup
    if globals is None:
        try:
            module = __import__(module_name, None, None, "*")
        except ImportError:
            module = __import__("__main__", None, None, "*")
        globals = module.__dict__
    elif type(globals) is not dict:
        globals = pickle.loads(pickle.dumps(globals))  # a proxy: its value, by pickle
    globals.setdefault("__builtins__", builtins)
    func = types.FunctionType(_code_from_tuple(codetup), globals, name, defaults)
    if kwdefaults is not None:
        func.__kwdefaults__ = dict(kwdefaults)
    if def_:
        globals[name] = func
    return func


def _module(name, **attrs):
    m = types.ModuleType(name, "pybridge's stand-in for what rpyc's client helpers use of this module")
    m.__dict__.update(attrs)
    return m


_stand_ins = None


def stand_in(name):
    """The stand-in module for one of the names rpyc's client helpers import on the
    server, or None."""
    global _stand_ins
    if _stand_ins is None:
        _stand_ins = {
            "rpyc.utils.teleportation": _module("rpyc.utils.teleportation", import_function=import_function,
                                                CODEOBJ_MAGIC=CODE_MARK),
            "rpyc.lib.compat": _module("rpyc.lib.compat", pickle=pickle),
        }
    return _stand_ins.get(name)


# ---- rpyc's BaseNetref counts pybridge's proxies -------------------------------------

_NETREF_MODULE = "rpyc.core.netref"


def count_as_rpyc_netrefs(proxy_base):
    """From when rpyc.core.netref is imported in this interpreter (now, or whenever hosted
    code imports it), isinstance(proxy, rpyc.core.netref.BaseNetref) and issubclass(proxy
    class, it) are true for pybridge's proxies (instances of proxy_base's subclasses)."""
    module = sys.modules.get(_NETREF_MODULE)
    if module is not None:
        _adopt(module, proxy_base)
    if not any(type(f) is _NetrefImportWatcher for f in sys.meta_path):
        sys.meta_path.insert(0, _NetrefImportWatcher(proxy_base))


def _adopt(module, proxy_base):
    """Makes rpyc's BaseNetref (only that class) also accept proxy_base's subclasses in
    isinstance/issubclass; every other answer is its metaclass's own.

    rpyc 5.x/6.x: NetrefMetaclass leaves both checks to type, so BaseNetref gets a
    subclass of it that adds the proxies. rpyc-ng 7.x: NetrefMetaclass defines both checks
    (calling super(type(self), self), which loops forever under a subclass) and tests
    `type(x) is NetrefMetaclass` throughout, and every netref class it makes inherits
    BaseNetref's metaclass: a subclass there would break rpyc itself. So there the
    metaclass's own two checks are wrapped in place, answering for BaseNetref alone."""
    base = getattr(module, "BaseNetref", None)
    if not isinstance(base, type):
        return
    meta = type(base)
    own = [name for name in ("__instancecheck__", "__subclasscheck__")
           if any(name in vars(k) for k in meta.__mro__ if k is not type and k is not object)]
    if own:
        _wrap_checks(meta, base, proxy_base)
        return
    if getattr(meta, "_pybridge_counts_proxies", False):
        return

    class Meta(meta):
        __slots__ = ()
        _pybridge_counts_proxies = True

        def __instancecheck__(cls, inst):
            if super().__instancecheck__(inst):
                return True
            return cls is base and issubclass(type(inst), proxy_base)

        def __subclasscheck__(cls, sub):
            if super().__subclasscheck__(sub):
                return True
            return cls is base and isinstance(sub, type) and issubclass(sub, proxy_base)

    Meta.__name__, Meta.__qualname__, Meta.__module__ = meta.__name__, meta.__qualname__, meta.__module__
    try:
        base.__class__ = Meta
    except TypeError:
        pass  # a BaseNetref of another shape: leave it as it is


def _wrap_checks(meta, base, proxy_base):
    """Wraps meta's own __instancecheck__/__subclasscheck__ in place (once): for base, a
    pybridge proxy (class) counts first, without asking the proxy anything; every other
    call is the original's, with `self` still of type meta."""
    inst_check, sub_check = meta.__instancecheck__, meta.__subclasscheck__
    if getattr(inst_check, "_pybridge_counts_proxies", False):
        return

    def __instancecheck__(cls, inst):
        if cls is base and issubclass(type(inst), proxy_base):
            return True
        return inst_check(cls, inst)

    def __subclasscheck__(cls, sub):
        if cls is base and isinstance(sub, type) and issubclass(sub, proxy_base):
            return True
        return sub_check(cls, sub)

    for wrapper, original in ((__instancecheck__, inst_check), (__subclasscheck__, sub_check)):
        wrapper.__qualname__ = f"{meta.__qualname__}.{wrapper.__name__}"
        wrapper.__module__ = meta.__module__
        wrapper.__doc__ = getattr(original, "__doc__", None)
        wrapper.__wrapped__ = original
        wrapper._pybridge_counts_proxies = True
        setattr(meta, wrapper.__name__, wrapper)


class _NetrefImportWatcher:
    """A meta path finder that only watches rpyc.core.netref being imported: the other
    finders find it, and once its code has run, _adopt runs."""

    def __init__(self, proxy_base):
        self.proxy_base = proxy_base

    def find_spec(self, fullname, path=None, target=None):
        if fullname != _NETREF_MODULE:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _AdoptingLoader(spec.loader, self.proxy_base)
        return spec


class _AdoptingLoader:
    """The module's own loader, adopting once the module has run."""

    def __init__(self, loader, proxy_base):
        self._loader = loader
        self._proxy_base = proxy_base

    def create_module(self, spec):
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module):
        self._loader.exec_module(module)
        _adopt(module, self._proxy_base)

    def __getattr__(self, name):  # get_source, get_code, … for tracebacks and tools
        return getattr(self._loader, name)
