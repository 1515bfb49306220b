"""Connections served inside the pybridge process (isolation "embedded").

Go owns the client's socket: it reads and writes the frames, decodes and encodes brine,
and hands each message in as plain Python values through three Go functions, the
connection's transport (pybridge.protocol). serve() runs on a thread Go started for the
connection and returns when the connection ends.
"""
from . import consts, vinegar
from .boxing import ByValue, box, unbox
from .idpack import get_id_pack  # noqa: F401 (Go names objects with it)
from .protocol import Connection


class GoTransport:
    """recv(timeout), send(kind, seq, body), close(reason) and, serving a client,
    send_recv(kind, seq, body) (send, then recv(None), in one call) are Go functions;
    serve_in_c(state), when the client's frames are read in C, has send_recv serve the
    requests it can itself (Connection._serve_in_c)."""

    __slots__ = ("recv", "send", "close", "send_recv", "serve_in_c")

    def __init__(self, recv, send, close, send_recv=None, serve_in_c=None):
        self.recv = recv
        self.send = send
        self.close = close
        self.send_recv = send_recv
        self.serve_in_c = serve_in_c


def serve(recv, send, close, send_recv, opts, serve_in_c=None):
    conn = Connection(GoTransport(recv, send, close, send_recv, serve_in_c), mode=opts.get("mode", "classic"),
                      service=opts.get("service"), config=opts.get("config"), peer=opts.get("peer"),
                      dialect=opts.get("dialect"), local=opts.get("local"))
    conn.serve_all()


class DirectConnection(Connection):
    """A connection to Go in this very process (a Go program's bridge.Conn in embedded
    isolation). Go calls Python objects directly through the C API; what crosses the
    transport is only Python calling Go (a Go func, a Go value's methods): send() runs
    the request in Go at once and returns its reply, so nothing is ever received.
    Python objects travel as themselves: Go holds a reference to each object it keeps,
    so no object table and no DEL are needed on this side."""

    def export(self, obj):
        return obj

    def local_object(self, obj):
        return obj

    def value_of(self, obj):
        return ByValue(obj)  # Go converts lists and dicts itself

    def sync_request(self, handler, *args):
        if self.closed:
            raise EOFError("connection closed")
        kind, body = self._transport.send(consts.MSG_REQUEST, next(self._seq), (handler, box(self, args)))
        if kind == consts.MSG_REPLY:
            return unbox(self, body)
        raise vinegar.load(body, self._config["import_custom_exceptions"], self._config["instantiate_custom_exceptions"])

    def async_request(self, handler, *args):
        kind, body = self._transport.send(consts.MSG_REQUEST, next(self._seq), (handler, box(self, args)))
        if kind == consts.MSG_REPLY:
            unbox(self, body)

    def _send_dels(self):
        dels = self._dels
        while dels and not self.closed:
            try:
                id_pack, count = dels.popleft()
            except IndexError:
                return
            self._transport.send(consts.MSG_REQUEST, next(self._seq), (consts.HANDLE_DEL, (consts.LABEL_TUPLE, (
                (consts.LABEL_LOCAL_REF, id_pack), (consts.LABEL_VALUE, count)))))


def direct_connection(recv, send, close):
    conn = DirectConnection(GoTransport(recv, send, close), mode="go", dialect="go")
    conn._setup()
    return conn


class Cancelled(BaseException):
    """Raised in a Python call whose Go context ended (ctx cancelled or timed out)."""


def handle(conn, handler, args):
    """Runs request handler on unboxed args, as serving a request would."""
    return conn.HANDLERS[handler](conn, *args)


def has_access_override(cls):
    """Whether instances of cls control attribute access (_rpyc_getattr and kin)."""
    return any(hasattr(cls, name) for name in ("_rpyc_getattr", "_rpyc_setattr", "_rpyc_delattr"))


def exception_body(typ, val, tb):
    """The EXCEPTION body for an exception (vinegar), as a reply would carry it."""
    return vinegar.dump(typ, val, tb, True, True)
