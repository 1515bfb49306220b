"""Threads of one connection hand replies to each other: a thread that reads a reply
another thread waits for files it before it lets the next reader in. If the waiter could
take the receive lock first, it would find no reply yet and block reading the transport
for a message that was already read (until its timeout, or forever)."""
import threading

from peerkit import FakeTransport

from pybridge import consts
from pybridge.protocol import Connection


def test_a_reply_read_by_another_thread_reaches_its_waiter():
    transport = FakeTransport()
    conn = Connection(transport, mode="classic", dialect="6", config={"sync_request_timeout": 5})
    conn._setup()

    # the reader is slow between reading a message and routing it (a GIL switch, a
    # busy machine): wide open, the window the waiter must not fall into
    route = conn._route_reply

    def slow_route(*args):
        threading.Event().wait(0.3)
        return route(*args)
    conn._route_reply = slow_route

    readers = []
    recv = transport.recv

    def recording_recv(timeout):
        readers.append(threading.current_thread().name)
        if threading.current_thread().name == "waiter":
            timeout = 0.5  # do not stall the test: that it read at all is the failure
        return recv(timeout)
    transport.recv = recording_recv

    reading = threading.Thread(target=conn.serve, args=(10,), name="reader")  # A holds the lock, reads
    reading.start()
    result = {}

    def waiter():  # thread B: a request of its own, waiting while A reads
        try:
            result["value"] = conn.sync_request(consts.HANDLE_PING, b"ping")
        except Exception as e:
            result["error"] = e
    waiting = threading.Thread(target=waiter, name="waiter")
    waiting.start()
    kind, seq, _ = transport.sent.get(timeout=10)
    assert kind == consts.MSG_REQUEST
    transport.inbox.put((consts.MSG_REPLY, seq, (consts.LABEL_VALUE, b"ping")))  # A reads it

    waiting.join(10)
    reading.join(10)
    assert result == {"value": b"ping"}
    assert readers == ["reader"], "the waiter read the transport for a reply already read"
