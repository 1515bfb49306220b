"""AsyncResult: what Connection.async_request returns, with the interface of rpyc's, so
hosted code can use rpyc.async_(callback)(...), rpyc.timed and the like on its client's
objects as it does on rpyc's server."""
import time


class AsyncResult:
    """The eventual result of a request of this side. The reply is handed over by
    whichever thread reads it; callbacks run on that thread, as in rpyc."""

    __slots__ = ("_conn", "_is_ready", "_is_exc", "_obj", "_callbacks", "_deadline")

    def __init__(self, conn):
        self._conn = conn
        self._is_ready = False
        self._is_exc = None
        self._obj = None
        self._callbacks = []
        self._deadline = None  # time.monotonic() after which it has expired

    def __repr__(self):
        if self._is_ready:
            state = "ready"
        elif self.expired:
            state = "expired"
        else:
            state = "pending"
        return f"<AsyncResult object ({state}) at 0x{id(self):08x}>"

    def _deliver(self, is_exc, obj):
        if self.expired:
            return
        self._is_exc, self._obj, self._is_ready = is_exc, obj, True
        callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            cb(self)

    def wait(self):
        """Waits for the result (serving the connection meanwhile); TimeoutError once
        its expiry passed first."""
        if not self._is_ready:
            self._conn._wait_until(lambda: self._is_ready or self.expired, self._deadline)
        if not self._is_ready:
            raise TimeoutError("result expired")

    def add_callback(self, func):
        """func(self) when the result arrives; at once when it already has."""
        if self._is_ready:
            func(self)
        else:
            self._callbacks.append(func)

    def set_expiry(self, timeout):
        """Expires timeout seconds from now (None: never)."""
        self._deadline = None if timeout is None else time.monotonic() + timeout

    @property
    def ready(self):
        if self._is_ready:
            return True
        if self.expired:
            return False
        self._conn.poll_all()
        return self._is_ready

    @property
    def error(self):
        return self.ready and self._is_exc

    @property
    def expired(self):
        return not self._is_ready and self._deadline is not None and time.monotonic() >= self._deadline

    @property
    def value(self):
        self.wait()
        if self._is_exc:
            raise self._obj
        return self._obj
