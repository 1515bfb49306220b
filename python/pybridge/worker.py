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
import time
from collections import deque

from . import codec, consts
from .protocol import Connection

EXIT_PROTOCOL_ERROR = 70


class Channel:
    """One connection's transport over the worker socket: the reader thread feeds it
    messages in order, the connection's threads take them with recv()."""

    def __init__(self, worker, conn_id):
        self._worker, self._id = worker, conn_id
        self._queue = deque()
        self._cond = threading.Condition(threading.Lock())
        self._eof = False       # Go closed the connection (or the worker is stopping)
        self._closed = False    # the connection ended at this side

    def feed(self, kind, seq, body):
        with self._cond:
            self._queue.append((kind, seq, body))
            self._cond.notify()

    def feed_eof(self):
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def recv(self, timeout):
        with self._cond:
            if not self._queue:
                if timeout is None:
                    while not self._queue and not self._eof:
                        self._cond.wait()
                elif not self._eof:
                    self._cond.wait_for(lambda: self._queue or self._eof, timeout)
            if self._queue:
                return self._queue.popleft()
            if self._eof:
                raise EOFError("connection closed by the peer")
            return None

    def send(self, kind, seq, body):
        if self._eof or self._closed:
            raise EOFError("connection closed")
        self._worker.send(kind, self._id, seq, body)

    def close(self, reason):
        with self._cond:
            if self._closed:
                return
            self._closed = True
            peer_gone = self._eof
            self._eof = True
            self._cond.notify_all()
        if self._worker.forget(self._id) and not peer_gone:
            self._worker.send(consts.KIND_CLOSE, self._id, 0, reason)


class Worker:
    def __init__(self, rfd, wfd):
        self.rfd, self.wfd = rfd, wfd
        self._wlock = threading.Lock()
        self._lock = threading.Lock()
        self.channels = {}
        self.threads = []

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
                ch = self.channels.get(conn_id)
                if ch is not None:
                    ch.feed(kind, seq, body)
            elif kind == consts.KIND_OPEN:
                self.open(conn_id, body or {})
            elif kind == consts.KIND_CLOSE:
                ch = self.channels.get(conn_id)
                if ch is not None:
                    self.forget(conn_id)
                    ch.feed_eof()
            elif kind == consts.KIND_PING:
                self.send(consts.KIND_PONG, 0, seq, body)
            elif kind == consts.KIND_SHUTDOWN:
                break
        # Go is gone or asked to stop: every connection ends after what it has queued
        with self._lock:
            channels = list(self.channels.values())
            self.channels.clear()
        for ch in channels:
            ch.feed_eof()
        deadline = time.monotonic() + 4
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def forget(self, conn_id):
        with self._lock:
            return self.channels.pop(conn_id, None) is not None

    def open(self, conn_id, opts):
        ch = Channel(self, conn_id)
        conn = Connection(ch, mode=opts.get("mode", "classic"), service=opts.get("service"),
                          config=opts.get("config"), peer=opts.get("peer"), dialect=opts.get("dialect"),
                          conn_id=conn_id)
        with self._lock:
            self.channels[conn_id] = ch
            self.threads = [t for t in self.threads if t.is_alive()]
        t = threading.Thread(target=conn.serve_all, name=f"pybridge-conn-{conn_id}", daemon=True)
        self.threads.append(t)
        t.start()


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
