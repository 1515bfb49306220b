"""rpyc's registry protocol, both ways, with rpyc's own clients.

`pybridge serve --register` registers with rpyc's own registry server, and `pybridge
registry` serves rpyc's own servers (rpyc_classic --register) and pybridge's; clients
find them with rpyc.discover(), rpyc.connect_by_service(), rpyc.list_services() and the
registrars' own methods, over UDP and TCP. Everything is on loopback, on free ports.
"""
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rpyc
from rpyc.core import brine
from rpyc.core.service import MasterService
from rpyc.utils.registry import TCPRegistryClient, UDPRegistryClient

from servers import PYBRIDGE, free_port, pybridge_args, wait_port

MODES = ["UDP", "TCP"]
VENV_BIN = Path(sys.executable).parent
SERVE_DIR = Path(__file__).resolve().parent.parent / "serve"  # echo_service.py
# how long a condition may take to come true before a test fails: generous, since the
# machine is shared (nothing here waits this long when things work)
DEADLINE = 60.0


_udp_handed_out = set()


def free_udp_port():
    """A UDP port free on 127.0.0.1 now, never one handed out before (see free_port)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _udp_handed_out:
            _udp_handed_out.add(port)
            return port


def free_port_for(mode):
    return free_udp_port() if mode == "UDP" else free_port()


def wait_until(what, cond, timeout=DEADLINE):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout}s: {what}")
        time.sleep(0.05)


def registrar(mode, port):
    """rpyc's own registry client for the registry at 127.0.0.1:port (a generous timeout:
    it is waited only when a reply is late)."""
    if mode == "UDP":
        return UDPRegistryClient(ip="127.0.0.1", port=port, timeout=10)
    return TCPRegistryClient("127.0.0.1", port=port, timeout=10)


def registry_answers(mode, port):
    """True once a registry answers a QUERY at 127.0.0.1:port (a UDP registry gives no
    other sign of life)."""
    query = brine.dump(("RPYC", "QUERY", ("NOTHING",)))
    kind = socket.SOCK_DGRAM if mode == "UDP" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.settimeout(0.5)
        try:
            if mode == "UDP":
                s.sendto(query, ("127.0.0.1", port))
                s.recvfrom(1500)
            else:
                s.connect(("127.0.0.1", port))
                s.sendall(query)
                s.recv(1500)
        except OSError:
            return False
    return True


def stop(proc, sig=signal.SIGTERM):
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


@contextlib.contextmanager
def running(args, **kw):
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, **kw)
    try:
        yield proc
    finally:
        stop(proc)


RPYC_REGISTRY = """
import logging, sys
from rpyc.utils.registry import UDPRegistryServer, TCPRegistryServer
logging.basicConfig(level=logging.DEBUG)
cls = UDPRegistryServer if sys.argv[1] == "UDP" else TCPRegistryServer
cls(host="127.0.0.1", port=int(sys.argv[2]), pruning_timeout=float(sys.argv[3]),
    allow_listing=True).start()
"""


@contextlib.contextmanager
def rpyc_registry(mode, port, pruning_timeout=240):
    """rpyc's own registry server (rpyc_registry's class), bound to loopback."""
    with running([sys.executable, "-c", RPYC_REGISTRY, mode, str(port), str(pruning_timeout)]) as p:
        wait_until("rpyc's registry answers", lambda: p.poll() is not None or registry_answers(mode, port))
        assert p.poll() is None, "rpyc's registry exited"
        yield p


@contextlib.contextmanager
def pybridge_registry(mode, port, *extra, logfile=None):
    args = [str(PYBRIDGE), "registry", "--host", "127.0.0.1", "-m", mode, "-p", str(port), *extra]
    if logfile:
        args += ["--logfile", str(logfile)]
    with running(args) as p:
        wait_until("pybridge registry answers", lambda: p.poll() is not None or registry_answers(mode, port))
        assert p.poll() is None, "pybridge registry exited"
        yield p


KINDS = ["rpyc", "pybridge"]


def start_registry(kind, mode, port, pruning_timeout=None):
    """rpyc's registry or pybridge's, with listing allowed."""
    if kind == "rpyc":
        return rpyc_registry(mode, port, pruning_timeout or 240)
    extra = ["--listing"]
    if pruning_timeout:
        extra += ["--timeout", str(pruning_timeout)]
    return pybridge_registry(mode, port, *extra)


def register_args(mode, port, *extra):
    return ["--register", "--registry-type", mode, "--registry-host", "127.0.0.1",
            "--registry-port", str(port), *extra]


def rpyc_classic_args(port, mode, reg_port):
    # rpyc_classic's --registry-type goes through plumbum's case-insensitive Set, which
    # (plumbum 2.x) hands back "udp", and rpyc_classic compares it with "UDP": given
    # explicitly, even "UDP" makes it register over TCP. Its default (no flag) is UDP.
    reg = ["--register", "--registry-host", "127.0.0.1", "--registry-port", str(reg_port)]
    if mode == "TCP":
        reg += ["--registry-type", "TCP"]
    return [str(VENV_BIN / "rpyc_classic"), "--host", "127.0.0.1", "-p", str(port), "-q", *reg]


@contextlib.contextmanager
def pybridge_serve(*args, port=None, **kw):
    port = port or free_port()
    with running(pybridge_args("--port", str(port), *args), **kw) as p:
        wait_port(port, p)
        yield p, port


def discovered(mode, reg_port, name, port):
    """True when the registry lists 127.0.0.1:port under name (rpyc.discover raises
    DiscoveryError when it finds nothing)."""
    try:
        addrs = rpyc.discover(name, registrar=registrar(mode, reg_port))
    except rpyc.utils.factory.DiscoveryError:
        return False
    return ("127.0.0.1", port) in [tuple(a) for a in addrs]


# --- pybridge serve --register, with rpyc's registry and with pybridge's ----------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", MODES)
def test_serve_registers_is_found_and_unregisters_on_sigterm(kind, mode):
    reg_port = free_port_for(mode)
    with start_registry(kind, mode, reg_port):
        with pybridge_serve("--classic", *register_args(mode, reg_port)) as (proc, port):
            wait_until("registered", lambda: discovered(mode, reg_port, "SLAVE", port))
            # rpyc_classic registers SlaveService, whose only alias is SLAVE; names are
            # case-insensitive
            assert ("127.0.0.1", port) in rpyc.discover("slave", registrar=registrar(mode, reg_port))
            c = rpyc.connect_by_service("SLAVE", registrar=registrar(mode, reg_port), service=MasterService)
            assert c.eval("6 * 7") == 42
            c.close()
            assert "SLAVE" in rpyc.list_services(registrar=registrar(mode, reg_port))
            assert stop(proc) == 0
        # pybridge waits for the registry's reply to UNREGISTER before it exits
        assert registrar(mode, reg_port).discover("SLAVE") == ()
        with pytest.raises(rpyc.utils.factory.DiscoveryError):
            rpyc.connect_by_service("SLAVE", registrar=registrar(mode, reg_port))


SERVICE_MODULE = """
import rpyc

class CalcService(rpyc.Service):
    ALIASES = ["calc", "adder"]

    def exposed_add(self, a, b):
        return a + b

class EchoService(rpyc.Service):
    def exposed_echo(self, x):
        return x
"""


@pytest.mark.parametrize("mode", MODES)
def test_service_registers_its_aliases(tmp_path, mode):
    (tmp_path / "calcmod.py").write_text(SERVICE_MODULE)
    reg_port = free_port_for(mode)
    with rpyc_registry(mode, reg_port):
        with pybridge_serve("--service", "calcmod:CalcService", *register_args(mode, reg_port), cwd=tmp_path) as (_, port), \
             pybridge_serve("--service", "calcmod:EchoService", *register_args(mode, reg_port), cwd=tmp_path) as (_, port2):
            for name in ("CALC", "adder"):
                wait_until(f"{name} registered", lambda name=name: discovered(mode, reg_port, name, port))
            wait_until("ECHO registered", lambda: discovered(mode, reg_port, "ECHO", port2))
            c = rpyc.connect_by_service("adder", registrar=registrar(mode, reg_port))
            assert c.root.add(2, 3) == 5
            assert c.root.get_service_name() == "CALC"
            c.close()
            c = rpyc.connect_by_service("echo", registrar=registrar(mode, reg_port))
            assert c.root.echo("x") == "x"
            c.close()
            assert sorted(rpyc.list_services(registrar=registrar(mode, reg_port))) == ["ADDER", "CALC", "ECHO"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", MODES)
def test_serve_registers_again_after_the_registry_restarts(kind, mode):
    reg_port = free_port_for(mode)
    with pybridge_serve("--classic", *register_args(mode, reg_port, "--registry-interval", "1s")) as (_, port):
        with start_registry(kind, mode, reg_port):
            wait_until("registered", lambda: discovered(mode, reg_port, "SLAVE", port))
        # a new registry on the same port knows nothing until the server renews
        with start_registry(kind, mode, reg_port):
            wait_until("registered again", lambda: discovered(mode, reg_port, "SLAVE", port))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", MODES)
def test_renewals_outlive_pruning(kind, mode):
    """A registration that is not renewed is pruned; the server's renewals keep it."""
    reg_port = free_port_for(mode)
    with start_registry(kind, mode, reg_port, pruning_timeout=3):
        # a server that registered once and died without unregistering
        assert registrar(mode, reg_port).register(("SLAVE",), 1) is True
        assert discovered(mode, reg_port, "SLAVE", 1)
        with pybridge_serve("--classic", *register_args(mode, reg_port, "--registry-interval", "1s")) as (_, port):
            wait_until("the stale one pruned while the live one stays",
                       lambda: not discovered(mode, reg_port, "SLAVE", 1) and discovered(mode, reg_port, "SLAVE", port))


def test_registration_failure_is_not_fatal_and_is_retried(tmp_path):
    reg_port = free_udp_port()
    log = tmp_path / "serve.log"
    args = pybridge_args("--classic", *register_args("UDP", reg_port), "--logfile", str(log))
    port = free_port()
    with running([*args, "--port", str(port)]) as proc:
        wait_port(port, proc)
        # no registry yet: logged, and the server serves
        wait_until("failure logged", lambda: "registration failed" in log.read_text())
        c = rpyc.classic.connect("127.0.0.1", port)
        assert c.eval("1 + 1") == 2
        c.close()
        # the registry comes up: the retry registers
        with pybridge_registry("UDP", reg_port):
            wait_until("registered", lambda: discovered("UDP", reg_port, "SLAVE", port))
            assert stop(proc) == 0
            assert registrar("UDP", reg_port).discover("SLAVE") == ()


def test_register_flag_errors():
    def run(*args):
        return subprocess.run([str(PYBRIDGE), "serve", "--classic", *args], capture_output=True, text=True, timeout=60)
    r = run("--register", "--registry-type", "TCP")
    assert r.returncode == 2 and "--registry-host" in r.stderr
    r = run("--register", "--registry-type", "SCTP")
    assert r.returncode == 2 and "UDP or TCP" in r.stderr
    r = run("--register", "--unix", "/tmp/x.sock")
    assert r.returncode == 2 and "--unix" in r.stderr


def test_oneshot_unregisters_after_its_connection():
    reg_port = free_udp_port()
    with pybridge_registry("UDP", reg_port):
        port = free_port()
        with running(pybridge_args("--classic", "-m", "oneshot", "-p", str(port), *register_args("UDP", reg_port))) as proc:
            # no probe connection: it would be the one connection served
            wait_until("registered", lambda: discovered("UDP", reg_port, "SLAVE", port))
            c = rpyc.connect_by_service("SLAVE", registrar=registrar("UDP", reg_port), service=MasterService)
            assert c.eval("2 ** 10") == 1024
            c.close()
            assert proc.wait(60) == 0
        assert registrar("UDP", reg_port).discover("SLAVE") == ()


# --- pybridge registry with rpyc's own servers ------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_rpyc_classic_registers_with_pybridge_registry(mode):
    reg_port = free_port_for(mode)
    port = free_port()
    with pybridge_registry(mode, reg_port):
        with running(rpyc_classic_args(port, mode, reg_port)) as proc:
            wait_port(port, proc)
            wait_until("rpyc_classic registered", lambda: discovered(mode, reg_port, "SLAVE", port))
            c = rpyc.connect_by_service("SLAVE", registrar=registrar(mode, reg_port), service=MasterService)
            assert c.eval("6 * 7") == 42
            c.close()
            # rpyc's server unregisters when it closes (on KeyboardInterrupt; it does not
            # handle SIGTERM)
            stop(proc, signal.SIGINT)
        wait_until("rpyc_classic unregistered", lambda: registrar(mode, reg_port).discover("SLAVE") == ())


@pytest.mark.parametrize("mode", MODES)
def test_rpyc_registrar_against_pybridge_registry(mode):
    """rpyc's registrar methods, and what rpyc's registry answers them, from ours."""
    reg_port = free_port_for(mode)
    with pybridge_registry(mode, reg_port, "--listing"):
        r = registrar(mode, reg_port)
        assert r.register(("Alpha", "beta"), 1001) is True
        assert r.register(("ALPHA",), 1002) is True
        assert r.discover("alpha") == (("127.0.0.1", 1001), ("127.0.0.1", 1002))
        assert r.discover("BETA") == (("127.0.0.1", 1001),)
        assert r.discover("gamma") == ()
        assert r.list() == ("ALPHA", "BETA")
        assert r.list("127.0.0.1") == ("ALPHA", "BETA")
        assert r.list("10.1.2.3") == ()
        r.unregister(1001)
        wait_until("unregistered", lambda: r.discover("BETA") == ())
        assert r.discover("ALPHA") == (("127.0.0.1", 1002),)
        assert rpyc.list_services(registrar=r) == ("ALPHA",)


def test_listing_is_off_by_default():
    reg_port = free_udp_port()
    with pybridge_registry("UDP", reg_port):
        r = registrar("UDP", reg_port)
        assert r.register(("X",), 1) is True
        assert r.list() is None
        with pytest.raises(rpyc.utils.factory.ForbiddenError):
            rpyc.list_services(registrar=r)


def test_rpyc_registry_flags_are_accepted(tmp_path):
    """rpyc_registry's own spellings: -m tcp, -t SECONDS, -l WORD, -q WORD."""
    reg_port = free_port()
    with pybridge_registry("tcp", reg_port, "-t", "100", "-l", "true", "-q", "1") as proc:
        r = registrar("TCP", reg_port)
        assert r.register(("X",), 1) is True
        assert r.list() == ("X",)
        assert proc.poll() is None


def test_pybridge_registry_ignores_bad_requests(tmp_path):
    log = tmp_path / "registry.log"
    udp_port = free_udp_port()
    tcp_port = free_port()
    junk = [b"", b"\x00", b"GET / HTTP/1.0\r\n\r\n", os.urandom(1400),
            brine.dump(("RPYC", "NOPE", ())), brine.dump(("XXXX", "QUERY", ("A",))),
            brine.dump(("RPYC", "REGISTER", ("A", "B"))), brine.dump(("RPYC", "QUERY", (1, 2))),
            brine.dump(("RPYC", "REGISTER", (("A",), 1.5))), brine.dump(("RPYC", "_remove_service", ("A", ("h", 1))))]
    with pybridge_registry("UDP", udp_port, logfile=log) as udp, pybridge_registry("TCP", tcp_port) as tcp:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.5)
            for j in junk:
                s.sendto(j, ("127.0.0.1", udp_port))
            # datagrams are served in order: junk gets no reply, so the first reply is
            # the answer to the query sent after it all
            s.sendto(brine.dump(("RPYC", "QUERY", ("A",))), ("127.0.0.1", udp_port))
            s.settimeout(DEADLINE)
            assert brine.load(s.recvfrom(1500)[0]) == ()
        for j in junk:
            with socket.create_connection(("127.0.0.1", tcp_port), timeout=DEADLINE) as s:
                s.sendall(j)
                s.shutdown(socket.SHUT_WR)
                assert s.recv(100) == b""  # closed without a reply
        for mode, port in (("UDP", udp_port), ("TCP", tcp_port)):
            r = registrar(mode, port)
            assert r.register(("OK",), 7) is True
            assert r.discover("OK") == (("127.0.0.1", 7),)
        assert udp.poll() is None and tcp.poll() is None
        assert "ignored a registry request" in log.read_text()


def test_pybridge_registry_serves_rpyc_and_pybridge_servers_together():
    """One pybridge registry, rpyc_classic and pybridge serve --service registered in it."""
    reg_port = free_udp_port()
    with pybridge_registry("UDP", reg_port, "--listing"):
        rport = free_port()
        with running(rpyc_classic_args(rport, "UDP", reg_port)) as rpyc_proc, \
             pybridge_serve("--service", "echo_service:EchoService", *register_args("UDP", reg_port),
                            cwd=SERVE_DIR) as (_, pport):
            wait_port(rport, rpyc_proc)
            wait_until("both registered", lambda: discovered("UDP", reg_port, "SLAVE", rport)
                       and discovered("UDP", reg_port, "ECHO", pport))
            assert sorted(rpyc.list_services(registrar=registrar("UDP", reg_port))) == ["ECHO", "SLAVE"]
            c = rpyc.connect_by_service("ECHO", registrar=registrar("UDP", reg_port))
            assert c.root.greeting == "hello"
            c.close()


def test_registry_help_and_bad_flags():
    r = subprocess.run([str(PYBRIDGE), "registry", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "rpyc_registry" in r.stderr
    r = subprocess.run([str(PYBRIDGE), "registry", "-m", "SCTP"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "UDP or TCP" in r.stderr
    r = subprocess.run([str(PYBRIDGE), "registry", "-t", "soon"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
