"""Services: pybridge.Service (rpyc.Service's semantics without rpyc) and loading the
user's service from "module:Attr"."""
import importlib


class Service:
    """Base class of a service served with `pybridge serve --service module:Attr`, when rpyc
    is not importable in the worker (an rpyc.Service subclass is served unchanged).

    Members named exposed_<name> are reachable as <name>; on_connect(conn) runs when a
    client connects and on_disconnect(conn) when it leaves; conn.root is the client's
    service."""

    __slots__ = ()
    exposed_prefix = "exposed_"
    ALIASES = ()

    @classmethod
    def get_service_aliases(cls):
        """The names the service is known by: ALIASES, else the class name without a
        trailing "Service", upper-cased (as rpyc names services)."""
        if cls.ALIASES:
            return tuple(str(n).upper() for n in cls.ALIASES)
        name = cls.__name__.upper()
        if name.endswith("SERVICE"):
            name = name[:-7]
        return (name,)

    @classmethod
    def get_service_name(cls):
        return cls.get_service_aliases()[0]

    exposed_get_service_aliases = get_service_aliases
    exposed_get_service_name = get_service_name

    def on_connect(self, conn):
        pass

    def on_disconnect(self, conn):
        pass

    def _rpyc_getattr(self, name):
        if not name.startswith(self.exposed_prefix):
            name = self.exposed_prefix + name
        return getattr(self, name)

    def _rpyc_delattr(self, name):
        raise AttributeError("access denied")

    def _rpyc_setattr(self, name, value):
        raise AttributeError("access denied")


def find_service(spec):
    """Imports module:Attr and returns Attr, without instantiating it."""
    if not spec or ":" not in spec:
        raise ValueError(f"service {spec!r}: want module:Attr")
    module_name, _, attr = spec.partition(":")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def check_service(spec):
    """`python -c` entry point: exit 0 when spec loads, else print the error on one
    line and exit 1."""
    import sys
    try:
        find_service(spec)
    except BaseException as e:
        print(f"cannot load service {spec}: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)


def service_aliases(obj):
    """The names a registry knows a service by, as rpyc's servers register them: its
    get_service_aliases() (rpyc.Service, pybridge.Service), else rpyc's rule applied to
    its class's name."""
    get = getattr(obj, "get_service_aliases", None)
    if callable(get):
        return [str(n) for n in get()]
    cls = obj if isinstance(obj, type) else type(obj)
    aliases = getattr(cls, "ALIASES", ())
    if aliases:
        return [str(n).upper() for n in aliases]
    name = cls.__name__.upper()
    return [name[:-7] if name.endswith("SERVICE") else name]


def print_service_aliases(spec):
    """`python -c` entry point: check_service, then print the service's aliases as a
    JSON list on the last line of stdout."""
    import json
    import sys
    try:
        names = service_aliases(find_service(spec))
    except BaseException as e:
        print(f"cannot load service {spec}: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
    sys.stdout.write("\n" + json.dumps(names) + "\n")


def load_service(spec):
    """Imports module:Attr and returns a service instance (Attr is a class, or an instance)."""
    obj = find_service(spec)
    return obj() if isinstance(obj, type) else obj
