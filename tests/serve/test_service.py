"""`pybridge serve --service module:Attr` serves an rpyc.Service file unchanged."""
import json
import os
import sys
import time

import pytest
import rpyc

from servers import HERE, Server, free_port, pybridge_args

STOCK_SERVICE = """
import sys
sys.path.insert(0, sys.argv[2])
from rpyc.utils.server import ThreadedServer
from echo_service import EchoService
import json
ThreadedServer(EchoService, hostname="127.0.0.1", port=int(sys.argv[1]),
               protocol_config=json.loads(sys.argv[3])).start()
"""


def start_service(tmp_path, protocol_config=None):
    port = free_port()
    env = dict(os.environ, ECHO_SERVICE_LOG=str(tmp_path / "events.log"))
    cfg = json.dumps(protocol_config or {})
    if os.environ.get("SERVE_TARGET") == "rpyc":
        return Server([sys.executable, "-c", STOCK_SERVICE, str(port), str(HERE), cfg], port, env=env)
    return Server(pybridge_args("--service", "echo_service:EchoService", "--port", str(port),
                                "--protocol-config", cfg), port, env=env, cwd=str(HERE))


@pytest.fixture
def service(tmp_path):
    srv = start_service(tmp_path)
    yield srv
    srv.stop()


def wait_log(tmp_path, line, timeout=10):
    path = tmp_path / "events.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and line in path.read_text().split():
            return True
        time.sleep(0.05)
    return False


def test_exposed_members_and_lifecycle(service, tmp_path):
    c = rpyc.connect("127.0.0.1", service.port)
    assert c.root.greeting == "hello"
    assert c.root.echo((1, "two", b"3")) == (1, "two", b"3")
    with pytest.raises(AttributeError):
        c.root.hidden()
    assert wait_log(tmp_path, "connected")
    c.close()
    assert wait_log(tmp_path, "disconnected")


def test_public_attrs_need_protocol_config(tmp_path):
    srv = start_service(tmp_path)
    try:
        c = rpyc.connect("127.0.0.1", srv.port)
        p = c.root.point(3, 4)
        with pytest.raises(AttributeError):
            p.x
        c.close()
    finally:
        srv.stop()
    srv = start_service(tmp_path, {"allow_public_attrs": True})
    try:
        c = rpyc.connect("127.0.0.1", srv.port)
        p = c.root.point(3, 4)
        assert p.x == 3 and p.norm2() == 25
        c.close()
    finally:
        srv.stop()


class ClientService(rpyc.Service):
    def exposed_double(self, x):
        return 2 * x


def test_server_calls_client_service_through_conn_root(service):
    c = rpyc.connect("127.0.0.1", service.port, service=ClientService)
    assert c.root.ask_client(21) == 42
    c.close()
