"""Reads rpyc frames from stdin with rpyc's own Channel, decodes each message with rpyc's
own brine in the dialect given as argv[1] ("5", "6" or "ng"), re-encodes it exactly as that
rpyc version's Connection._send does, and sends it back on stdout (rpyc compresses
payloads over 3000 bytes, rpyc-ng over 1024). Ends at EOF."""
import sys

from rpyc.core import brine
from rpyc.core.channel import Channel
from rpyc.core.stream import PipeStream

dialect = sys.argv[1]
ch = Channel(PipeStream(open(0, "rb", buffering=0), open(1, "wb", buffering=0)))
while True:
    try:
        data = ch.recv()
    except EOFError:
        break
    if dialect == "5":
        msg, seq, body = brine.load(data)
        out = brine.dump((msg, seq, body))
    else:
        msg, = brine.I1.unpack(data[:1])
        seq, body = brine.load(data[1:])
        out = brine.I1.pack(msg) + brine.dump((seq, body))
    ch.send(out)
