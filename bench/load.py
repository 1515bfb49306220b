"""Load benchmark: the same rpyc client workloads against rpyc's own ThreadedServer and
against `pybridge serve`, in one run, on loopback.

    .venv/rpyc5/bin/python bench/load.py [--seconds 2] [--turns 4] [--workers 2] [--repeat 3]
        [--isolation embedded --isolation shared/embedded --isolation shared/python] [--metrics]

For each workload it prints ops/s and server CPU per request (user + system time of every
server process: the Go process and all its workers, read from /proc before and after),
and the ratio rpyc / pybridge, measured against rpyc's own ThreadedServer(SlaveService)
in the same run; the median of --repeat runs. All servers run at once, and each
single-client workload is measured in --turns turns in which the servers take turns (a
rotating order): this machine's neighbours slow it down for seconds at a time, and
that should fall on rpyc and pybridge alike. It also measures the floor (bench/floor:
a server that only writes each message back): what the kernel costs any server per
round trip here, hence the highest CPU ratio on attribute gets any server could reach.
Clients that run at once are separate processes. Every loop is bounded in count and
time.
"""
import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "serve"))

import rpyc  # noqa: E402
from servers import Server, free_port, pybridge_args, STOCK_SERVER  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
MiB = 1 << 20


def tree_cpu(pid):
    """CPU seconds (user + system) of pid and all its live descendants, plus what its
    reaped children used."""
    total = 0.0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / TICK
            for task in Path(f"/proc/{p}/task").iterdir():
                kids = (task / "children").read_text().split()
                stack.extend(int(k) for k in kids)
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return total


def workloads(conn):
    math_mod = conn.modules.math
    sqrt = math_mod.sqrt
    lst = conn.builtins.list([1, 2, 3])
    echo = conn.eval("lambda x: x")
    blob = b"x" * MiB
    builtins = conn.modules.builtins
    client_range = range(3)
    return {
        "attribute get": lambda: math_mod.pi,
        "method call": lambda: lst.count(2),
        "classic math.sqrt (held netref)": lambda: sqrt(2.0),
        "1 MiB echo": lambda: echo(blob),
        "callbacks: list(a client's range)": lambda: builtins.list(client_range),
    }


CPU_BOUND = "sum(i * i for i in range(200000))"


def measure(server, fn_factory, seconds, max_ops=200000):
    """One client on a thread of this process: (requests, seconds, server CPU seconds)."""
    conn = rpyc.classic.connect("127.0.0.1", server.port)
    fn = fn_factory(conn)
    fn()  # warm up: netref classes, caches
    got = run_for(fn, seconds, max_ops, server.proc.pid)
    conn.close()
    return got


def run_for(fn, seconds, max_ops, pid):
    """Calls fn until seconds pass or it was called max_ops times: (calls, seconds, CPU
    seconds of pid's process tree meanwhile)."""
    stop = time.monotonic() + seconds
    cpu0 = tree_cpu(pid)
    t0 = time.monotonic()
    n = 0
    while time.monotonic() < stop and n < max_ops:
        fn()
        n += 1
    return n, time.monotonic() - t0, tree_cpu(pid) - cpu0


CLIENT = """
import sys, time
sys.path.insert(0, sys.argv[1])
import rpyc
from load import workloads, CPU_BOUND
c = rpyc.classic.connect("127.0.0.1", int(sys.argv[2]))
name = sys.argv[3]
fn = (lambda: c.eval(CPU_BOUND)) if name == "cpu-bound" else workloads(c)[name]
fn()
print("ready", flush=True)
sys.stdin.readline()
stop = time.monotonic() + float(sys.argv[4])
n = 0
while time.monotonic() < stop:
    fn()
    n += 1
print(n, flush=True)
"""


def measure_processes(server, name, seconds, clients):
    """clients client processes at once (each with its own interpreter and GIL):
    (requests, seconds, server CPU seconds, the clients' CPU seconds)."""
    procs = [subprocess.Popen([sys.executable, "-c", CLIENT, str(HERE), str(server.port), name, str(seconds)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(clients)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    cpu0 = tree_cpu(server.proc.pid)
    client0 = sum(tree_cpu(p.pid) for p in procs)
    t0 = time.monotonic()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    ops = sum(int(p.stdout.readline()) for p in procs)
    elapsed = time.monotonic() - t0
    client = sum(tree_cpu(p.pid) for p in procs) - client0
    cpu = tree_cpu(server.proc.pid) - cpu0
    for p in procs:
        p.stdin.close()
        p.wait(30)
    return ops, elapsed, cpu, client


def in_turns(measurements, turns):
    """Runs each measurement (a key and a function of the turn's seconds returning
    totals) once per turn, in a rotating order, and sums the totals of each key."""
    totals = {}
    keys = list(measurements)
    for t in range(turns):
        for key in keys[t % len(keys):] + keys[:t % len(keys)]:
            got = measurements[key]()
            totals[key] = [a + b for a, b in zip(totals.get(key, [0] * len(got)), got)]
    return totals


def build_floor(tmp):
    """bench/floor built into tmp (Go must be on PATH)."""
    exe = Path(tmp) / "floor"
    subprocess.run(["go", "build", "-o", str(exe), "./bench/floor"], cwd=HERE.parent, check=True)
    return exe


def start_floor(exe):
    port = free_port()
    return Server([str(exe), f"127.0.0.1:{port}"], port)


def measure_floor(server, seconds, max_ops=200000, size=60):
    """Round trips of a size-byte message (an attribute get's size) to the byte-echo
    floor server, from one client thread, as measure() does them: (round trips, seconds,
    server CPU seconds)."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        msg = b"x" * size

        def round_trip():
            sock.sendall(msg)
            got = 0
            while got < size:
                chunk = sock.recv(size - got)
                if not chunk:
                    raise EOFError("floor server went away")
                got += len(chunk)

        round_trip()
        return run_for(round_trip, seconds, max_ops, server.proc.pid)
    finally:
        sock.close()


def start(kind, workers):
    port = free_port()
    if kind == "rpyc":
        return Server([sys.executable, "-c", STOCK_SERVER, str(port)], port)
    isolation, _, worker = kind.split(" ")[1].partition("/")
    extra = ["--metrics-addr", f"127.0.0.1:{free_port()}"] if kind.endswith("+metrics") else []
    if worker:
        extra += ["--worker", worker]
    return Server(pybridge_args("--classic", "--port", str(port), "--workers", str(workers),
                                "--isolation", isolation, "--log-level", "error", *extra), port)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0, help="each server's time on each workload, per run")
    ap.add_argument("--turns", type=int, default=4,
                    help="the single-client workloads are measured in this many turns, the servers "
                         "taking turns within each, so that the machine's slow moments fall on all alike")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="runs of everything; the median is reported")
    ap.add_argument("--isolation", action="append",
                    help="pybridge isolations to measure, optionally with the kind of spawned "
                         "worker: shared/embedded, shared/python (default: embedded, shared/embedded "
                         "and shared/python)")
    ap.add_argument("--metrics", action="store_true",
                    help="also measure each isolation with --metrics-addr (the cost of the metrics)")
    args = ap.parse_args()
    kinds = ["rpyc"]
    for i in args.isolation or ["embedded", "shared/embedded", "shared/python"]:
        kinds += [f"pybridge {i}"] + ([f"pybridge {i} +metrics"] if args.metrics else [])

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        floor_exe = build_floor(tmp)
        for _ in range(args.repeat):
            runs.append(run_all(kinds, floor_exe, args))
    report(kinds, runs, args)


def run_all(kinds, floor_exe, args):
    """One run: every server up at once (idle ones cost nothing). Each single-client
    workload is measured in turns: in each, every server (and, for the first workload,
    the floor) serves the same client loop for seconds/turns, in a rotating order."""
    results = {}
    servers = {}
    try:
        for kind in kinds:
            servers[kind] = start(kind, args.workers)
        servers["floor"] = start_floor(floor_exe)
        names = list(workloads(rpyc.classic.connect("127.0.0.1", servers["rpyc"].port)))
        turn = args.seconds / args.turns
        for name in names:
            measured = {kind: (lambda srv=servers[kind], n=name: measure(srv, lambda c: workloads(c)[n], turn))
                        for kind in kinds}
            if name == names[0]:
                measured["floor"] = lambda: measure_floor(servers["floor"], turn)
            for kind, (n, elapsed, cpu) in in_turns(measured, args.turns).items():
                results[(kind, name)] = (n / elapsed, cpu / max(n, 1))
        # several client processes against one, in turns too (each turn starts the clients anew)
        for label, name, counts in (("attribute get", names[0], (1, 4)), ("CPU-bound", "cpu-bound", (1, 2))):
            measured = {(kind, k): (lambda srv=servers[kind], k=k: measure_processes(srv, name, turn, k))
                        for kind in kinds for k in counts}
            for (kind, k), (ops, elapsed, cpu, client) in in_turns(measured, args.turns).items():
                results[(kind, f"{label}, {k} client{'s' if k > 1 else ''}")] = (
                    ops / elapsed, cpu / max(ops, 1), client / max(ops, 1), (cpu + client) / elapsed)
    finally:
        for srv in servers.values():
            srv.stop()
    return results


def report(kinds, runs, args):
    # the median of each figure over the runs: this machine's neighbours make single runs noisy
    results = {key: tuple(statistics.median(r[key][i] for r in runs) for i in range(len(runs[0][key])))
               for key in runs[0]}

    print(f"rpyc {rpyc.__version__} client, Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cores, pybridge --workers {args.workers} (spawned isolations), "
          f"median of {args.repeat} runs; each server {args.seconds:g} s per workload and run, "
          f"in {args.turns} turns taken in rotation")
    print("CPU ratio = rpyc's server CPU per request / pybridge's (higher is better for pybridge)")
    names = [n for (k, n) in results if k == "rpyc" and "client" not in n]
    for kind in kinds[1:]:
        print(f"\n{kind}")
        print(f"{'workload':34} {'rpyc ops/s':>11} {'ops/s':>9} {'rpyc CPU/req':>13} {'CPU/req':>10} {'CPU ratio':>10}")
        for name in names:
            r_ops, r_cpu = results[("rpyc", name)]
            p_ops, p_cpu = results[(kind, name)]
            print(f"{name:34} {r_ops:11.0f} {p_ops:9.0f} {fmt(r_cpu):>13} {fmt(p_cpu):>10} "
                  f"{r_cpu / p_cpu if p_cpu else float('nan'):9.2f}x")
    r_cpu = results[("rpyc", names[0])][1]
    f_cpu = results[("floor", names[0])][1]
    print(f"\nfloor (bench/floor, a server that only writes each message back): {fmt(f_cpu)} per round trip, "
          f"so no server can reach more than {r_cpu / f_cpu:.2f}x rpyc on {names[0]} here")
    print()
    for kind in kinds:
        one = results[(kind, "attribute get, 1 client")][0]
        four, server, client, busy = results[(kind, "attribute get, 4 clients")]
        print(f"{kind}: four clients doing attribute gets get {four / one:.2f}x the throughput of one "
              f"(CPU per request: server {fmt(server)}, clients {fmt(client)}; {busy:.2f} of {os.cpu_count()} cores busy)")
    for kind in kinds:
        one = results[(kind, "CPU-bound, 1 client")][0]
        two = results[(kind, "CPU-bound, 2 clients")][0]
        print(f"{kind}: two CPU-bound clients get {two / one:.2f}x the throughput of one")


def fmt(seconds):
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


if __name__ == "__main__":
    main()
