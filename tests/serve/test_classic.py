"""rpyc.classic clients against `pybridge serve --classic`, used exactly as against
rpyc_classic."""
import gc
import io
import math
import sys
import threading
import time

import pytest
import rpyc
from rpyc.utils.classic import obtain, deliver, teleport_function

from servers import client_internal


def test_modules_attribute_and_item(conn):
    assert conn.modules.math.sqrt(2) == math.sqrt(2)
    assert conn.modules["os.path"].join("a", "b") == "a/b"
    assert conn.modules.sys.version_info[0] == 3


def test_module_membership(conn):
    assert "json" in conn.modules
    assert "no_such_module_here" not in conn.modules


def test_eval_execute_namespace(conn):
    assert conn.eval("6 * 7") == 42
    conn.execute("answer = 40 + 2")
    assert conn.namespace["answer"] == 42
    assert conn.eval("answer") == 42


def test_builtin_exception_with_remote_traceback(conn):
    with pytest.raises(ZeroDivisionError) as ei:
        conn.eval("1 / 0")
    assert "Remote Traceback" in str(ei.value)
    with pytest.raises(KeyError):
        conn.eval("{}['missing']")


def test_custom_exception(conn):
    conn.execute("class AppError(Exception):\n    pass\n")
    with pytest.raises(Exception) as ei:
        conn.execute("raise AppError('custom failure')")
    assert "custom failure" in str(ei.value)
    assert "AppError" in str(ei.value)


def test_callbacks_sorted_key_and_map(conn):
    assert list(conn.builtins.sorted([3, 1, 2], key=lambda x: -x)) == [3, 2, 1]
    calls = []

    def double(x):
        calls.append(x)
        return x * 2

    assert list(conn.builtins.map(double, [1, 2, 3])) == [2, 4, 6]
    assert calls == [1, 2, 3]


def test_netref_list_and_dict(conn):
    lst = conn.builtins.list([1, 2, 3])
    lst.append(4)
    assert len(lst) == 4 and lst[-1] == 4 and 2 in lst
    lst[0] = 10
    del lst[1]
    assert list(lst) == [10, 3, 4]
    d = conn.builtins.dict(a=1)
    d["b"] = 2
    assert sorted(d.keys()) == ["a", "b"] and d["b"] == 2
    assert dict(d.items()) == {"a": 1, "b": 2}


def test_iteration_operators_isinstance(conn):
    r = conn.builtins.range(5)
    assert list(iter(r)) == [0, 1, 2, 3, 4]
    n = conn.eval("[1, 2]")
    assert list(n * 2) == [1, 2, 1, 2]
    assert n == n and len(n) == 2
    assert conn.eval("7") < 8 and -conn.eval("3") == -3
    assert isinstance(n, list)
    assert conn.eval("2 ** 100") + 1 == 2 ** 100 + 1


def test_context_manager(conn):
    conn.execute(
        "class Ctx:\n"
        "    def __init__(self): self.log = []\n"
        "    def __enter__(self): self.log.append('enter'); return self\n"
        "    def __exit__(self, *a): self.log.append('exit'); return False\n"
        "ctx = Ctx()\n"
    )
    ctx = conn.namespace["ctx"]
    with ctx as c:
        c.log.append("body")
    assert list(ctx.log) == ["enter", "body", "exit"]


def test_setattr_delattr(conn):
    conn.execute("class Box: pass\nbox = Box()\n")
    box = conn.namespace["box"]
    box.value = 5
    assert conn.eval("box.value") == 5
    del box.value
    assert conn.eval("hasattr(box, 'value')") is False


@pytest.mark.parametrize("value", [
    None, True, False, 0, -48, 159, 160, -49, 2 ** 63, -(2 ** 100), 1.5, float("inf"), 1 + 2j,
    "", "héllo ✓", b"", b"\x00\xff" * 10, (), (1, (2, "x")), frozenset({1, 2}), slice(1, 10, 2),
    Ellipsis, NotImplemented,
])
def test_every_brine_type_round_trips(conn, value):
    echo = conn.eval("lambda x: x")
    assert echo(value) == value
    assert type(echo(value)) is type(value)


def test_a_result_that_cannot_be_encoded_fails_alone(conn):
    # a str with a lone surrogate has no UTF-8 (rpyc's own server drops the connection);
    # the client gets the encoding error (as a RuntimeError's text: the error's own
    # arguments hold the surrogate) and the connection goes on
    for _ in range(3):
        with pytest.raises(Exception, match="UnicodeEncodeError"):
            conn.eval("'\\ud800'")
        assert conn.eval("1 + 1") == 2


def test_an_int_of_4301_digits_fails_alone(conn):
    # CPython converts str <-> int of at most 4300 digits: the server refuses one more
    # (as over a limit) before Python sees it, and the connection goes on
    echo = conn.eval("lambda x: x")
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)  # lets this client write it
    try:
        with pytest.raises(ValueError, match="refused"):
            echo(10 ** 4300)
        with pytest.raises(ValueError, match="refused"):
            echo(-10 ** 4300)
    finally:
        sys.set_int_max_str_digits(old)
    assert echo(10 ** 4299) == 10 ** 4299
    assert echo(-10 ** 4299) == -10 ** 4299


def test_big_payloads(conn):
    data = bytes(range(256)) * (2 * 1024 * 1024 // 256)
    echo = conn.eval("lambda x: x")
    assert echo(data) == data
    assert conn.eval("len") (data) == len(data)


def test_obtain_and_deliver(conn):
    remote = conn.eval("{'a': [1, 2, {'b': 3}]}")
    assert obtain(remote) == {"a": [1, 2, {"b": 3}]}
    delivered = deliver(conn, {"x": [1, 2]})
    assert conn.eval("lambda d: type(d).__name__")(delivered) == "dict"
    assert list(delivered["x"]) == [1, 2]


def test_buffiter(conn):
    remote = conn.builtins.list(range(100))
    assert list(rpyc.buffiter(remote, chunk=7)) == list(range(100))


def test_async_result(conn):
    asleep = rpyc.async_(conn.modules.time.sleep)
    res = asleep(0.05)
    res.wait()
    assert res.ready and not res.error
    apow = rpyc.async_(conn.builtins.pow)
    assert apow(2, 10).value == 1024
    afail = rpyc.async_(conn.eval)
    failed = afail("1/0")
    failed.wait()
    assert failed.error


def test_teleport_function(conn):
    def where(x):
        import os
        return (os.getpid(), x * 2)

    remote = teleport_function(conn, where)
    pid, doubled = remote(21)
    assert doubled == 42
    assert pid == conn.modules.os.getpid()


def test_bg_serving_thread_with_many_client_threads(conn):
    bg = rpyc.BgServingThread(conn)
    try:
        errors = []

        def work(i):
            try:
                for _ in range(20):
                    assert conn.builtins.sorted([i, 1, 2], key=lambda x: -x)[0] == max(i, 2)
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors
    finally:
        bg.stop()


def test_hosted_threads_call_back_while_requests_are_served(conn):
    # hosted threads call the client back while the client's requests keep coming:
    # their replies and the requests arrive mixed, and whichever thread reads finds
    # each reply its waiter
    bg = rpyc.BgServingThread(conn)
    try:
        conn.execute(
            "import threading\n"
            "def _call_back(cb, threads, n):\n"
            "    got = []\n"
            "    def run(k):\n"
            "        for j in range(n):\n"
            "            got.append(cb(k * 1000 + j))\n"
            "    ts = [threading.Thread(target=run, args=(k,)) for k in range(threads)]\n"
            "    for t in ts:\n"
            "        t.start()\n"
            "    return ts, got\n")
        ts, got = conn.namespace["_call_back"](lambda x: 2 * x, 3, 60)
        served = 0
        while any(t.is_alive() for t in ts):
            assert conn.eval(f"{served} * 7") == served * 7
            served += 1
        assert sorted(got) == sorted(2 * (k * 1000 + j) for k in range(3) for j in range(60))
        assert served > 0
    finally:
        bg.stop()


def test_redirected_stdio(conn):
    out = io.StringIO()
    with rpyc.classic.redirected_stdio(conn):
        conn.modules.sys.stdout = out
        conn.execute("print('hello from the server')")
    assert "hello from the server" in out.getvalue()


def test_upload_download(conn, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload" * 1000)
    remote_path = str(tmp_path / "remote.bin")
    rpyc.classic.upload(conn, str(src), remote_path)
    back = tmp_path / "back.bin"
    rpyc.classic.download(conn, remote_path, str(back))
    assert back.read_bytes() == src.read_bytes()


def test_many_connect_close_cycles(classic_server):
    for i in range(30):
        c = rpyc.classic.connect("127.0.0.1", classic_server.port)
        assert c.eval(f"{i} + 1") == i + 1
        c.close()


def test_client_object_table_drains(conn):
    def callback(x):
        return x + 1

    conn.execute("held = []")
    keep = conn.eval("lambda f: held.append(f) or f(1)")
    assert keep(callback) == 2
    assert len(client_internal(conn, "local_objects")._dict) > 0
    conn.execute("held.clear(); import gc; gc.collect()")
    conn.ping()  # DEL is async: a round trip after it has been sent
    deadline = time.monotonic() + 10
    while len(client_internal(conn, "local_objects")._dict) and time.monotonic() < deadline:
        gc.collect()
        conn.ping()
        time.sleep(0.05)
    assert len(client_internal(conn, "local_objects")._dict) == 0


def test_remote_exceptions_carry_no_version_warning(conn):
    # the worker reports the rpyc of its environment (or none), as rpyc's own server
    with pytest.raises(ZeroDivisionError) as info:
        conn.eval("1 / 0")
    assert "WARNING: Remote is on RPyC" not in str(info.value)
