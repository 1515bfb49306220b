"""`pybridge serve --metrics-addr`: Prometheus metrics scraped while real rpyc clients
(this venv's, and the other rpyc major version's in a subprocess) work, and `--pprof`."""
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest
import rpyc

from servers import free_port, pybridge_server, venv_python

# the frame layout: rpyc-ng (7.x) clients use 6.x's, and are counted under it
MINE = "5.x" if rpyc.__version__.startswith("5") else "6.x"
OTHER = "5.x" if MINE == "6.x" else "6.x"
OTHER_VENV = {"5.x": "rpyc5", "6.x": "rpyc6"}[OTHER]

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def get(port, path):
    """(status, body) of GET http://127.0.0.1:port/path."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scrape(port):
    """The metrics as {(name, frozenset of (label, value)): float}."""
    status, text = get(port, "/metrics")
    assert status == 200, text
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, line
        name, labels, value = m.groups()
        samples[(name, frozenset(LABEL.findall(labels or "")))] = float(value)
    return samples


def val(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_for(what, cond, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"{what}: not after {timeout}s"
        time.sleep(0.05)


def settled(port):
    """A scrape once the connection that saw the port open (servers.wait_port; dialect
    none) has been accepted, closed and counted, and no other is open."""
    samples = {}

    def probe_counted():
        samples.clear()
        samples.update(scrape(port))
        return (val(samples, "pybridge_connections_total", dialect="none", transport="tcp") >= 1
                and sum(v for (name, _), v in samples.items() if name == "pybridge_connections_open") == 0)
    wait_for("the port probe's connection counted, none open", probe_counted)
    return samples


@pytest.fixture
def metrics_server():
    port = free_port()
    with pybridge_server("--classic", "--metrics-addr", f"127.0.0.1:{port}", "--pprof") as srv:
        srv.metrics_port = port
        yield srv


OTHER_CLIENT = """
import sys, rpyc
c = rpyc.classic.connect("127.0.0.1", int(sys.argv[1]))
assert c.modules.math.sqrt(9.0) == 3.0
c.close()
"""


def test_metrics_while_clients_work(metrics_server):
    mport = metrics_server.metrics_port
    before = settled(mport)
    assert val(before, "pybridge_workers_alive") == 1  # one worker, or the embedded interpreter
    assert val(before, "pybridge_worker_restarts_total") == 0
    assert val(before, "go_goroutines") > 0 and ("process_cpu_seconds_total", frozenset()) in before

    c = rpyc.classic.connect("127.0.0.1", metrics_server.port)
    math = c.modules.math
    for _ in range(5):
        assert math.pi > 3  # a GETATTR each
    for _ in range(3):
        assert math.sqrt(16.0) == 4.0  # a GETATTR and a CALL each
    with pytest.raises(ValueError):
        math.sqrt(-1.0)  # the failing request: a CALL answered with an exception
    during = scrape(mport)
    assert val(during, "pybridge_connections_open", dialect=MINE, transport="tcp") == 1
    assert val(during, "pybridge_connections_total", dialect=MINE, transport="tcp") == 1
    c.close()

    # a client of the other rpyc major version, on the same port
    subprocess.run([venv_python(OTHER_VENV), "-c", OTHER_CLIENT, str(metrics_server.port)],
                   check=True, timeout=60)

    after = settled(mport)

    def delta(name, **labels):
        return val(after, name, **labels) - val(before, name, **labels)

    assert delta("pybridge_connections_total", dialect=MINE, transport="tcp") == 1
    assert delta("pybridge_connections_total", dialect=OTHER, transport="tcp") == 1
    assert delta("pybridge_connections_total", dialect="none", transport="tcp") == 0
    assert delta("pybridge_requests_total", handler="GETATTR") >= 5 + 3 + 1 + 1  # and the other client's
    assert delta("pybridge_requests_total", handler="CALL") >= 3 + 1 + 1
    assert delta("pybridge_request_exceptions_total", handler="CALL") == 1
    assert delta("pybridge_request_exceptions_total", handler="GETATTR") == 0
    assert val(after, "pybridge_received_bytes_total") > 0
    assert val(after, "pybridge_sent_bytes_total") > 0
    for handler in ("GETATTR", "CALL"):
        count = val(after, "pybridge_request_duration_seconds_count", handler=handler)
        assert count == val(after, "pybridge_requests_total", handler=handler)
        assert val(after, "pybridge_request_duration_seconds_bucket", handler=handler, le="+Inf") == count
        assert val(after, "pybridge_request_duration_seconds_sum", handler=handler) > 0
    assert sum(v for (name, _), v in after.items() if name == "pybridge_errors_total") == 0


def test_a_request_is_timed_until_its_reply(metrics_server):
    # from the request's arrival to its reply written, not to the client's next request
    mport = metrics_server.metrics_port
    before = settled(mport)
    c = rpyc.classic.connect("127.0.0.1", metrics_server.port)
    math = c.modules.math
    for _ in range(4):
        assert math.pi > 3
        time.sleep(0.5)
    c.close()
    after = settled(mport)
    key = "pybridge_request_duration_seconds_sum"
    assert val(after, key, handler="GETATTR") - val(before, key, handler="GETATTR") < 0.4


def test_malformed_frame_is_counted(metrics_server):
    mport = metrics_server.metrics_port
    before = settled(mport)
    with socket.create_connection(("127.0.0.1", metrics_server.port), timeout=30) as s:
        s.sendall(b"\x00\x00\x00\x03\x07abc\n")  # compressed flag 7: no rpyc frame
        assert s.recv(100) == b""  # the server closes the connection
    wait_for("the malformed frame counted",
             lambda: val(scrape(mport), "pybridge_errors_total", kind="malformed_frame") == 1)
    after = scrape(mport)
    assert (val(after, "pybridge_connections_total", dialect="none", transport="tcp")
            - val(before, "pybridge_connections_total", dialect="none", transport="tcp")) == 1
    assert val(after, "pybridge_connections_open", dialect="none", transport="tcp") == 0
    # a value over a limit fails that request alone, and counts as over_limit
    c = rpyc.classic.connect("127.0.0.1", metrics_server.port)
    echo = c.eval("lambda x: x")
    deep = ()
    for _ in range(300):
        deep = (deep,)
    with pytest.raises(Exception, match="nested deeper"):
        echo(deep)
    assert c.eval("6 * 7") == 42
    c.close()
    assert val(scrape(mport), "pybridge_errors_total", kind="over_limit") == 1


def test_pprof_only_when_asked(metrics_server):
    status, body = get(metrics_server.metrics_port, "/debug/pprof/")
    assert status == 200 and "goroutine" in body
    status, _ = get(metrics_server.metrics_port, "/debug/pprof/heap?debug=1")
    assert status == 200
    port = free_port()
    with pybridge_server("--classic", "--metrics-addr", f"127.0.0.1:{port}"):
        assert get(port, "/debug/pprof/")[0] == 404
        assert get(port, "/debug/pprof/heap")[0] == 404
        assert get(port, "/metrics")[0] == 200


def test_worker_restart_is_counted():
    # spawned workers in both legs: a worker's death is what is counted
    port = free_port()
    with pybridge_server("--classic", "--metrics-addr", f"127.0.0.1:{port}", "--isolation", "shared") as srv:
        victim = rpyc.classic.connect("127.0.0.1", srv.port)
        with pytest.raises((EOFError, ConnectionError, OSError)):
            victim.modules.os._exit(1)

        def replaced():
            s = scrape(port)
            return (val(s, "pybridge_worker_restarts_total") == 1 and val(s, "pybridge_workers_alive") == 1
                    and val(s, "pybridge_errors_total", kind="worker_crash") == 1)
        wait_for("the worker's death and its replacement counted", replaced)
        fresh = rpyc.classic.connect("127.0.0.1", srv.port)
        assert fresh.eval("1 + 1") == 2
        fresh.close()
