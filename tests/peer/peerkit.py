"""Helpers: a Connection driven by hand, as the Go side would drive it."""
import os
import queue
import subprocess
import sys
from pathlib import Path

from pybridge import codec, consts
from pybridge.protocol import Connection

REPO = Path(__file__).resolve().parents[2]


class FakePeer:
    """Stands in for the peer: records what the connection sends, answers nothing."""

    def __init__(self, mode="classic", config=None):
        self.sent = queue.Queue()
        self.conn = Connection(self._send, mode=mode, config=config)
        self.conn.start()
        self.seq = 1000

    def _send(self, kind, seq, body):
        codec.packb(body)  # everything sent must be encodable
        self.sent.put((kind, seq, body))

    def request(self, handler, *boxed_args):
        self.seq += 1
        self.conn.dispatch(consts.MSG_REQUEST, self.seq, (handler, (consts.LABEL_TUPLE, boxed_args)))
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
