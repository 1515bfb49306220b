"""rpyc's own ThreadedServer on a free loopback port (or a Unix socket); prints where.

usage: rpyc_server.py [classic|service] [unix-socket-path]
  (with RPYC_TLS_KEY and RPYC_TLS_CERT set, it serves TLS through SSLAuthenticator)
  classic  SlaveService, as rpyc_classic serves it
  service  EchoService below, a user's rpyc.Service
"""
import gc
import os
import sys
import time

import rpyc
from rpyc.core.service import SlaveService
from rpyc.utils.server import ThreadedServer


class EchoService(rpyc.Service):
    """A user's service: exposed_ methods, and calls back the client's root."""

    def on_connect(self, conn):
        self._conn = conn
        self._kept = None

    def exposed_add(self, a, b=0):
        return a + b

    def exposed_slow(self, seconds, value):
        time.sleep(seconds)
        return value

    def exposed_greet_client(self, name):
        # the Go side's Config.Root, reached as conn.root like any rpyc client's service
        return self._conn.root.Greet(name)

    def exposed_client_root_attr(self, name):
        return getattr(self._conn.root, name)

    def exposed_set_client_root_attr(self, name, value):
        setattr(self._conn.root, name, value)

    def exposed_keep(self, obj):
        self._kept = obj

    def exposed_drop(self):
        self._kept = None
        gc.collect()

    def exposed_fail(self, key):
        raise KeyError(key)

    def exposed_held(self):
        """How many objects this connection holds for its client."""
        gc.collect()
        return len(self._conn._local_objects._dict)


mode = sys.argv[1] if len(sys.argv) > 1 else "classic"
service = SlaveService if mode == "classic" else EchoService
kw = {"socket_path": sys.argv[2]} if len(sys.argv) > 2 else {"hostname": "127.0.0.1", "port": 0}
if os.environ.get("RPYC_TLS_CERT"):
    from rpyc.utils.authenticators import SSLAuthenticator
    kw["authenticator"] = SSLAuthenticator(os.environ["RPYC_TLS_KEY"], os.environ["RPYC_TLS_CERT"])
server = ThreadedServer(service, protocol_config={"sync_request_timeout": 60}, **kw)
print(server.port if len(sys.argv) <= 2 else sys.argv[2], flush=True)
server.start()
