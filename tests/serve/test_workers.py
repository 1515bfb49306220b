"""Spawned workers of both kinds (--worker embedded: pybridge processes that serve their
clients' sockets; --worker python: Python processes Go relays to): connections spread
over them, one blocked connection never holds up another in the same worker, and an idle
connection's worker sleeps."""
import contextlib
import subprocess
import threading
import time
from pathlib import Path

import pytest
import rpyc

from servers import free_port, pybridge_args, pybridge_server

KINDS = ["embedded", "python"]


def spawned(kind, *extra):
    return pybridge_server("--classic", "--isolation", "shared", "--worker", kind, *extra)


@contextlib.contextmanager
def spawned_untouched(kind, *extra):
    """A server that no connection has touched yet: ready when it logs that it serves
    (pybridge_server's readiness check connects once, and that connection, handed to a
    worker, counts on the pool's pick until the worker says it ended)."""
    port = free_port()
    args = pybridge_args("--classic", "--port", str(port), "--isolation", "shared", "--worker", kind,
                         *extra, "--log-level", "info")
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ready = threading.Event()

    def drain():
        for line in proc.stderr:
            if "msg=serving" in line:
                ready.set()

    threading.Thread(target=drain, daemon=True).start()
    try:
        assert ready.wait(60), "the server did not start"
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("round_", [1, 2])
def test_clients_connecting_at_the_same_instant_get_different_workers(kind, round_):
    # a fresh server each round: the pool counts a closed connection off only once its
    # worker says it ended, so clients of an earlier round could still weigh on the pick
    with spawned_untouched(kind, "--workers", "2") as port:
        barrier = threading.Barrier(2)
        conns = [None, None]

        def connect(i):
            barrier.wait()
            conns[i] = rpyc.classic.connect("127.0.0.1", port)

        threads = [threading.Thread(target=connect, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        pids = {c.modules.os.getpid() for c in conns}
        for c in conns:
            c.close()
        assert len(pids) == 2


@pytest.mark.parametrize("kind", KINDS)
def test_blocked_connection_does_not_hold_up_another_in_its_worker(kind):
    with spawned(kind, "--workers", "1") as srv:
        a = rpyc.classic.connect("127.0.0.1", srv.port)
        b = rpyc.classic.connect("127.0.0.1", srv.port)
        assert a.modules.os.getpid() == b.modules.os.getpid()  # one worker
        a.execute("import builtins, threading; builtins._pb_gate = threading.Event()")
        waiting = rpyc.async_(a.modules.builtins._pb_gate.wait)(60)
        # b is served while a's request blocks in the same worker: it opens a's gate
        b.execute("import builtins; builtins._pb_gate.set()")
        waiting.wait()
        assert waiting.value is True
        assert b.eval("1 + 1") == 2
        a.close()
        b.close()


def worker_switches(server_pid):
    """Context switches of every thread of the server's worker processes."""
    total = 0
    for child in Path(f"/proc/{server_pid}/task").iterdir():
        for pid in (child / "children").read_text().split():
            for task in Path(f"/proc/{pid}/task").iterdir():
                for line in (task / "status").read_text().splitlines():
                    if "ctxt_switches" in line:
                        total += int(line.split()[1])
    return total


@pytest.mark.parametrize("kind", KINDS)
def test_idle_connections_worker_sleeps(kind):
    # no health pings, so that nothing is meant to wake the worker; a worker that woke
    # periodically (a poll every 50 ms) would never be quiet for a whole window
    with spawned(kind, "--workers", "1", "--ping-interval", "0") as srv:
        conns = [rpyc.classic.connect("127.0.0.1", srv.port) for _ in range(5)]
        for c in conns:
            assert c.eval("2 + 2") == 4
        deadline = time.monotonic() + 30
        quiet = False
        while not quiet and time.monotonic() < deadline:
            before = worker_switches(srv.proc.pid)
            time.sleep(1.5)
            quiet = worker_switches(srv.proc.pid) == before
        assert quiet, "the worker of idle connections kept waking up"
        for c in conns:
            assert c.eval("3 + 3") == 6
            c.close()
