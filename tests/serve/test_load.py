"""Load: many connections at once, and many in a row, leave the server as they found it."""
import os
import threading
import time
from pathlib import Path

import rpyc


def _usage(root):
    """Descriptors, threads and RSS (KiB) of the server and its workers together."""
    fds = threads = rss = 0
    stack = [root]
    while stack:
        pid = stack.pop()
        try:
            fds += len(os.listdir(f"/proc/{pid}/fd"))
            tasks = os.listdir(f"/proc/{pid}/task")
            threads += len(tasks)
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
            for t in tasks:
                stack.extend(int(k) for k in Path(f"/proc/{pid}/task/{t}/children").read_text().split())
        except FileNotFoundError:
            pass
    return fds, threads, rss


def test_sequential_connect_call_close_cycles_leave_nothing_behind(classic_server):
    pid = classic_server.proc.pid

    def cycles(n):
        for _ in range(n):
            c = rpyc.classic.connect("127.0.0.1", classic_server.port)
            assert c.eval("1 + 1") == 2
            c.close()

    cycles(200)  # warm: caches, thread pools
    fds0, threads0, rss0 = _usage(pid)
    cycles(1800)
    # the last connections may still be closing at the server: let them settle
    deadline = time.monotonic() + 5
    while True:
        fds1, threads1, rss1 = _usage(pid)
        if (fds1 <= fds0 + 2 and threads1 <= threads0 + 2) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert fds1 <= fds0 + 2, (fds0, fds1)
    assert threads1 <= threads0 + 2, (threads0, threads1)
    assert rss1 - rss0 < 30 << 10, (rss0, rss1)


def test_many_connections_at_once(classic_server):
    n, calls = 200, 20
    errors = []
    barrier = threading.Barrier(n)

    def client(i):
        try:
            c = rpyc.classic.connect("127.0.0.1", classic_server.port)
            barrier.wait(30)
            for j in range(calls):
                assert c.eval(f"{i} * {j}") == i * j
            c.close()
        except Exception as e:  # noqa: BLE001 (collected and reported below)
            errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert not any(t.is_alive() for t in threads)
