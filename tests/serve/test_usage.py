"""`pybridge serve` used wrongly, as a new user would: one clear message, a non-zero exit
(2 for a bad flag, 1 when the environment does not allow serving), and nothing served or
destroyed meanwhile."""
import os
import socket
import subprocess

import pytest
import rpyc

from servers import PYBRIDGE, free_port, pybridge_args


def run(*args, cwd=None, timeout=30):
    return subprocess.run([str(PYBRIDGE), "serve", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("args, needle", [
    (["--classic", "--ssl-cafile", "/nonexistent/ca.pem"], "--ssl-certfile"),
    (["--classic", "--log-level", "verbose"], "--log-level"),
    (["--classic", "--protocol-config", '{"allow_publc_attrs": true}'], "allow_public_attrs"),
    (["--classic", "--protocol-config", '{"sync_request_timeout": "sixty"}'], "sync_request_timeout"),
    (["--classic", "--protocol-config", "[1, 2]"], "--protocol-config"),
    (["--classic", "--workers", "0"], "--workers"),
    (["--classic", "--service", "m:S"], "--classic"),
    (["--classic", "--pprof"], "--metrics-addr"),
    (["--classic", "--metrics-addr", "9100"], "--metrics-addr"),
])
def test_bad_flags_exit_2_with_one_message(args, needle):
    done = run(*args, "--port", str(free_port()))
    assert done.returncode == 2, done
    assert needle in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("source, needle", [
    (None, "No module named 'nosuchmod'"),
    ("def broken(:\n", "SyntaxError"),
    ("class Other:\n    pass\n", "has no attribute 'Svc'"),
    ("import not_installed_pkg_xyz\nclass Svc:\n    pass\n", "not_installed_pkg_xyz"),
])
def test_service_that_cannot_load_fails_before_serving(tmp_path, source, needle):
    module = "nosuchmod"
    if source is not None:
        module = "badsvc"
        (tmp_path / "badsvc.py").write_text(source)
    port = free_port()
    done = run("--service", f"{module}:Svc", "--port", str(port), "--quiet", cwd=str(tmp_path))
    assert done.returncode == 1, done
    assert needle in done.stderr
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_metrics_port_in_use_fails_before_serving():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = free_port()
        done = run("--classic", "--port", str(port), "--metrics-addr", f"127.0.0.1:{busy.getsockname()[1]}")
    assert done.returncode == 1, done
    assert "--metrics-addr" in done.stderr and "address already in use" in done.stderr
    assert "Traceback" not in done.stderr
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


@pytest.mark.parametrize("python", ["3.6", "3.8", "2.7"])
def test_unsupported_python_is_refused_with_one_message(python):
    path = __import__("shutil").which(f"python{python}") or os.path.expanduser(
        f"~/.pyenv/versions/{python}/bin/python{python}")
    candidates = [p for p in __import__("glob").glob(os.path.expanduser(f"~/.pyenv/versions/{python}.*/bin/python{python}"))]
    path = candidates[0] if candidates else __import__("shutil").which(f"python{python}")
    if not path:
        pytest.skip(f"no python{python} on this machine")
    done = run("--classic", "--python", path, "--port", str(free_port()))
    assert done.returncode == 1, done
    assert "3.9" in done.stderr and done.stderr.count("\n") <= 3, done.stderr
    assert "Traceback" not in done.stderr


def test_unix_socket_path_holding_a_file_is_left_alone(tmp_path):
    path = tmp_path / "precious.txt"
    path.write_text("keep me")
    done = run("--classic", "--unix", str(path))
    assert done.returncode == 1, done
    assert path.read_text() == "keep me"


def test_unix_socket_of_a_live_server_is_not_taken(tmp_path):
    path = tmp_path / "s.sock"
    first = subprocess.Popen(pybridge_args("--classic", "--unix", str(path)), stdin=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if path.exists():
                break
            __import__("time").sleep(0.05)
        done = run("--classic", "--unix", str(path))
        assert done.returncode == 1, done
        c = rpyc.classic.unix_connect(str(path))
        assert c.eval("1 + 1") == 2
        c.close()
    finally:
        first.terminate()
        first.wait(10)


def test_stale_unix_socket_is_replaced(tmp_path):
    path = tmp_path / "s.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()  # a socket file nobody listens on
    srv = subprocess.Popen(pybridge_args("--classic", "--unix", str(path)), stdin=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                c = rpyc.classic.unix_connect(str(path))
                break
            except OSError:
                __import__("time").sleep(0.05)
        assert c.eval("2 + 2") == 4
        c.close()
    finally:
        srv.terminate()
        srv.wait(10)


def exe_of(pid):
    return os.path.realpath(f"/proc/{pid}/exe")


@pytest.mark.parametrize("worker", ["embedded", "python"])
def test_spawned_worker_is_of_the_kind_asked_for(worker):
    """--worker embedded: a pybridge process with Python embedded hosts the client's
    objects, in a process of its own; --worker python: a Python process."""
    from servers import pybridge_server
    with pybridge_server("--classic", "--isolation", "shared", "--worker", worker, "--workers", "2") as srv:
        a = rpyc.classic.connect("127.0.0.1", srv.port)
        b = rpyc.classic.connect("127.0.0.1", srv.port)
        pid_a = a.modules.os.getpid()
        assert srv.proc.pid not in (pid_a, b.modules.os.getpid())  # workers, not the server itself
        host_exe = exe_of(pid_a)
        if worker == "embedded":
            assert host_exe == os.path.realpath(PYBRIDGE)
        else:
            assert os.path.basename(host_exe).startswith("python")
        assert a.eval("6 * 7") == 42 and b.modules.sys.executable == a.modules.sys.executable
        a.close()
        b.close()


def test_embedded_workers_refused_where_they_cannot_serve():
    done = run("--classic", "--isolation", "shared", "--worker", "embedded",
               "--metrics-addr", f"127.0.0.1:{free_port()}", "--port", str(free_port()))
    assert done.returncode == 1, done
    assert "--worker embedded" in done.stderr and "--metrics-addr" in done.stderr


def test_auto_workers_fall_back_to_python_when_embedded_ones_cannot_start(tmp_path):
    """An interpreter that embeds but whose embedded start fails (here a sitecustomize
    that exits when Python runs inside another program): --worker auto serves with
    Python workers, and says so; --worker embedded refuses to serve."""
    (tmp_path / "sitecustomize.py").write_text(
        "import os, sys\nif not getattr(sys, 'orig_argv', ['python']):\n    os._exit(3)\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    from servers import Server
    port = free_port()
    srv = Server(pybridge_args("--classic", "--port", str(port), "--isolation", "shared", "--worker", "auto",
                               "--log-level", "warn"), port, env=env)
    try:
        c = rpyc.classic.connect("127.0.0.1", port)
        assert os.path.basename(exe_of(c.modules.os.getpid())).startswith("python")
        assert c.eval("1 + 2") == 3
        c.close()
    finally:
        srv.stop()
    done = subprocess.run(pybridge_args("--classic", "--port", str(free_port()), "--isolation", "shared",
                                        "--worker", "embedded"),
                          capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 1, done
