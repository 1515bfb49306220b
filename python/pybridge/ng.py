"""rpyc-ng 7.x, the third dialect the same peer serves.

rpyc-ng (PyPI `rpyc-ng`, imported as `rpyc`) is a fork of rpyc 6: the same frames and
message layout (its first frame is byte for byte a 6.x client's), with its own protocol
above them:

- id_packs have a fourth item, the object type: (name, class id, instance id, type) with
  MODULE 1, CLASS 2 (instance id 0), INSTANCE 3. Its client reads that fourth item of
  every reference it receives; rpyc 5.x and 6.x read only the first three.
- The client builds a proxy by asking TYPE(id_pack) (23) for the object's class, then
  INSPECT and HASH on that class; it never sends CALLATTR (GETATTR, then CALL) and does
  not serve it. BOOL (21) and SUBCLASSCHECK (22) are new.
- DEL names the object by its plain id_pack (no LOCAL_REF box); CTXEXIT carries the
  exception as a vinegar tuple (or None); CMP answers NotImplemented when the object
  has no such method.
- Its brine carries the type objects NoneType, int, bool, float, bytes, str and complex
  by value (it also dumps NotImplementedType and ellipsis, but cannot load them).

A connection starts not knowing whether its 6.x-framed peer is ng (unless Go was told):
it names its objects with four items then, which every version reads, and learns the
dialect from the first message that names an object (spot), as Go's wire.SpotNG does.
"""
import sys
import types

from . import consts, vinegar
from .handlers import Handlers

MODULE, CLASS, INSTANCE = 1, 2, 3

# type objects that go by value to an ng peer (brine tags it can load)
VALUE_TYPES = frozenset([type(None), int, bool, float, bytes, str, complex])

_ModuleType = types.ModuleType
_LOCAL_REF, _REMOTE_REF, _VALUE, _TUPLE = (consts.LABEL_LOCAL_REF, consts.LABEL_REMOTE_REF,
                                           consts.LABEL_VALUE, consts.LABEL_TUPLE)
_NG_ONLY = (consts.HANDLE_BOOL, consts.HANDLE_SUBCLASSCHECK, consts.HANDLE_TYPE)
_PLAIN_ID_PACK = (consts.HANDLE_INSPECT, consts.HANDLE_DEL)


def _id_pack_items(v):
    """True for ng's id_pack (four items), False for rpyc's (three), None if v is none."""
    if type(v) is tuple and 3 <= len(v) <= 4 and type(v[0]) is str:
        return len(v) == 4
    return None


def spot(kind, body):
    """Whether the peer that sent this message is rpyc-ng: True (a handler only ng has,
    or an object named by four items), False (named by three), None (the message names
    no object)."""
    try:
        if kind == consts.MSG_REQUEST:
            handler, (label, args) = body
            if handler in _NG_ONLY:
                return True
            if not args or type(args) is not tuple:
                return None
            if label == _TUPLE:
                first = args[0]
                if first[0] == _LOCAL_REF:
                    return _id_pack_items(first[1])
            elif label == _VALUE and handler in _PLAIN_ID_PACK:
                return _id_pack_items(args[0])
        elif kind == consts.MSG_REPLY:
            label, value = body
            if label == _REMOTE_REF:
                return _id_pack_items(value)
    except (TypeError, ValueError, IndexError):
        pass
    return None


def id_pack(obj, id_pack3):
    """ng's id_pack of obj, from the three items of rpyc's."""
    if id_pack3[2] == 0:
        return id_pack3 + (CLASS,)
    if issubclass(type(obj), _ModuleType):
        return id_pack3 + (MODULE,)
    return id_pack3 + (INSTANCE,)


def exit_body(conn, typ, val, tb):
    """What ng's CTXEXIT carries: the exception as a vinegar tuple, or None."""
    if val is None:
        return None
    return vinegar.dump(typ, val, tb, conn._config["include_local_traceback"], conn._config["include_local_version"])


def _peer_object(conn, id_pack):
    """The object an id_pack of an INSTANCECHECK or SUBCLASSCHECK names: this side's, else
    a probe proxy of the peer's when its class is known here (as rpyc-ng does)."""
    try:
        return conn.local_object(id_pack)
    except KeyError:
        pass
    cls = conn._netref_classes.get((id_pack[0], id_pack[1], 0))
    if cls is None:
        raise LookupError(id_pack)
    return cls(conn, id_pack)  # a probe, not in the cache: releases nothing


class NGHandlers(Handlers):
    """The request handlers as rpyc-ng's server has them (methods of Connection)."""

    def _handle_bool(self, obj):
        return bool(obj)

    def _handle_type(self, id_pack):
        return type(self.local_object(id_pack))

    def _handle_instancecheck(self, obj, other_id_pack):
        try:
            other = _peer_object(self, tuple(other_id_pack))
        except LookupError:
            return Handlers._handle_instancecheck(self, obj, other_id_pack)
        return isinstance(other, obj)

    def _handle_subclasscheck(self, obj, other_id_pack):
        # rpyc-ng's own server answers isinstance() here, which is False for two classes
        # related by inheritance; the question asked is issubclass()
        try:
            other = _peer_object(self, tuple(other_id_pack))
        except LookupError:
            return False
        return isinstance(other, type) and issubclass(other, obj)

    def _handle_del(self, id_pack, count=1):
        self.objects.decref(tuple(id_pack), count)

    def _handle_cmp(self, obj, other, op="__cmp__"):
        try:
            compare = self._access_attr(obj, op, (), "_rpyc_getattr", "allow_getattr", getattr)
        except AttributeError:
            return NotImplemented
        return compare(other)

    def _handle_ctxexit(self, obj, raw):
        if raw is None:
            typ = exc = tb = None
        else:
            exc = vinegar.load(raw, self._config["import_custom_exceptions"], self._config["instantiate_custom_exceptions"])
            try:
                raise exc
            except BaseException:
                typ, exc, tb = sys.exc_info()
        return self._handle_getattr(obj, "__exit__")(typ, exc, tb)

    HANDLERS = dict(Handlers.HANDLERS)
    HANDLERS.update({
        consts.HANDLE_DEL: _handle_del,
        consts.HANDLE_CMP: _handle_cmp,
        consts.HANDLE_CTXEXIT: _handle_ctxexit,
        consts.HANDLE_INSTANCECHECK: _handle_instancecheck,
        consts.HANDLE_BOOL: _handle_bool,
        consts.HANDLE_SUBCLASSCHECK: _handle_subclasscheck,
        consts.HANDLE_TYPE: _handle_type,
    })


HANDLERS = NGHandlers.HANDLERS
