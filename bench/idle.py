"""Idle connections: what 1000 connected, silent rpyc clients cost `pybridge serve`.

    .venv/rpyc5/bin/python bench/idle.py [--connections 1000]

For each isolation (and kind of spawned worker: shared/embedded, shared/python) it reports the server's memory per idle connection (RSS of the Go
process, and of the workers, before and after) and how many times the server's threads
wake up per second while every connection is idle, soon after they connected and later (voluntary context switches from
/proc). rpyc's own ThreadedServer is measured the same way, in the same run.
"""
import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "serve"))

import rpyc  # noqa: E402
from servers import STOCK_SERVER, Server, free_port, pybridge_args  # noqa: E402


def tree(pid):
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                stack.extend(int(k) for k in (task / "children").read_text().split())
        except FileNotFoundError:
            pass
    return out


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def switches(pids):
    total = 0
    for pid in pids:
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                for line in (task / "status").read_text().splitlines():
                    if line.startswith("voluntary_ctxt_switches:") or line.startswith("nonvoluntary_ctxt_switches:"):
                        total += int(line.split()[1])
            except FileNotFoundError:
                pass
    return total


def measure(kind, n):
    port = free_port()
    if kind == "rpyc":
        srv = Server([sys.executable, "-c", STOCK_SERVER, str(port)], port)
    else:
        isolation, _, worker = kind.partition("/")
        srv = Server(pybridge_args("--classic", "--port", str(port), "--isolation", isolation,
                                   "--worker", worker or "auto", "--log-level", "error"), port)
    try:
        warm = rpyc.classic.connect("127.0.0.1", port)
        warm.eval("1")
        time.sleep(0.5)
        pids = tree(srv.proc.pid)
        main0, rest0 = rss_kib(srv.proc.pid), sum(rss_kib(p) for p in pids[1:])
        conns = []
        for _ in range(n):
            c = rpyc.classic.connect("127.0.0.1", port)
            conns.append(c)
        # settle: pybridge keeps a timer for a second after threads were last busy
        # (sched.Busy); idle means after that. The wake-ups are counted twice: 2.5-5.5 s
        # after the last connect (what the burst of connections leaves running: Go's
        # scavenger returning memory, GOMAXPROCS stepping down) and 10-13 s after it
        connected = time.monotonic()
        time.sleep(2.5)
        pids = tree(srv.proc.pid)
        main1, rest1 = rss_kib(srv.proc.pid), sum(rss_kib(p) for p in pids[1:])
        s0 = switches(pids)
        time.sleep(3.0)
        early = (switches(pids) - s0) / 3.0
        time.sleep(max(0.0, connected + 10.0 - time.monotonic()))
        s0 = switches(pids)
        time.sleep(3.0)
        late = (switches(pids) - s0) / 3.0
        for c in conns:
            c.close()
        warm.close()
        return (main1 - main0) / n, (rest1 - rest0) / n, early, late
    finally:
        srv.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=1000)
    args = ap.parse_args()
    print(f"{args.connections} idle rpyc {rpyc.__version__} classic connections")
    print(f"{'server':24} {'main process KiB/conn':>22} {'workers KiB/conn':>17} "
          f"{'wake-ups/s idle, 2.5-5.5 s':>27} {'10-13 s':>8}")
    for kind in ("rpyc", "embedded", "shared/embedded", "shared/python"):
        main_kib, rest_kib, early, late = measure(kind, args.connections)
        name = kind if kind == "rpyc" else f"pybridge {kind}"
        print(f"{name:24} {main_kib:22.1f} {rest_kib:17.1f} {early:27.1f} {late:8.1f}")


if __name__ == "__main__":
    main()
