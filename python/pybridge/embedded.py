"""Connections served inside the pybridge process (isolation "embedded").

Go owns the client's socket: it reads and writes the frames, decodes and encodes brine,
and hands each message in as plain Python values through three Go functions, the
connection's transport (pybridge.protocol). serve() runs on a thread Go started for the
connection and returns when the connection ends.
"""
from .protocol import Connection


class GoTransport:
    """recv(timeout), send(kind, seq, body) and close(reason) are Go functions."""

    __slots__ = ("recv", "send", "close")

    def __init__(self, recv, send, close):
        self.recv = recv
        self.send = send
        self.close = close


def serve(recv, send, close, opts):
    conn = Connection(GoTransport(recv, send, close), mode=opts.get("mode", "classic"),
                      service=opts.get("service"), config=opts.get("config"), peer=opts.get("peer"),
                      dialect=opts.get("dialect"))
    conn.serve_all()
