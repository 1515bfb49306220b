"""Starting `pybridge serve` and rpyc's own servers as subprocesses on loopback.

The client side of every test is the rpyc installed in the venv running pytest (5.3.1 or
6.0.2), exactly as users have it.
"""
import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[2]
PYBRIDGE = REPO / "bin" / "pybridge"
VENVS = REPO / ".venv"
HERE = Path(__file__).resolve().parent


def client_internal(conn, name):
    """An rpyc client Connection's internal attribute (local_objects, channel, …): rpyc
    5.x/6.x spell it _name, rpyc-ng made it private (_Connection__name)."""
    try:
        return getattr(conn, "_" + name)
    except AttributeError:
        return getattr(conn, "_Connection__" + name)


def venv_python(name):
    return str(VENVS / name / "bin" / "python")


_handed_out = set()


def free_port():
    """A TCP port free on 127.0.0.1 now, and never one this process handed out before:
    the kernel may give a just-released port again, and a test that asks for two (a
    registry's and a server's) must not get the same one twice."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def wait_port(port, proc, timeout=30.0, host="127.0.0.1"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(OSError):
            socket.create_connection((host, port), timeout=1).close()
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


class Server:
    def __init__(self, args, port, env=None, cwd=None):
        self.port = port
        self.proc = subprocess.Popen(args, env=env, cwd=cwd, stdin=subprocess.DEVNULL)
        try:
            wait_port(port, self.proc)
        except BaseException:
            self.stop()
            raise

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


# The isolation every pybridge server of a test run uses: "shared" (spawned workers) or
# "embedded" (Python inside the pybridge process), and what spawned workers are
# (PYBRIDGE_WORKER: "embedded", pybridge processes serving their clients' sockets, or
# "python", Python processes Go relays to; unset: pybridge's own choice, embedded here).
# `make test` runs the suite under each.
ISOLATION = os.environ.get("PYBRIDGE_ISOLATION", "shared")
WORKER = os.environ.get("PYBRIDGE_WORKER", "auto")


def pybridge_args(*extra, python=None):
    return [str(PYBRIDGE), "serve", "--python", python or sys.executable, "--isolation", ISOLATION,
            "--worker", WORKER, "--log-level", "warn", *extra]


@contextlib.contextmanager
def pybridge_server(*extra, python=None, cwd=None, env=None):
    port = free_port()
    srv = Server(pybridge_args("--port", str(port), *extra, python=python), port, cwd=cwd, env=env)
    try:
        yield srv
    finally:
        srv.stop()


STOCK_SERVER = """
import sys, rpyc
from rpyc.utils.server import ThreadedServer
from rpyc.core.service import SlaveService
ThreadedServer(SlaveService, hostname="127.0.0.1", port=int(sys.argv[1]),
               protocol_config={"sync_request_timeout": 30}).start()
"""


@contextlib.contextmanager
def stock_server(python):
    """rpyc's own ThreadedServer(SlaveService), as rpyc_classic runs it."""
    port = free_port()
    srv = Server([python, "-c", STOCK_SERVER, str(port)], port)
    try:
        yield srv
    finally:
        srv.stop()


