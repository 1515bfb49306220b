"""Robustness that rpyc's own server has and clients rely on (issue: hardening)."""
import socket
import struct
import time
import zlib

import pytest
import rpyc

from servers import client_internal


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
        if hasattr(c, "stop_sending"):
            # rpyc-ng writes from a thread of its own: have it flush (and stop) first
            c.stop_sending()
        client_internal(c, "channel").stream.sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + 10
        while not res.ready and time.monotonic() < deadline:
            c.serve(0.5)
        assert res.ready and res.value == b"half"
    finally:
        c.close()


def _status_kib(pid, field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


_bombs = {}


def _zlib_bomb(inflated=640 << 20):
    """A frame payload of ~0.6 MB that inflates past the 512 MiB limit."""
    if inflated not in _bombs:
        z = zlib.compressobj(9)
        chunk = b"\0" * (1 << 20)
        parts = [z.compress(chunk) for _ in range(inflated // len(chunk))]
        parts.append(z.flush())
        _bombs[inflated] = b"".join(parts)
    return _bombs[inflated]


def test_zlib_bomb_is_refused_without_keeping_memory(classic_server):
    pid = classic_server.proc.pid
    payload = _zlib_bomb()
    assert len(payload) < 2 << 20
    base = _status_kib(pid, "VmRSS")
    peak = max(base, _status_kib(pid, "VmHWM"))
    for _ in range(2):
        s = socket.create_connection(("127.0.0.1", classic_server.port))
        s.sendall(struct.pack(">IB", len(payload), 1) + payload + b"\n")
        s.settimeout(30)
        assert s.recv(100) == b""  # the server hangs up on a frame over the inflate limit
        s.close()
    # memory stays far below the 640 MiB the bomb holds, and what was used goes back
    # once the bomb is refused
    assert _status_kib(pid, "VmHWM") - peak < 300 << 10
    deadline = time.monotonic() + 15
    while _status_kib(pid, "VmRSS") - base > 100 << 10 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _status_kib(pid, "VmRSS") - base < 100 << 10
    c = rpyc.classic.connect("127.0.0.1", classic_server.port)
    assert c.eval("1 + 1") == 2
    c.close()


def test_claimed_frame_length_reserves_nothing(classic_server):
    # frames that claim 400 MiB and never send it cost the server nothing up front
    pid = classic_server.proc.pid
    base = _status_kib(pid, "VmRSS")
    socks = []
    for _ in range(10):
        s = socket.create_connection(("127.0.0.1", classic_server.port))
        s.sendall(struct.pack(">IB", 400 << 20, 0) + b"\x12" * 1000)
        socks.append(s)
    time.sleep(1)
    assert _status_kib(pid, "VmRSS") - base < 50 << 10
    c = rpyc.classic.connect("127.0.0.1", classic_server.port)
    assert c.eval("2 + 2") == 4
    c.close()
    for s in socks:
        s.close()


def test_accept_survives_running_out_of_descriptors():
    import resource
    import subprocess
    from servers import Server, free_port, pybridge_args

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    port = free_port()
    srv = Server.__new__(Server)
    srv.port = port
    srv.proc = subprocess.Popen(pybridge_args("--classic", "--port", str(port)),
                                stdin=subprocess.DEVNULL, preexec_fn=low_limit)
    try:
        from servers import wait_port
        wait_port(port, srv.proc)
        flood = []
        for _ in range(100):  # more than the server has descriptors for
            s = socket.create_connection(("127.0.0.1", port))
            flood.append(s)
        time.sleep(1)
        for s in flood:
            s.close()
        time.sleep(0.5)
        assert srv.proc.poll() is None, "the server exited"
        deadline = time.monotonic() + 20
        while True:
            try:
                c = rpyc.classic.connect("127.0.0.1", port)
                assert c.eval("3 * 3") == 9
                c.close()
                break
            except (EOFError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        srv.stop()


def _nested(depth):
    v = ()
    for _ in range(depth):
        v = (v,)
    return v


def test_large_and_deep_values_that_rpyc_carries(conn):
    echo = conn.eval("lambda x: x")
    deep = _nested(60)
    assert echo(deep) == deep
    many = tuple(range(1_100_000))
    assert echo(many) == many


def test_value_over_a_limit_fails_that_request_only(conn):
    echo = conn.eval("lambda x: x")
    with pytest.raises(Exception) as info:
        echo(_nested(300))  # past the 256 limit; rpyc itself cannot dump ~490
    assert "nested deeper" in str(info.value)
    assert conn.eval("7 * 6") == 42  # the connection lives on


def test_pipelined_requests_with_large_replies_all_complete(conn):
    # many async requests sent before any reply is read: the replies back up behind
    # the client, the requests behind the hosted code; every one is still answered
    # (a relay that waits to hand a request over while the worker waits to hand it
    # a reply never moves again)
    urandom = rpyc.async_(conn.modules.os.urandom)
    results = [urandom(64 << 10) for _ in range(600)]
    for r in results:
        r.set_expiry(30)
    assert [len(r.value) for r in results] == [64 << 10] * 600
    assert conn.eval("6 * 7") == 42


@pytest.mark.parametrize("compress", [True, False], ids=["compressed", "plain"])
def test_pipelined_requests_of_every_size_get_their_own_answers(conn, compress):
    # requests sent back to back, frames of every size mixed: small ones arrive several
    # to a read, large ones (compressed by rpyc past 3000 bytes, or over 64 KiB
    # uncompressed) between them; each is answered with its own result, in order
    client_internal(conn, "channel").compress = compress
    try:
        size = rpyc.async_(conn.builtins.len)
        sizes = [1, 100, 2999, 3001, 5000, 70000, 10, 200000, 7] * 25
        results = [size(bytes(n)) for n in sizes]
        for r in results:
            r.set_expiry(30)
        assert [r.value for r in results] == sizes
        assert conn.eval("6 * 7") == 42
    finally:
        client_internal(conn, "channel").compress = True


def test_unread_replies_do_not_pile_up_in_the_server(classic_server):
    # a client that sends and never reads: TCP stops the server, not its memory
    pid = classic_server.proc.pid

    def tree_rss():
        import pathlib
        total, stack = 0, [pid]
        while stack:
            p = stack.pop()
            try:
                total += _status_kib(p, "VmRSS")
                for task in pathlib.Path(f"/proc/{p}/task").iterdir():
                    stack.extend(int(k) for k in (task / "children").read_text().split())
            except (FileNotFoundError, ProcessLookupError):
                pass
        return total

    base = tree_rss()
    c = rpyc.classic.connect("127.0.0.1", classic_server.port)
    urandom = rpyc.async_(c.modules.os.urandom)
    for _ in range(300):
        urandom(1 << 20)
    time.sleep(3)
    assert tree_rss() - base < 150 << 10  # 300 MiB of replies were asked for
    # hang up without the CLOSE handshake: rpyc 6's close() waits for a reply that
    # queues behind the unread ones (against rpyc's own server too)
    client_internal(c, "channel").stream.sock.shutdown(socket.SHUT_RDWR)
    client_internal(c, "channel").stream.sock.close()
    c = rpyc.classic.connect("127.0.0.1", classic_server.port)
    assert c.eval("5 + 5") == 10
    c.close()


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_signal_lets_requests_in_flight_finish(sig):
    import signal
    import subprocess
    from servers import free_port, pybridge_args, wait_port
    port = free_port()
    proc = subprocess.Popen(pybridge_args("--classic", "--port", str(port), "--log-level", "info"),
                            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_port(port, proc)
        busy = rpyc.classic.connect("127.0.0.1", port)
        idle = rpyc.classic.connect("127.0.0.1", port)
        assert idle.eval("1") == 1
        slow = rpyc.async_(busy.modules.time.sleep)(1.5)
        time.sleep(0.3)  # the sleep is running in the server
        proc.send_signal(getattr(signal, sig))
        slow.wait()  # raises if the request was cut off
        assert not slow.error
        with pytest.raises(EOFError):
            for _ in range(50):  # the idle connection is closed
                idle.eval("1")
                time.sleep(0.1)
        assert proc.wait(20) == 0
        err = proc.stderr.read()
        assert "shutting down" in err and "stopped" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
