"""Boxing: how values cross the wire. Immutable simple values go by value (label VALUE),
tuples holding anything else item by item (TUPLE), the receiver's own objects by their
id_pack (LOCAL_REF), and everything else by reference (REMOTE_REF), which the receiver
turns into a proxy. To an rpyc-ng peer a few type objects go by value too
(conn.value_types)."""
from .consts import LABEL_LOCAL_REF, LABEL_REMOTE_REF, LABEL_TUPLE, LABEL_VALUE

_simple = frozenset([type(None), int, bool, float, bytes, str, complex, type(NotImplemented), type(Ellipsis)])


def dumpable(obj, types=frozenset()):
    """rpyc's brine.dumpable: can obj travel by value? types: the type objects that can
    (rpyc-ng's brine has tags for some)."""
    t = type(obj)
    if t in _simple:
        return True
    if t is tuple or t is frozenset:
        return all(dumpable(x, types) for x in obj)
    if t is slice:
        return dumpable(obj.start, types) and dumpable(obj.stop, types) and dumpable(obj.step, types)
    if t is type:
        return obj in types
    return False


class ByValue:
    """Wraps plain data the by-value extension carries under label VALUE (mode go)."""
    __slots__ = ("data",)

    def __init__(self, data):
        self.data = data


def box(conn, obj):
    t = type(obj)
    if t in _simple:
        return (LABEL_VALUE, obj)
    if t is tuple:
        if dumpable(obj, conn.value_types):
            return (LABEL_VALUE, obj)
        return (LABEL_TUPLE, tuple(box(conn, x) for x in obj))
    if (t is frozenset or t is slice) and dumpable(obj, conn.value_types):
        return (LABEL_VALUE, obj)
    if t is type and obj in conn.value_types:
        return (LABEL_VALUE, obj)
    if t is ByValue:
        return (LABEL_VALUE, obj.data)
    id_pack = conn.proxy_id_pack(obj)
    if id_pack is not None:
        return (LABEL_LOCAL_REF, id_pack)
    return (LABEL_REMOTE_REF, conn.export(obj))


def unbox(conn, package):
    label, value = package
    if label == LABEL_VALUE:
        return value
    if label == LABEL_TUPLE:
        # a request's arguments: most are values or this side's objects, unboxed here
        items = []
        for x in value:
            label, v = x
            if label == LABEL_VALUE:
                items.append(v)
            elif label == LABEL_LOCAL_REF:
                items.append(conn.local_object(v))
            else:
                items.append(unbox(conn, x))
        return tuple(items)
    if label == LABEL_LOCAL_REF:
        return conn.local_object(value)
    if label == LABEL_REMOTE_REF:
        return conn.proxy_for(tuple(value))
    raise ValueError(f"invalid box label {label!r}")
