"""Helpers: a Connection driven by hand, as the Go side would drive it."""
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

from pybridge import codec, consts
from pybridge.protocol import Connection

REPO = Path(__file__).resolve().parents[2]


class FakeTransport:
    """A transport fed by hand; what the connection sends is recorded."""

    def __init__(self):
        self.inbox = queue.Queue()
        self.sent = queue.Queue()
        self.closed = None

    def recv(self, timeout):
        try:
            msg = self.inbox.get(timeout=timeout)
        except queue.Empty:
            return None
        if msg is None:
            raise EOFError("peer gone")
        return msg

    def send(self, kind, seq, body):
        codec.packb(body)  # everything sent must be encodable
        self.sent.put((kind, seq, body))

    def close(self, reason):
        self.closed = reason


class FakePeer:
    """Stands in for the peer: records what the connection sends, answers nothing."""

    def __init__(self, mode="classic", config=None, dialect=None):
        self.transport = FakeTransport()
        self.sent = self.transport.sent
        self.conn = Connection(self.transport, mode=mode, config=config, dialect=dialect)
        threading.Thread(target=self.conn.serve_all, daemon=True).start()
        self.seq = 1000

    def request(self, handler, *boxed_args):
        self.seq += 1
        self.transport.inbox.put((consts.MSG_REQUEST, self.seq, (handler, (consts.LABEL_TUPLE, boxed_args))))
        while True:
            kind, seq, body = self.sent.get(timeout=10)
            if seq == self.seq and kind != consts.MSG_REQUEST:
                return kind, body


def value(v):
    return (consts.LABEL_VALUE, v)


def ref(id_pack):
    return (consts.LABEL_LOCAL_REF, id_pack)


def worker_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "python") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def spawn_stdio_worker():
    return subprocess.Popen([sys.executable, "-m", "pybridge.worker", "--stdio"], env=worker_env(),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def write_frame(f, kind, conn, seq, body):
    f.write(codec.encode_frame(kind, conn, seq, body))
    f.flush()


def read_frame(f):
    n = int.from_bytes(f.read(4), "big")
    return codec.decode_payload(f.read(n))
