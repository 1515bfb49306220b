"""Roots of classic mode (what rpyc_classic's SlaveService serves) and of mode go."""
import importlib

from . import rpyc_compat


class ClassicRoot:
    """getmodule, eval, execute, namespace, getconn: the classic root rpyc.classic uses,
    named as rpyc_classic's SlaveService is ("SLAVE")."""

    ALIASES = ("SLAVE",)

    @classmethod
    def get_service_aliases(cls):
        return cls.ALIASES

    @classmethod
    def get_service_name(cls):
        return cls.ALIASES[0]

    exposed_get_service_aliases = get_service_aliases
    exposed_get_service_name = get_service_name

    def __init__(self, conn):
        self._conn = conn
        self.namespace = {}

    def execute(self, text):
        exec(text, self.namespace)

    def eval(self, text):
        return eval(text, self.namespace)

    def getmodule(self, name):
        if type(name) is tuple:
            name = ".".join(name)
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as e:
            # rpyc's teleport_function and deliver use two rpyc modules here: without
            # rpyc, stand-ins serve them
            module = rpyc_compat.stand_in(name) if e.name == "rpyc" else None
            if module is None:
                raise
            return module

    def getconn(self):
        return self._conn


class GoRoot(ClassicRoot):
    """The classic root plus value(obj): obj as plain data (lists, dicts, tuples, scalars),
    for Go programs (docs/worker-protocol.md, the by-value extension)."""

    def value(self, obj):
        return self._conn.value_of(obj)
