"""Stdio mode, TLS, and rpyc 5.x and 6.x clients on one port at the same time."""
import subprocess

import pytest
import rpyc

from servers import pybridge_args, pybridge_server, venv_python

HOSTED_NOISE = (
    "print('print from hosted code')\n"
    "import os, sys\n"
    "os.system('echo from a child process')\n"
    "os.write(1, b'raw bytes on fd 1\\n')\n"
    "sys.stdout.write('via sys.stdout\\n'); sys.stdout.flush()\n"
)


def test_stdio_mode_survives_fd_level_writes():
    # worker output is logged at level info, on stderr
    # unbuffered pipes: rpyc-ng's PipeStream loses the fds of buffered ones (detach())
    proc = subprocess.Popen(pybridge_args("--classic", "--mode", "stdio", "--log-level", "info"),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    try:
        c = rpyc.classic.connect_pipes(proc.stdout, proc.stdin)
        c.execute(HOSTED_NOISE)
        assert c.eval("6 * 7") == 42
        assert c.modules.math.factorial(10) == 3628800
        c.close()
        assert proc.wait(30) == 0
        assert b"raw bytes on fd 1" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"),
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=60)
    return d


def test_tls_with_ssl_connect(certs):
    with pybridge_server("--classic", "--ssl-keyfile", str(certs / "key.pem"),
                         "--ssl-certfile", str(certs / "cert.pem")) as srv:
        c = rpyc.classic.ssl_connect("127.0.0.1", srv.port, ca_certs=str(certs / "cert.pem"))
        assert c.modules.math.sqrt(16) == 4.0
        c.close()


OTHER_CLIENT = """
import sys, rpyc
c = rpyc.classic.connect("127.0.0.1", int(sys.argv[1]))
total = 0
for i in range(200):
    total += c.eval(f"{i} * 2")
assert list(c.builtins.sorted([3, 1, 2], key=lambda x: -x)) == [3, 2, 1]
print(rpyc.__version__, total)
c.close()
"""


def test_rpyc5_and_rpyc6_clients_at_once():
    other = "rpyc5" if rpyc.__version__.startswith("6") else "rpyc6"
    with pybridge_server("--classic") as srv:
        mine = rpyc.classic.connect("127.0.0.1", srv.port)
        proc = subprocess.Popen([venv_python(other), "-c", OTHER_CLIENT, str(srv.port)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            total = sum(mine.eval(f"{i} * 2") for i in range(200))
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, err
        version, their_total = out.split()
        assert version[0] != rpyc.__version__[0]
        assert int(their_total) == total == sum(i * 2 for i in range(200))
        mine.close()


def test_crash_isolation():
    # a worker per connection: the crashing clients cannot take the survivor's worker along
    with pybridge_server("--classic", "--workers", "2", "--isolation", "connection") as srv:
        survivor = rpyc.classic.connect("127.0.0.1", srv.port)
        victim = rpyc.classic.connect("127.0.0.1", srv.port)
        assert survivor.modules.os.getpid() != victim.modules.os.getpid()
        with pytest.raises((EOFError, ConnectionError, OSError)):
            victim.modules.os._exit(1)
        assert survivor.eval("1 + 1") == 2
        fresh = rpyc.classic.connect("127.0.0.1", srv.port)
        assert fresh.eval("2 + 2") == 4
        with pytest.raises((EOFError, ConnectionError, OSError)):
            fresh.execute("import ctypes; ctypes.string_at(0)")
        again = rpyc.classic.connect("127.0.0.1", srv.port)
        assert again.eval("3 + 3") == 6
        assert survivor.eval("4 + 4") == 8
        for c in (survivor, again):
            c.close()
