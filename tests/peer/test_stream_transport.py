"""The worker's connection transport carries frames of every size intact, however the
stream splits them: small ones read in chunks, large ones straight into a buffer of
their own size."""
import os
import random
import socket
import threading

from pybridge import codec, consts
from pybridge.worker import StreamTransport

RNG = random.Random(7)
BODIES = [os.urandom(n) for n in (0, 1, 100, 65_000, 65_536, 65_537, 300_000, 3 << 20)]
BODIES += [os.urandom(RNG.randrange(1 << 18)) for _ in range(20)]


def receive_all(transport):
    for seq, body in enumerate(BODIES):
        assert transport.recv(None) == (consts.MSG_REPLY, seq, (body, seq))


def test_frames_sent_by_the_transport_arrive_intact():
    a, b = socket.socketpair()
    sender = StreamTransport(a.fileno(), sock=a)
    t = threading.Thread(target=lambda: [sender.send(consts.MSG_REPLY, seq, (body, seq))
                                         for seq, body in enumerate(BODIES)])
    t.start()
    receive_all(StreamTransport(b.fileno(), sock=b))
    t.join()
    a.close()
    b.close()


def test_frames_split_anywhere_arrive_intact():
    # a large frame's header and the start of its payload arrive with the end of the
    # frame before it, in pieces of every size
    whole = b"".join(codec.encode_frame(consts.MSG_REPLY, 0, seq, (body, seq)) for seq, body in enumerate(BODIES))
    a, b = socket.socketpair()

    def trickle():
        pos = 0
        while pos < len(whole):
            n = RNG.choice((1, 3, 4, 5, 1000, 70_000, 1 << 20))
            a.sendall(whole[pos:pos + n])
            pos += n
        a.close()

    t = threading.Thread(target=trickle)
    t.start()
    receive_all(StreamTransport(b.fileno(), sock=b))
    t.join()
    b.close()


def test_a_message_that_cannot_be_encoded_fails_alone():
    # the transport packs with one packer it keeps: a value it cannot encode, deep in a
    # message, raises TypeError and leaves nothing behind for the next message
    a, b = socket.socketpair()
    sender, receiver = StreamTransport(a.fileno(), sock=a), StreamTransport(b.fileno(), sock=b)
    for seq in range(3):
        try:
            sender.send(consts.MSG_REPLY, seq, ("x" * 1000, (1, 2.5, object())))
        except TypeError:
            pass
        else:
            raise AssertionError("an object() was encoded")
        sender.send(consts.MSG_REPLY, seq, ("after", seq))
        assert receiver.recv(None) == (consts.MSG_REPLY, seq, ("after", seq))
    a.close()
    b.close()
