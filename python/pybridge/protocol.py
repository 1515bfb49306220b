"""One RPyC connection: its state, its sequence numbers, and its threads.

The worker's reader thread hands messages in through dispatch(), which never blocks and
never runs Python code of the peer's objects. Requests queue up for the connection's
serving thread; a thread that waits for a reply to its own request (any thread: the
serving thread inside a handler, or a thread hosted code started) serves the queued
requests meanwhile, as rpyc does, so nested and re-entrant calls work in both directions.

dispatch() is the whole interface to the transport: the same Connection runs over the
worker socket or, embedded, with messages handed in directly.
"""
import collections
import itertools
import sys
import threading
import time
import weakref

from . import consts, vinegar
from .boxing import ByValue, box, unbox
from .codec import by_value
from .handlers import CLASSIC_CONFIG, DEFAULT_CONFIG, Handlers
from .netref import BaseNetref, builtin_classes, class_factory
from .objects import ObjectTable

_setattr = object.__setattr__
_getattribute = object.__getattribute__


class Connection(Handlers):
    """send(kind, seq, body) writes one message of this connection; close_hook(reason)
    tells the transport the connection ended at this side."""

    def __init__(self, send, mode="classic", service=None, config=None, peer=None, dialect=None,
                 close_hook=None, conn_id=0):
        self._send = send
        self._close_hook = close_hook
        self.mode = mode
        self.service_spec = service
        self.peer = peer
        self.dialect = dialect
        self.conn_id = conn_id
        self._config = dict(DEFAULT_CONFIG)
        if mode in ("classic", "go"):
            self._config.update(CLASSIC_CONFIG)
        self._config.update(config or {})
        self.objects = ObjectTable()
        self._proxies = weakref.WeakValueDictionary()
        # re-entrant: GC may run a proxy's __del__ (retire) in a thread holding it
        self._proxy_lock = threading.RLock()
        self._netref_classes = {}
        self._seq = itertools.count(1)
        self._cond = threading.Condition()
        self._requests = collections.deque()
        self._replies = {}
        self._ignored = set()  # seqs of async requests whose replies nobody waits for
        self._dels = collections.deque()
        self._local_root = None
        self._service = None
        self._remote_root = None
        self.closed = False
        self._thread = None

    # ---- life cycle -------------------------------------------------------------

    def start(self):
        """Runs the service's setup and then serves, on the connection's own thread."""
        self._thread = threading.Thread(target=self._run, name=f"pybridge-conn-{self.conn_id}", daemon=True)
        self._thread.start()

    def _run(self):
        try:
            self._setup()
        except BaseException as e:
            reason = f"cannot open connection: {type(e).__name__}: {e}"
            print(f"pybridge: {reason}", file=sys.stderr)
            self._finish(reason)
            return
        self.serve_forever()

    def _setup(self):
        from .classic import ClassicRoot, GoRoot
        from .service import load_service
        if self.mode == "classic":
            self._local_root = ClassicRoot(self)
        elif self.mode == "go":
            self._local_root = GoRoot(self)
        elif self.mode == "service":
            self._service = load_service(self.service_spec)
            self._local_root = self._service
            on_connect = getattr(self._service, "on_connect", None)
            if on_connect is not None:
                on_connect(self)
        else:
            raise ValueError(f"unknown mode {self.mode!r}")

    def serve_forever(self):
        cond = self._cond
        while True:
            with cond:
                while not self._requests and not self.closed:
                    cond.wait(0.05)
                    if self._dels:
                        break
                if self.closed:
                    return
                item = self._requests.popleft() if self._requests else None
            self._flush_dels()
            if item is not None:
                self._serve(item)

    def dispatch(self, kind, seq, body):
        """Hands in one message from the peer. Never blocks."""
        with self._cond:
            if kind == consts.MSG_REQUEST:
                self._requests.append((seq, body))
            elif seq in self._ignored:
                self._ignored.discard(seq)
                return
            else:
                self._replies[seq] = (kind, body)
            self._cond.notify_all()

    def _cleanup(self):
        self.objects.clear()
        self._proxies = weakref.WeakValueDictionary()

    def _finish(self, reason=None):
        """The connection is over: drop everything, tell the service and the transport."""
        with self._cond:
            if self.closed:
                return
            self.closed = True
            self._cond.notify_all()
        service, self._service = self._service, None
        if service is not None and getattr(service, "on_disconnect", None) is not None:
            try:
                service.on_disconnect(self)
            except Exception as e:
                print(f"pybridge: on_disconnect failed: {e!r}", file=sys.stderr)
        self._cleanup()
        self._local_root = None
        if self._close_hook is not None:
            self._close_hook(reason)

    def peer_closed(self):
        """The peer went away (Go's CLOSE)."""
        hook, self._close_hook = self._close_hook, None
        self._finish()
        self._close_hook = hook

    def close(self):
        """Closes the connection from this side (hosted code, or the peer's CLOSE)."""
        self._finish("closed by the server")

    # ---- serving ----------------------------------------------------------------

    def _serve(self, item):
        seq, body = item
        try:
            handler, boxed_args = body
            args = unbox(self, boxed_args)
            fn = self.HANDLERS.get(handler)
            if fn is None:
                raise ValueError(f"unknown request handler {handler!r}")
            result = fn(self, *args)
            if handler == consts.HANDLE_CLOSE:
                self._reply(seq, consts.MSG_REPLY, (consts.LABEL_VALUE, None))
                self.close()
                return
            self._reply(seq, consts.MSG_REPLY, box(self, result))
        except (KeyboardInterrupt, SystemExit, Exception):
            self._reply_exception(seq)

    def _reply(self, seq, kind, body):
        try:
            self._send(kind, seq, body)
        except (TypeError, ValueError, OverflowError, UnicodeError):
            # the result cannot be encoded (e.g. a str with lone surrogates): say so
            self._reply_exception(seq)

    def _reply_exception(self, seq):
        typ, val, tb = sys.exc_info()
        try:
            body = vinegar.dump(typ, val, tb, self._config["include_local_traceback"], self._config["include_local_version"])
            self._send(consts.MSG_EXCEPTION, seq, body)
        except Exception as e:
            self._send(consts.MSG_EXCEPTION, seq, (("builtins", "RuntimeError"), (f"cannot send exception: {e!r}",), (), ""))

    # ---- requests to the peer ---------------------------------------------------

    def sync_request(self, handler, *args):
        if self.closed:
            raise EOFError("connection closed")
        seq = next(self._seq)
        self._flush_dels()
        self._send(consts.MSG_REQUEST, seq, (handler, box(self, args)))
        timeout = self._config.get("sync_request_timeout")
        deadline = None if timeout is None else time.monotonic() + timeout
        cond = self._cond
        while True:
            with cond:
                while seq not in self._replies and not self._requests and not self.closed:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        self._ignored.add(seq)
                        raise TimeoutError(f"result expired after {timeout}s")
                    cond.wait(remaining if remaining is None or remaining < 0.5 else 0.5)
                if seq in self._replies:
                    kind, body = self._replies.pop(seq)
                    break
                if self.closed:
                    raise EOFError("connection closed")
                item = self._requests.popleft()
            self._serve(item)
        if kind == consts.MSG_REPLY:
            return unbox(self, body)
        exc = vinegar.load(body, self._config["import_custom_exceptions"], self._config["instantiate_custom_exceptions"])
        raise exc

    def async_request(self, handler, *args):
        """Sends a request whose reply nobody waits for."""
        seq = next(self._seq)
        with self._cond:
            self._ignored.add(seq)
        self._send(consts.MSG_REQUEST, seq, (handler, box(self, args)))

    def ping(self, data=b"pybridge"):
        if self.sync_request(consts.HANDLE_PING, data) != data:
            raise ValueError("echo mismatch")

    @property
    def root(self):
        if self._remote_root is None:
            self._remote_root = self.sync_request(consts.HANDLE_GETROOT)
        return self._remote_root

    # ---- proxies ------------------------------------------------------------------

    def proxy_id_pack(self, obj):
        """The id_pack of obj if it is a proxy of this connection (boxed as LOCAL_REF)."""
        if issubclass(type(obj), BaseNetref) and _getattribute(obj, "____conn__") is self:
            return _getattribute(obj, "____id_pack__")
        return None

    def proxy_for(self, id_pack):
        """The proxy for a peer object, counting this reception. One lookup under the lock
        yields a live proxy or nothing: GC cannot drop the entry in between, and a proxy
        whose __del__ has begun (CPython clears weakrefs only after __del__) is never
        handed out again."""
        with self._proxy_lock:
            proxy = self._live_proxy(id_pack)
            if proxy is not None:
                return proxy
        cls = self._netref_class(id_pack)
        fresh = cls(self, id_pack)
        with self._proxy_lock:
            proxy = self._live_proxy(id_pack)
            if proxy is not None:  # another thread made one meanwhile: count it there
                _setattr(fresh, "____refcount__", 0)
                return proxy
            self._proxies[id_pack] = fresh
        return fresh

    def _live_proxy(self, id_pack):
        proxy = self._proxies.get(id_pack)
        if proxy is None:
            return None
        count = _getattribute(proxy, "____refcount__")
        if count < 0:  # retired
            return None
        _setattr(proxy, "____refcount__", count + 1)
        return proxy

    def retire(self, proxy):
        """A proxy's __del__: forget it and queue DEL with every reception it counted."""
        with self._proxy_lock:
            id_pack = _getattribute(proxy, "____id_pack__")
            count = _getattribute(proxy, "____refcount__")
            _setattr(proxy, "____refcount__", -1)
            try:
                if self._proxies.get(id_pack) is proxy:
                    del self._proxies[id_pack]
            except KeyError:
                pass
        self.release(id_pack, count)

    def _netref_class(self, id_pack):
        name_pack, class_id, instance_id = id_pack
        cls = builtin_classes.get(name_pack)
        if cls is not None and instance_id != 0:
            return cls
        key = (name_pack, class_id, 0)
        cls = self._netref_classes.get(key)
        if cls is None:
            cls = class_factory(id_pack, self.sync_request(consts.HANDLE_INSPECT, id_pack))
            if instance_id != 0:
                self._netref_classes[key] = cls
        return cls

    def release(self, id_pack, count):
        """Called from a proxy's __del__, in any thread: queue the DEL, send it later."""
        if count > 0 and not self.closed:
            self._dels.append((id_pack, count))

    def _flush_dels(self):
        dels = self._dels
        while dels:
            try:
                id_pack, count = dels.popleft()
            except IndexError:
                return
            if self.closed:
                return
            seq = next(self._seq)
            with self._cond:
                self._ignored.add(seq)
            body = (consts.HANDLE_DEL, (consts.LABEL_TUPLE, ((consts.LABEL_LOCAL_REF, id_pack), (consts.LABEL_VALUE, count))))
            self._send(consts.MSG_REQUEST, seq, body)

    # ---- the by-value extension (mode go) -----------------------------------------

    def value_of(self, obj):
        return ByValue(by_value(obj))
