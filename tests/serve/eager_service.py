"""A service that calls the client before the client has said anything: its on_connect
asks the client's root (served with `pybridge serve --service eager_service:EagerService`)."""
import rpyc


class EagerService(rpyc.Service):
    def on_connect(self, conn):
        self._client_said = conn.root.hello("server")

    def exposed_client_said(self):
        return self._client_said
