"""A stand-in worker for pyhost's process tests: speaks the frame layer of the worker
protocol (HELLO, OPEN with a connection socket, PING, SHUTDOWN on the control socket)
and echoes each REQUEST body back as a REPLY on the connection's socket. Bodies "exit",
"segv", "close", "spawn" and "print" make it misbehave on purpose."""
import array
import ctypes
import os
import socket
import struct
import subprocess
import sys
import threading
import time

import msgpack


def frame(kind, conn, seq, body):
    b = msgpack.packb((kind, conn, seq, body), use_bin_type=True)
    return struct.pack(">I", len(b)) + b


def recv_exact(sock, n, fds=None):
    buf = b""
    while len(buf) < n:
        if fds is None:
            chunk = sock.recv(n - len(buf))
        else:
            chunk, anc, _, _ = sock.recvmsg(n - len(buf), socket.CMSG_SPACE(16 * 4))
            for level, typ, data in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                    a = array.array("i")
                    a.frombytes(data[:len(data) - len(data) % 4])
                    fds.extend(a)
        if not chunk:
            return None
        buf += chunk
    return buf


def serve(sock, conn):
    while True:
        hdr = recv_exact(sock, 4)
        if hdr is None:
            return
        kind, _, seq, body = msgpack.unpackb(recv_exact(sock, struct.unpack(">I", hdr)[0]), raw=False)
        if kind != 1:
            continue
        if body == "exit":
            os._exit(3)
        elif body == "segv":
            ctypes.string_at(0)
        elif body == "close":
            sock.sendall(frame(18, conn, 0, "closed by hosted code"))
            sock.close()
            return
        elif body == "spawn":
            child = subprocess.Popen(["sleep", "300"])
            sock.sendall(frame(2, conn, seq, child.pid))
        elif body == "print":
            print("hello from the worker", flush=True)
            print("and on stderr", file=sys.stderr, flush=True)
            sock.sendall(frame(2, conn, seq, "printed"))
        else:
            sock.sendall(frame(2, conn, seq, body))


def main():
    fd = int(sys.argv[sys.argv.index("--fd") + 1])
    ctl = socket.socket(fileno=fd)
    time.sleep(float(os.environ.get("FAKE_HELLO_DELAY", "0")))
    ctl.sendall(frame(23, 0, 0, {"protocol": 2, "pid": os.getpid(), "python": sys.version.split()[0],
                                 "codec": "msgpack", "rpyc": None}))
    fds = []
    while True:
        hdr = recv_exact(ctl, 4, fds)
        if hdr is None:
            sys.exit(0)
        kind, conn, seq, body = msgpack.unpackb(recv_exact(ctl, struct.unpack(">I", hdr)[0], fds), raw=False)
        if kind == 16:
            s = socket.socket(fileno=fds.pop(0))
            threading.Thread(target=serve, args=(s, conn), daemon=True).start()
        elif kind == 20:
            ctl.sendall(frame(21, 0, seq, body))
        elif kind == 22:
            sys.exit(0)


main()
