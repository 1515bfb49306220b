"""The access policy's static attribute lookup (handlers._hasattr_static) answers as
inspect.getattr_static does, for every kind of object a service hands out, and runs
nothing the object or its classes define (fix #2: no property, descriptor or __getattr__
is evaluated to decide whether a client may access a name)."""
import abc
import math
import sys

import pytest

from pybridge.handlers import _hasattr_static
from pybridge.handlers import _inspect_hasattr_static as _inspect_says  # the answer to match

CALLS = []


def _record(what):
    CALLS.append(what)
    raise RuntimeError(f"{what} must not run")


class Plain:
    cls_attr = 1
    exposed_cls = 2

    def __init__(self):
        self.inst = 3
        self.exposed_inst = 4

    def method(self):
        pass


class Child(Plain):
    child_attr = 5


class Slotted:
    __slots__ = ("set_slot", "unset_slot")

    def __init__(self):
        self.set_slot = 1


class Tricky:
    """Everything dynamic records that it ran."""

    @property
    def prop(self):
        _record("property")

    def __getattr__(self, name):
        _record("__getattr__")

    def __getattribute__(self, name):
        _record("__getattribute__")


class LyingClass:
    @property
    def __class__(self):
        _record("__class__")


class ShadowedDict:
    """A class whose __dict__ is a property: getattr_static ignores the instance dict."""

    @property
    def __dict__(self):
        _record("__dict__ property")


class NonDataDescriptor:
    def __get__(self, obj, typ=None):
        _record("__get__")


class WithDescriptor:
    desc = NonDataDescriptor()


class Meta(type):
    meta_attr = 1


class WithMeta(metaclass=Meta):
    own = 1


class ShadowingMeta(type):
    @property
    def __dict__(cls):
        _record("metaclass __dict__")


class UnderShadowingMeta(metaclass=ShadowingMeta):
    hidden = 1


class HashingMeta(type):
    def __hash__(cls):
        _record("metaclass __hash__")

    def __eq__(cls, other):
        _record("metaclass __eq__")


class UnderHashingMeta(metaclass=HashingMeta):
    known = 1


class Abstract(abc.ABC):
    concrete = 1

    @abc.abstractmethod
    def must(self):
        pass


class Concrete(Abstract):
    def must(self):
        pass


def _instance_with_dict_entries():
    o = Plain()
    o.__dict__["late"] = 1
    return o


OBJECTS = {
    "module": math,
    "plain": Plain(),
    "plain with late entries": _instance_with_dict_entries(),
    "child": Child(),
    "slotted": Slotted(),
    "tricky": object.__new__(Tricky),
    "lying __class__": LyingClass(),
    "shadowed __dict__": ShadowedDict(),
    "descriptor": WithDescriptor(),
    "metaclass instance": WithMeta(),
    "shadowing metaclass instance": UnderShadowingMeta(),
    "abc": Concrete(),
    "a class": Plain,
    "a metaclass's class": WithMeta,
    "a shadowing metaclass's class": UnderShadowingMeta,
    "a hashing metaclass's class": UnderHashingMeta,
    "an abstract class": Abstract,
    "type": type,
    "list": [1, 2],
    "dict": {"a": 1},
    "int": 7,
    "str": "s",
    "None": None,
    "function": _record,
    "bound method": Plain().method,
    "builtin function": len,
    "sys": sys,
}

NAMES = ["pi", "exposed_pi", "cls_attr", "exposed_cls", "inst", "exposed_inst", "late", "method",
         "child_attr", "set_slot", "unset_slot", "prop", "desc", "own", "meta_attr", "hidden",
         "concrete", "must", "append", "keys", "__len__", "__dict__", "__class__", "__doc__",
         "__name__", "mro", "real", "missing", "exposed_missing", "__getattr__"]


@pytest.mark.parametrize("kind", sorted(OBJECTS))
def test_answers_as_getattr_static_and_runs_nothing(kind):
    obj = OBJECTS[kind]
    CALLS.clear()
    got = {name: _hasattr_static(obj, name) for name in NAMES}
    assert CALLS == []
    want = {name: _inspect_says(obj, name) for name in NAMES}
    assert got == want


def test_runs_no_metaclass_hash_or_eq():
    # (inspect.getattr_static itself compares classes with ==: no comparison with it here)
    obj = UnderHashingMeta()
    obj.mine = 2
    CALLS.clear()
    assert _hasattr_static(obj, "known")
    assert _hasattr_static(obj, "mine")
    assert not _hasattr_static(obj, "missing")
    assert CALLS == []


def test_sees_a_base_class_assigned_later():
    class Shadow:
        @property
        def __dict__(self):
            _record("__dict__ property")

    class Base:
        pass

    class Derived(Base):
        pass

    obj = Derived()
    obj.mine = 1
    assert _hasattr_static(obj, "mine")
    Derived.__bases__ = (Shadow,)  # now getattr_static does not look into obj's dict
    CALLS.clear()
    assert _hasattr_static(obj, "mine") == _inspect_says(obj, "mine")
    assert CALLS == []


def test_sees_attributes_added_after_a_lookup():
    class Late:
        pass

    obj = Late()
    assert not _hasattr_static(obj, "added")
    Late.added = 1
    assert _hasattr_static(obj, "added")
    del Late.added
    obj.added = 2
    assert _hasattr_static(obj, "added")


def test_pydantic_models_with_unresolved_forward_refs():
    pydantic = pytest.importorskip("pydantic")

    class Model(pydantic.BaseModel):
        x: int = 1
        later: "Undefined" = None  # noqa: F821 (never resolved)

    try:
        obj = Model()
    except Exception:  # pydantic 2 refuses instances of a model it cannot complete
        obj = Model.__new__(Model)
    for name in ["x", "later", "exposed_x", "model_fields", "__fields__", "dict", "missing"]:
        assert _hasattr_static(obj, name) == _inspect_says(obj, name), name
