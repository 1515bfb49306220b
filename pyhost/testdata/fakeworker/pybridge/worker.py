"""A stand-in worker for pyhost's process tests: speaks the frame layer of the worker
protocol (HELLO, OPEN, CLOSE, PING, SHUTDOWN) and echoes each REQUEST body back as a
REPLY. Bodies "exit", "segv", "close", "spawn" and "print" make it misbehave on purpose."""
import ctypes
import os
import socket
import struct
import subprocess
import sys

import msgpack


def main():
    fd = int(sys.argv[sys.argv.index("--fd") + 1])
    sock = socket.socket(fileno=fd)

    def send(kind, conn, seq, body):
        b = msgpack.packb((kind, conn, seq, body), use_bin_type=True)
        sock.sendall(struct.pack(">I", len(b)) + b)

    def recv_exact(n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                sys.exit(0)
            buf += chunk
        return buf

    send(23, 0, 0, {"protocol": 1, "pid": os.getpid(), "python": sys.version.split()[0],
                    "codec": "msgpack", "rpyc": None})
    while True:
        (n,) = struct.unpack(">I", recv_exact(4))
        kind, conn, seq, body = msgpack.unpackb(recv_exact(n), raw=False)
        if kind == 20:
            send(21, 0, seq, body)
        elif kind == 22:
            sys.exit(0)
        elif kind == 1:
            if body == "exit":
                os._exit(3)
            elif body == "segv":
                ctypes.string_at(0)
            elif body == "close":
                send(18, conn, 0, "closed by hosted code")
            elif body == "spawn":
                child = subprocess.Popen(["sleep", "300"])
                send(2, conn, seq, child.pid)
            elif body == "print":
                print("hello from the worker", flush=True)
                print("and on stderr", file=sys.stderr, flush=True)
                send(2, conn, seq, "printed")
            else:
                send(2, conn, seq, body)


main()
