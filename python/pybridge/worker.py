"""The worker: `python -m pybridge.worker --fd N` (or `--stdio`).

Go hands over a control socket as fd N (docs/worker-protocol.md). Over it come OPEN
frames, each carrying a socket of its own for one RPyC connection (SCM_RIGHTS), plus
PING and SHUTDOWN. Each connection runs on a thread of its own that reads its socket
and serves what it reads inline, as rpyc's ThreadedServer does: no hand-off between
threads, and an idle connection is a thread blocked in poll(2) that nothing wakes.

With --stdio the worker serves one connection over duplicates of fds 0 and 1, opened
by the first frame; fd 0 is then pointed at /dev/null and fd 1 at stderr, so hosted
code that prints or writes to fd 1 cannot corrupt the stream, and closing the
transport closes only the duplicates.
"""
import argparse
import array
import os
import platform
import select
import socket
import sys
import threading
import time
from collections import deque

from . import codec, consts
from .protocol import Connection

EXIT_PROTOCOL_ERROR = 70
_LENGTH = codec.LENGTH
_CHUNK = 1 << 16


class FrameReader:
    """Frames from a byte stream: a 4-byte big-endian length, then msgpack.

    A frame larger than a chunk gets a buffer of its own size once its header is in;
    a reader fills it straight from the stream (space() and filled()), so a large
    message is copied once on its way in, not chunk by chunk and again as a whole."""

    __slots__ = ("_buf", "_big", "_filled")

    def __init__(self):
        self._buf = bytearray()
        self._big = None  # memoryview of a large frame's payload being read
        self._filled = 0

    def feed(self, data):
        big = self._big
        if big is not None:
            n = min(len(data), len(big) - self._filled)
            big[self._filled:self._filled + n] = data[:n]
            self._filled += n
            data = data[n:]
        self._buf += data

    def space(self):
        """Where the stream's next bytes go when a large frame is being read (all of
        them belong to it), else None: read a chunk and feed() it."""
        big = self._big
        if big is None or self._filled == len(big):
            return None
        return big[self._filled:]

    def filled(self, n):
        """n bytes were read into space()."""
        self._filled += n

    def next(self):
        """The next whole frame's payload (a bytes-like object), or None."""
        big = self._big
        if big is not None:
            if self._filled < len(big):
                return None
            self._big = None
            return big.obj
        buf = self._buf
        if len(buf) < 4:
            return None
        n = _LENGTH.unpack_from(buf)[0]
        if len(buf) == 4 + n:  # the common case: one whole frame, taken without copying
            self._buf = bytearray()
            return memoryview(buf)[4:]
        if len(buf) < 4 + n:
            if n > _CHUNK:
                payload = bytearray(n)
                have = len(buf) - 4
                with memoryview(buf) as view:
                    payload[:have] = view[4:]
                buf.clear()
                self._big, self._filled = memoryview(payload), have
            return None
        payload = buf[4:4 + n]
        del buf[:4 + n]
        return payload


class StreamTransport:
    """One connection's transport over its own stream (a socket Go handed over, or the
    duplicated std fds): recv reads and decodes frames, send encodes and writes them."""

    def __init__(self, rfd, wfd=None, conn_id=0, on_close=None, sock=None):
        self._rfd = rfd
        self._wfd = rfd if wfd is None else wfd
        self._sock = sock  # the socket object when the stream is one
        self._id = conn_id
        self._frames = FrameReader()
        self._wlock = threading.Lock()
        self._pack = codec.frame_packer()  # used under _wlock
        self._eof = False
        self._closed = False
        self._on_close = on_close
        self._poll = None

    def recv(self, timeout):
        frames = self._frames
        while True:
            payload = frames.next()
            if payload is not None:
                kind, _, seq, body = codec.decode_payload(payload)
                if kind <= consts.MSG_EXCEPTION:
                    return kind, seq, body
                continue  # nothing else is sent to a connection
            if self._eof or self._closed:
                raise EOFError("connection closed by the peer")
            if timeout is not None:
                if self._poll is None:
                    self._poll = select.poll()
                    self._poll.register(self._rfd, select.POLLIN)
                if not self._poll.poll(max(0, int(timeout * 1000))):
                    return None
                timeout = 0.0
            space = frames.space()
            try:
                if space is not None:
                    got = os.readv(self._rfd, (space,))
                else:
                    data = os.read(self._rfd, _CHUNK)
                    got = len(data)
            except OSError as e:
                if self._closed:
                    raise EOFError("connection closed") from None
                raise EOFError(f"connection lost: {e}") from None
            if not got:
                self._eof = True
                raise EOFError("connection closed by the peer")
            if space is not None:
                frames.filled(got)
            else:
                frames.feed(data)

    def send(self, kind, seq, body):
        with self._wlock:
            if self._closed:
                raise EOFError("connection closed")
            try:
                payload = self._pack((kind, self._id, seq, body))
            except BaseException:
                self._pack = codec.frame_packer()  # a failed pack may leave it mid-message
                raise
            if len(payload) > _CHUNK:
                self._pack = codec.frame_packer()  # keeps no large message's buffer
            parts = [_LENGTH.pack(len(payload)), payload]  # writev: no copy to join them
            try:
                while parts:
                    n = os.writev(self._wfd, parts)
                    while parts and n >= len(parts[0]):
                        n -= len(parts.pop(0))
                    if n:
                        parts[0] = memoryview(parts[0])[n:]
            except OSError as e:
                raise EOFError(f"connection lost: {e}") from None

    def close(self, reason):
        """The connection ended at this side: say why (when the peer is still there)
        and close the stream."""
        with self._wlock:
            if self._closed:
                return
            if reason and not self._eof:
                try:
                    os.write(self._wfd, codec.encode_frame(consts.KIND_CLOSE, self._id, 0, reason))
                except OSError:
                    pass
            self._closed = True
        self.wake()
        if self._sock is not None:
            self._sock.close()
        else:
            for fd in {self._rfd, self._wfd}:
                try:
                    os.close(fd)
                except OSError:
                    pass
        if self._on_close is not None:
            self._on_close(self)

    def wake(self):
        """Makes a thread blocked in recv see EOF (the worker is stopping)."""
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Worker:
    def __init__(self, fd):
        self.sock = socket.socket(fileno=fd)
        self._wlock = threading.Lock()
        self._lock = threading.Lock()
        self.transports = set()
        self.threads = []

    def send(self, kind, conn, seq, body):
        frame = codec.encode_frame(kind, conn, seq, body)
        with self._wlock:
            self.sock.sendall(frame)

    def hello(self):
        self.send(consts.KIND_HELLO, 0, 0, hello_body())

    def control_frames(self, fds):
        """Control frames, and the fds that came with them (in order) into fds."""
        frames = FrameReader()
        ancsize = socket.CMSG_SPACE(64 * array.array("i").itemsize)
        while True:
            payload = frames.next()
            if payload is not None:
                yield payload
                continue
            data, ancdata, _, _ = self.sock.recvmsg(_CHUNK, ancsize, getattr(socket, "MSG_CMSG_CLOEXEC", 0))
            for level, typ, cdata in ancdata:
                if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                    got = array.array("i")
                    got.frombytes(cdata[:len(cdata) - (len(cdata) % got.itemsize)])
                    fds.extend(got)
            if not data:
                return
            frames.feed(data)

    def run(self):
        self.hello()
        fds = deque()
        for payload in self.control_frames(fds):
            try:
                kind, conn_id, seq, body = codec.decode_payload(payload)
            except Exception as e:
                print(f"pybridge worker: malformed frame from Go: {e!r}", file=sys.stderr)
                os._exit(EXIT_PROTOCOL_ERROR)
            if kind == consts.KIND_OPEN:
                if not fds:
                    print("pybridge worker: OPEN without a socket", file=sys.stderr)
                    os._exit(EXIT_PROTOCOL_ERROR)
                self.open(fds.popleft(), conn_id, body or {})
            elif kind == consts.KIND_PING:
                self.send(consts.KIND_PONG, 0, seq, body)
            elif kind == consts.KIND_SHUTDOWN:
                break
        # Go is gone or asked to stop: every connection ends after what it has read
        with self._lock:
            transports = list(self.transports)
        for t in transports:
            t.wake()
        deadline = time.monotonic() + 4
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def _forget(self, transport):
        with self._lock:
            self.transports.discard(transport)

    def open(self, fd, conn_id, opts):
        sock = socket.socket(fileno=fd)
        sock.set_inheritable(False)
        transport = StreamTransport(sock.fileno(), conn_id=conn_id, on_close=self._forget, sock=sock)
        conn = connection(transport, conn_id, opts)
        t = threading.Thread(target=conn.serve_all, name=f"pybridge-conn-{conn_id}", daemon=True)
        with self._lock:
            self.transports.add(transport)
            self.threads = [x for x in self.threads if x.is_alive()]
            self.threads.append(t)
        t.start()


def connection(transport, conn_id, opts):
    return Connection(transport, mode=opts.get("mode", "classic"), service=opts.get("service"),
                      config=opts.get("config"), peer=opts.get("peer"), dialect=opts.get("dialect"),
                      conn_id=conn_id, local=opts.get("local"))


def hello_body():
    rpyc_version = None
    try:
        from importlib import metadata
        rpyc_version = metadata.version("rpyc")
    except Exception:
        pass
    return {"protocol": 2, "pid": os.getpid(), "python": platform.python_version(),
            "codec": codec.NAME, "rpyc": rpyc_version}


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


def serve_stdio():
    """One connection over the duplicated std fds: HELLO, then the OPEN frame that
    says what to serve, then the connection's messages until EOF."""
    rfd, wfd = take_stdio()
    transport = StreamTransport(rfd, wfd)
    transport.send(consts.KIND_HELLO, 0, hello_body())
    frames = FrameReader()
    while True:
        payload = frames.next()
        if payload is not None:
            break
        data = os.read(rfd, _CHUNK)
        if not data:
            return
        frames.feed(data)
    kind, conn_id, _, body = codec.decode_payload(payload)
    if kind != consts.KIND_OPEN:
        print("pybridge worker: the first frame is not OPEN", file=sys.stderr)
        os._exit(EXIT_PROTOCOL_ERROR)
    transport._frames = frames  # what came after OPEN is the connection's
    connection(transport, conn_id, body or {}).serve_all()


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m pybridge.worker")
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--fd", type=int, help="the control socket Go handed over")
    group.add_argument("--stdio", action="store_true", help="serve one connection over duplicates of stdin/stdout")
    args = ap.parse_args(argv)
    if args.stdio:
        serve_stdio()
    else:
        os.set_inheritable(args.fd, False)
        Worker(args.fd).run()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
