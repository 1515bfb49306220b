"""Method enumeration for INSPECT, without evaluating any attribute.

rpyc builds a proxy class from (name, doc) pairs of an object's methods. Reading the
attributes of an arbitrary object to find them runs its code: properties, __getattr__,
Pydantic's validators (a v2 model with an unresolved forward reference raises on any
access to its __pydantic_validator__). Here only the class __dict__s along the MRO are
read, as raw entries, and nothing is called; the result is what rpyc's get_methods
returns for ordinary objects.
"""
import inspect

_type_dict = type.__dict__["__dict__"].__get__
_type_mro = type.__dict__["__mro__"].__get__

# attributes a proxy keeps for itself (rpyc.core.netref.LOCAL_ATTRS)
LOCAL_ATTRS = frozenset([
    "____conn__", "____id_pack__", "____refcount__", "__class__", "__cmp__", "__del__", "__delattr__",
    "__dir__", "__doc__", "__getattr__", "__getattribute__", "__hash__", "__instancecheck__",
    "__init__", "__metaclass__", "__module__", "__new__", "__reduce__",
    "__reduce_ex__", "__repr__", "__setattr__", "__slots__", "__str__",
    "__weakref__", "__dict__", "__methods__", "__exit__",
    "__eq__", "__ne__", "__lt__", "__gt__", "__le__", "__ge__",
    "__array_struct__", "__array_interface__",
])


def _doc(attr):
    try:
        doc = inspect.getdoc(attr)
        return doc if isinstance(doc, str) else None
    except Exception:
        return None


def _routines(classes):
    attrs = {}
    for base in classes:
        try:
            attrs.update(_type_dict(base))
        except Exception:
            continue
    methods = {}
    for name, attr in attrs.items():
        if name in LOCAL_ATTRS or type(name) is not str:
            continue
        try:
            routine = inspect.isroutine(attr)
        except Exception:
            routine = False
        if routine:
            methods[name] = _doc(attr)
    return tuple(methods.items())


def instance_methods(cls):
    """((name, doc), …) of the routines instances of cls have."""
    return _routines(reversed(_type_mro(cls)))


def get_methods(obj):
    """((name, doc), …) of the routines obj's class chain defines, never raising. For a
    class, its metaclass's routines and its own."""
    try:
        classes = list(reversed(_type_mro(type(obj))))
        if issubclass(type(obj), type):  # isinstance() would read obj.__class__
            classes += list(reversed(_type_mro(obj)))
    except Exception:
        return ()
    return _routines(classes)
