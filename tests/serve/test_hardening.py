"""Robustness that rpyc's own server has and clients rely on (issue: hardening)."""
import socket
import time

import rpyc


def test_client_silent_before_its_first_request(classic_server):
    # pools and lazily used connections connect first and speak later; the server must
    # not settle the client's dialect on a timer while neither side has said anything
    c = rpyc.connect("127.0.0.1", classic_server.port, config={"sync_request_timeout": 10})
    try:
        time.sleep(3)
        assert c.root.eval("6 * 7") == 42
    finally:
        c.close()


def test_requests_sent_just_before_close_are_served(classic_server, tmp_path):
    # fire-and-forget requests followed at once by close(): rpyc's own server runs
    # every one of them
    paths = [tmp_path / f"d{i}" for i in range(20)]
    for p in paths:
        c = rpyc.classic.connect("127.0.0.1", classic_server.port)
        rpyc.async_(c.modules.os.mkdir)(str(p))
        c.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(p.exists() for p in paths):
        time.sleep(0.05)
    missing = [p.name for p in paths if not p.exists()]
    assert missing == []


def test_half_closed_client_gets_its_reply(classic_server):
    # send a request, shut the sending half: the reply still comes, as from rpyc
    from rpyc.core import consts
    c = rpyc.classic.connect("127.0.0.1", classic_server.port)
    try:
        res = c.async_request(consts.HANDLE_PING, b"half")
        c._channel.stream.sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + 10
        while not res.ready and time.monotonic() < deadline:
            c.serve(0.5)
        assert res.ready and res.value == b"half"
    finally:
        c.close()
