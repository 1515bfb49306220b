"""The worker: `python -m pybridge.worker --fd N` (or `--stdio`).

Reads worker-protocol frames (docs/worker-protocol.md) from the socket Go handed over as fd
N, runs one Connection per connection id, and writes their messages back. With --stdio the
transport is a duplicate of fds 0 and 1; fd 0 is then pointed at /dev/null and fd 1 at
stderr, so hosted code that prints or writes to fd 1 cannot corrupt the stream, and
closing the transport closes only the duplicates.
"""
import argparse
import os
import platform
import sys
import threading

from . import codec, consts
from .protocol import Connection

EXIT_PROTOCOL_ERROR = 70


class Worker:
    def __init__(self, rfd, wfd):
        self.rfd, self.wfd = rfd, wfd
        self._wlock = threading.Lock()
        self.conns = {}

    def send(self, kind, conn, seq, body):
        frame = codec.encode_frame(kind, conn, seq, body)
        with self._wlock:
            view = memoryview(frame)
            while view:
                n = os.write(self.wfd, view)
                view = view[n:]

    def hello(self):
        rpyc_version = None
        try:
            from importlib import metadata
            rpyc_version = metadata.version("rpyc")
        except Exception:
            pass
        self.send(consts.KIND_HELLO, 0, 0, {
            "protocol": 1, "pid": os.getpid(), "python": platform.python_version(),
            "codec": codec.NAME, "rpyc": rpyc_version,
        })

    def frames(self):
        buf = bytearray()
        while True:
            chunk = os.read(self.rfd, 1 << 18)
            if not chunk:
                return
            buf += chunk
            while len(buf) >= 4:
                n = int.from_bytes(buf[:4], "big")
                if len(buf) < 4 + n:
                    break
                payload = bytes(buf[4:4 + n])
                del buf[:4 + n]
                yield payload

    def run(self):
        self.hello()
        for payload in self.frames():
            try:
                kind, conn_id, seq, body = codec.decode_payload(payload)
            except Exception as e:
                print(f"pybridge worker: malformed frame from Go: {e!r}", file=sys.stderr)
                os._exit(EXIT_PROTOCOL_ERROR)
            if kind <= consts.MSG_EXCEPTION:
                conn = self.conns.get(conn_id)
                if conn is not None:
                    conn.dispatch(kind, seq, body)
            elif kind == consts.KIND_OPEN:
                self.open(conn_id, body or {})
            elif kind == consts.KIND_CLOSE:
                conn = self.conns.pop(conn_id, None)
                if conn is not None:
                    threading.Thread(target=conn.peer_closed, daemon=True).start()
            elif kind == consts.KIND_PING:
                self.send(consts.KIND_PONG, 0, seq, body)
            elif kind == consts.KIND_SHUTDOWN:
                break
        for conn in list(self.conns.values()):
            conn.peer_closed()
        self.conns.clear()

    def open(self, conn_id, opts):
        def send(kind, seq, body, conn_id=conn_id):
            self.send(kind, conn_id, seq, body)

        def closed(reason, conn_id=conn_id):
            if self.conns.pop(conn_id, None) is not None:
                self.send(consts.KIND_CLOSE, conn_id, 0, reason)

        conn = Connection(send, mode=opts.get("mode", "classic"), service=opts.get("service"),
                          config=opts.get("config"), peer=opts.get("peer"), dialect=opts.get("dialect"),
                          close_hook=closed, conn_id=conn_id)
        self.conns[conn_id] = conn
        conn.start()


def take_stdio():
    """Duplicates fds 0 and 1 for the transport and re-points the originals."""
    rfd, wfd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    sys.stdin = open(0, "r", closefd=False)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    return rfd, wfd


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m pybridge.worker")
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--fd", type=int, help="the socket Go handed over")
    group.add_argument("--stdio", action="store_true", help="speak over duplicates of stdin/stdout")
    args = ap.parse_args(argv)
    if args.stdio:
        rfd, wfd = take_stdio()
    else:
        rfd = wfd = args.fd
        os.set_inheritable(args.fd, False)
    Worker(rfd, wfd).run()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
