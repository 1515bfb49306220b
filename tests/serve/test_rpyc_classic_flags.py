"""rpyc_classic's flags, as scripts that start it pass them to pybridge serve."""
import subprocess

import rpyc

from servers import PYBRIDGE, free_port, wait_port


def serve(*args):
    return subprocess.Popen([str(PYBRIDGE), "serve", "--classic", "-q", *args], stdin=subprocess.DEVNULL)


def test_oneshot_serves_one_connection_then_exits():
    port = free_port()
    # readiness from the log: a probe connection would be the one connection it serves
    proc = subprocess.Popen([str(PYBRIDGE), "serve", "--classic", "-m", "oneshot", "-p", str(port)],
                            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if "msg=serving" in line:
                break
        c = rpyc.classic.connect("127.0.0.1", port)
        assert c.eval("21 * 2") == 42
        c.close()
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_forking_gives_each_connection_its_own_process():
    port = free_port()
    proc = serve("--mode", "forking", "--port", str(port))
    try:
        wait_port(port, proc)
        a = rpyc.classic.connect("127.0.0.1", port)
        b = rpyc.classic.connect("127.0.0.1", port)
        pids = {a.modules.os.getpid(), b.modules.os.getpid()}
        assert len(pids) == 2 and proc.pid not in pids
        a.close()
        b.close()
    finally:
        proc.terminate()
        proc.wait(20)
