"""Service benchmark: an ordinary rpyc service (tests/serve/echo_service.py) under rpyc's
own `ThreadedServer(EchoService)` and under `pybridge serve --service
echo_service:EchoService` (embedded, and spawned with --workers 2), both with
allow_public_attrs, driven by the same rpyc client in one run:

    .venv/rpyc5/bin/python bench/service.py [--seconds 2] [--turns 4] [--repeat 3]

It prints server CPU per operation and the ratio rpyc / pybridge, the median of --repeat
runs, the servers taking turns as in bench/load.py. "attribute of a returned object" is
`p.x` on a plain object a service method returned: each such request goes through the
access policy (may the client read `x`, or is there an `exposed_x`?).
"""
import argparse
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "serve"))

import rpyc  # noqa: E402

from load import fmt, in_turns, run_for  # noqa: E402
from servers import PYBRIDGE, Server, free_port  # noqa: E402

SERVE_DIR = HERE.parent / "tests" / "serve"
CONFIG = '{"allow_public_attrs": true}'

STOCK_SERVICE_SERVER = """
import sys
sys.path.insert(0, sys.argv[2])
from rpyc.utils.server import ThreadedServer
from echo_service import EchoService
ThreadedServer(EchoService, hostname="127.0.0.1", port=int(sys.argv[1]),
               protocol_config={"allow_public_attrs": True}).start()
"""

WORKLOADS = {
    "root method call (echo)": lambda conn, p: conn.root.echo(1),
    "attribute of a returned object": lambda conn, p: p.x,
}


def start(kind, workers):
    port = free_port()
    if kind == "rpyc":
        return Server([sys.executable, "-c", STOCK_SERVICE_SERVER, str(port), str(SERVE_DIR)], port)
    isolation = kind.split(" ")[1]
    return Server([str(PYBRIDGE), "serve", "--python", sys.executable, "--isolation", isolation,
                   "--workers", str(workers), "--service", "echo_service:EchoService", "--port", str(port),
                   "--protocol-config", CONFIG, "--log-level", "error"], port, cwd=SERVE_DIR)


def measure(server, name, seconds):
    """One client on a thread of this process: (operations, seconds, server CPU seconds)."""
    conn = rpyc.connect("127.0.0.1", server.port)
    p = conn.root.point(3, 4)
    work = WORKLOADS[name]

    def fn():
        return work(conn, p)

    fn()  # warm up
    got = run_for(fn, seconds, 200000, server.proc.pid)
    conn.close()
    return got


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0, help="each server's time on each workload, per run")
    ap.add_argument("--turns", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    kinds = ["rpyc", "pybridge embedded", "pybridge shared"]
    runs = []
    for _ in range(args.repeat):
        servers = {}
        try:
            for kind in kinds:
                servers[kind] = start(kind, args.workers)
            run = {}
            for name in WORKLOADS:
                measured = {kind: (lambda srv=servers[kind], n=name: measure(srv, n, args.seconds / args.turns))
                            for kind in kinds}
                for kind, (n, _, cpu) in in_turns(measured, args.turns).items():
                    run[(kind, name)] = cpu / max(n, 1)
            runs.append(run)
        finally:
            for srv in servers.values():
                srv.stop()
    print(f"rpyc {rpyc.__version__} client, EchoService with allow_public_attrs, median of {args.repeat} runs")
    print(f"{'workload':32} {'rpyc CPU/op':>12} " + " ".join(f"{k.split(' ')[1] + ' CPU/op':>16} {'ratio':>6}"
                                                             for k in kinds[1:]))
    for name in WORKLOADS:
        cpu = {kind: statistics.median(r[(kind, name)] for r in runs) for kind in kinds}
        print(f"{name:32} {fmt(cpu['rpyc']):>12} " + " ".join(
            f"{fmt(cpu[k]):>16} {cpu['rpyc'] / cpu[k]:5.2f}x" for k in kinds[1:]))


if __name__ == "__main__":
    main()
