"""An ordinary rpyc service, served unchanged by `pybridge serve --service echo_service:EchoService`."""
import os

import rpyc


class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y

    def norm2(self):
        return self.x * self.x + self.y * self.y


class EchoService(rpyc.Service):
    exposed_greeting = "hello"

    def on_connect(self, conn):
        self._conn = conn
        self._mark("connected")

    def on_disconnect(self, conn):
        self._mark("disconnected")

    def _mark(self, what):
        path = os.environ.get("ECHO_SERVICE_LOG")
        if path:
            with open(path, "a") as f:
                f.write(what + "\n")

    def exposed_echo(self, value):
        return value

    def exposed_point(self, x, y):
        return Point(x, y)

    def exposed_ask_client(self, x):
        # calls back into the client's own service through conn.root
        return self._conn.root.double(x)

    def hidden(self):
        return "not exposed"
