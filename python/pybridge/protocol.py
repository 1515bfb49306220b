"""One RPyC connection: its state, its sequence numbers, and who reads its transport.

A transport carries this connection's messages and nothing else:

    recv(timeout) -> (kind, seq, body), or None when timeout (seconds; None: no limit)
                     passes first; raises EOFError once the peer has gone
    send(kind, seq, body)
    close()       -> the connection ended at this side: tell the peer

The worker's socket (pybridge.worker) and, embedded, Go itself (pybridge.embedded) are
transports. Serving works as in rpyc: whichever thread holds the receive lock reads the
next message; a request is served at once by the thread that read it, a reply is handed
to the thread waiting for it. serve_all() is the connection's own thread; a thread that
waits for a reply to its own request (inside a handler, or a thread hosted code started)
reads and serves meanwhile, so nested and re-entrant calls work in both directions. An
idle connection is one thread blocked in recv(): nothing wakes it until a message comes.
"""
import itertools
import logging
import sys
import threading
import time
import weakref
from collections import deque

from . import consts, ng, vinegar
from .async_result import AsyncResult
from .boxing import ByValue, _simple, box, unbox
from .classic import ClassicRoot, GoRoot
from .codec import by_value
from .handlers import CLASSIC_CONFIG, DEFAULT_CONFIG, Handlers, _overrides
from .netref import BaseNetref, builtin_classes, class_factory
from .objects import ObjectTable
from .service import load_service

_getattribute = object.__getattribute__
_MSG_REQUEST, _MSG_REPLY, _MSG_EXCEPTION = consts.MSG_REQUEST, consts.MSG_REPLY, consts.MSG_EXCEPTION
_SERVED_RAISED, _SERVED_REPLY = consts.SERVED_RAISED, consts.SERVED_REPLY
_LABEL_VALUE, _LABEL_TUPLE = consts.LABEL_VALUE, consts.LABEL_TUPLE
_LABEL_LOCAL_REF = consts.LABEL_LOCAL_REF
_HANDLE_CLOSE = consts.HANDLE_CLOSE
# what OPEN's dialect says of rpyc-ng: yes, no, or (None) learn it from the peer (pybridge.ng)
_NG_OF_DIALECT = {"ng": True, "5": False, "6": False, "go": False}


_connids = itertools.count(1)


def _holds(boxed, label):
    """Whether a boxed value holds an item of label. A reply that names an object of the
    peer (LOCAL_REF) is sent at once, not deferred to the next send_recv: the proxy of
    that object may die as the handler's result does, and its DEL must not reach the
    peer before the reply that names the object (the peer would let it go)."""
    label_of, value = boxed
    if label_of == label:
        return True
    if label_of == _LABEL_TUPLE:
        for item in value:
            if _holds(item, label):
                return True
    return False


def _sockname(addr):
    """A Go address string as Python's socket.getsockname() spells it: (host, port),
    (host, port, 0, 0) for IPv6, a Unix socket's path as it is."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        return addr
    if host.startswith("[") and host.endswith("]"):
        return (host[1:-1], int(port), 0, 0)
    return (host, int(port))


class Connection(Handlers):
    def __init__(self, transport, mode="classic", service=None, config=None, peer=None, dialect=None, conn_id=0,
                 local=None):
        self._transport = transport
        self.mode = mode
        self.service_spec = service
        self.peer = peer
        self.dialect = dialect
        self.conn_id = conn_id
        # rpyc-ng (pybridge.ng): True, False, or None until the peer's messages tell
        self.ng = None
        self.value_types = frozenset()  # type objects that go by value
        self._config = dict(DEFAULT_CONFIG)
        if mode in ("classic", "go"):
            self._config.update(CLASSIC_CONFIG)
        self._config.update(config or {})
        if self._config["connid"] is None:
            self._config["connid"] = f"conn{next(_connids)}"
        if self._config["endpoints"] is None and local and peer:
            self._config["endpoints"] = (_sockname(local), _sockname(peer))
        self.objects = ObjectTable()
        self._proxies = {}  # id_pack -> (weakref to the proxy, [receptions])
        # re-entrant: a proxy may die (its weakref callback runs) in a thread holding it
        self._proxy_lock = threading.RLock()
        self._netref_classes = {}
        self._seq = itertools.count(1)
        self._recvlock = threading.Lock()
        self._sendlock = threading.Lock()
        self._cond = threading.Condition(threading.Lock())  # replies arrived, reader left
        self._waiters = 0
        self._replies = {}
        self._ignored = set()  # seqs of requests whose replies nobody waits for
        self._async_results = {}  # seq -> AsyncResult of async_request
        self._dels = deque()
        self._local_root = None
        self._service = None
        self._remote_root = None
        self._last_traceback = None  # of the last request that failed (rpyc.classic.pm reads it)
        self.closed = False  # no more messages either way
        self._finished = False
        self._learn_ng(_NG_OF_DIALECT.get(dialect))

    def _learn_ng(self, is_ng):
        """Settles the dialect: rpyc-ng's handlers and by-value types, or rpyc 5.x/6.x's."""
        if is_ng is None:
            return
        self.ng = is_ng
        if is_ng:
            self.HANDLERS = ng.HANDLERS
            self.value_types = ng.VALUE_TYPES
            self.dialect = "ng"
        elif self._local_root is not None:  # serving already (rpyc 6.x spotted)
            self._serve_in_c(True)

    def _serve_in_c(self, on):
        """Has the transport (the C channel, embedded) serve GETATTR, CALL and CALLATTR
        of this side's objects itself where Handlers would do nothing but look the
        attribute up and call it (pyhost/internal/cpython/serve.c), or stops that. It
        reads what those handlers read: self._config (each time), the object table, and
        handlers' cache of access overrides. Only for rpyc 5.x/6.x peers: rpyc-ng's
        handlers differ."""
        serve_in_c = getattr(self._transport, "serve_in_c", None)
        if serve_in_c is None:
            return
        if on and self.ng is False and not self.closed:
            serve_in_c((self, self.objects._slots, _overrides, "_config", "allow_getattr", "allow_all_attrs",
                        "allow_exposed_attrs", "_rpyc_getattr", "_waiters", self._recvlock.release,
                        self._recvlock.acquire, (False,), self._dels, self._notify_waiters))
        else:
            serve_in_c(None)

    def __repr__(self):
        state = " closed" if self.closed else ""
        return f"<{type(self).__module__}.{type(self).__name__} {self._config['connid']!r}{state} object at 0x{id(self):08x}>"

    # ---- life cycle -------------------------------------------------------------

    def serve_all(self):
        """Sets the connection up (the service's on_connect) and serves until the peer
        goes away or the connection is closed; then cleans up. The connection's own
        thread runs it."""
        try:
            self._setup()
        except BaseException as e:
            reason = f"cannot open connection: {type(e).__name__}: {e}"
            print(f"pybridge: {reason}", file=sys.stderr)
            self._finish(reason)
            return
        self._serve_in_c(True)
        recvlock = self._recvlock
        try:
            if getattr(self._transport, "send_recv", None) is None:
                while not self.closed:  # serve(None), one call less per message
                    recvlock.acquire()
                    self._read_locked(None)
            else:
                reply = None
                while not self.closed:
                    if reply is None:
                        recvlock.acquire()
                    elif self._dels or not recvlock.acquire(False):
                        # DELs wait, or another thread reads: the reply goes now, alone
                        self._reply(reply[0], _MSG_REPLY, reply[1])
                        reply = None
                        recvlock.acquire()
                    reply = self._serve_next(reply)
        except EOFError:
            pass
        finally:
            self._finish(None)

    def _setup(self):
        # everything it uses is imported with this module: a connection opened while the
        # process is out of descriptors must not be the one that imports (and fails
        # half-way through, leaving a module half made for every connection after it)
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
        if self._config["logger"] is None:
            self._config["logger"] = self._logger()

    def _logger(self):
        """The logger rpyc's server would hand the connection: "<service name>/<port>"."""
        name = "SLAVE"
        get_name = getattr(self._service, "get_service_name", None)
        if callable(get_name):
            try:
                name = get_name()
            except Exception:
                name = type(self._service).__name__
        endpoints = self._config["endpoints"]
        port = endpoints[0][1] if endpoints and type(endpoints[0]) is tuple else None
        return logging.getLogger(name if port is None else f"{name}/{port}")

    def _cleanup(self):
        self._last_traceback = None
        with self._cond:
            self._async_results.clear()  # never to be answered; waiters see closed
        self.objects.clear()
        with self._proxy_lock:
            self._proxies = {}  # the weakrefs go with it: no callbacks, no DELs

    def _finish(self, reason):
        """The connection is over: drop everything, tell the service, and (when it ended
        at this side) the transport."""
        with self._cond:
            if self._finished:
                return
            self._finished = self.closed = True
            self._cond.notify_all()
        try:
            self._serve_in_c(False)
        except Exception:
            pass
        service, self._service = self._service, None
        if service is not None and getattr(service, "on_disconnect", None) is not None:
            try:
                service.on_disconnect(self)
            except Exception as e:
                print(f"pybridge: on_disconnect failed: {e!r}", file=sys.stderr)
        self._cleanup()
        self._local_root = None
        try:
            self._transport.close(reason)
        except Exception:
            pass

    def close(self):
        """Closes the connection from this side (hosted code, or the peer's CLOSE)."""
        self._finish("closed by the server")

    # ---- reading ----------------------------------------------------------------

    def serve(self, timeout=None):
        """Reads one message and handles it: a request is served by this thread, a reply
        goes to its waiter. Returns False when nothing came within timeout (seconds, or
        None for no limit) or another thread kept the receive lock that long. Raises
        EOFError once the connection is over."""
        if self.closed:
            raise EOFError("connection closed")
        if not self._recvlock.acquire(True, -1 if timeout is None else timeout):
            return False
        return self._read_locked(timeout)

    def _read_locked(self, timeout):
        """serve() for a thread that holds the receive lock; releases it."""
        msg, filed = self._receive_locked(timeout, None)
        if msg is None:
            return False
        kind, seq, body = msg
        if kind == _MSG_REQUEST:
            self._serve_request(seq, body)
        elif not filed:
            self._route_reply(kind, seq, body)
        return True

    def _serve_next(self, reply):
        """serve_all's step over a transport with send_recv (Go, embedded): sends reply
        (seq, body) of the last request served, if any, and receives the next message in
        one call; a request received is served, and its reply returned unsent for the
        next step (None when it went already). The caller holds the receive lock."""
        msg, filed = self._receive_locked(None, reply)
        kind, seq, body = msg
        if kind == _MSG_REQUEST:
            return self._serve_request(seq, body, True)
        if kind < 0:
            return self._served_in_c(kind, seq, body)
        if not filed:
            self._route_reply(kind, seq, body)
        return None

    def _receive_locked(self, timeout, reply):
        """The next message (None when timeout passed first), and whether it was a reply
        filed for the thread waiting for it; reply (seq, body), if any, is sent in the
        same call (send_recv). The caller holds the receive lock; it is released here."""
        filed = False
        held = True  # the lock, until a request served in C comes back without it
        try:
            if reply is None:
                msg = self._transport.recv(timeout)
            else:
                try:
                    msg = self._transport.send_recv(_MSG_REPLY, reply[0], reply[1])
                except (TypeError, ValueError, OverflowError, UnicodeError):
                    # the result cannot be encoded (nothing was read): say so
                    self._reply_exception(reply[0])
                    msg = self._transport.recv(timeout)
            if msg is not None:
                if msg[0] < 0:  # a request the C channel served, the lock let go (_serve_in_c)
                    held = False
                    return msg, False
                if self.ng is None:
                    self._learn_ng(ng.spot(msg[0], msg[2]))
                if msg[0] != _MSG_REQUEST:
                    # a reply another thread waits for is filed before the lock is let go:
                    # that thread, taking the lock next, finds it instead of reading on
                    filed = self._file_reply(msg[1], msg[0], msg[2])
        except EOFError:
            with self._cond:
                self.closed = True  # no more replies can come; _finish still runs
                self._cond.notify_all()
            raise
        finally:
            if held:
                self._recvlock.release()
                if self._waiters:
                    self._notify_waiters()
        return msg, filed

    def _notify_waiters(self):
        """Wakes the threads waiting for a reply, or to read: the reader has left."""
        with self._cond:
            self._cond.notify_all()

    def _file_reply(self, seq, kind, body):
        """Files a reply a thread waits for (sync_request); False for any other (an
        AsyncResult's, an ignored one), which _route_reply handles."""
        with self._cond:
            if seq in self._async_results or seq in self._ignored:
                return False
            self._replies[seq] = (kind, body)
            if self._waiters:
                self._cond.notify_all()
            return True

    def _route_reply(self, kind, seq, body):
        with self._cond:
            result = self._async_results.pop(seq, None)
        if result is not None:
            self._deliver_async(result, kind, body)
            return
        with self._cond:
            if seq not in self._ignored:
                self._replies[seq] = (kind, body)
                if self._waiters:
                    self._cond.notify_all()
                return
            self._ignored.discard(seq)
        if kind == _MSG_REPLY:
            # nobody waits: unboxing counts what the reply carries, and dropping the
            # proxies at once sends DEL for them
            try:
                unbox(self, body)
            except Exception:
                pass

    def _deliver_async(self, result, kind, body):
        try:
            if kind == _MSG_REPLY:
                result._deliver(False, unbox(self, body))
            else:
                result._deliver(True, vinegar.load(body, self._config["import_custom_exceptions"],
                                                   self._config["instantiate_custom_exceptions"]))
        except Exception as e:
            if not result._is_ready:
                result._deliver(True, e)
        finally:
            with self._cond:
                self._cond.notify_all()  # a thread may wait for it in _wait_until

    def _wait_until(self, done, deadline):
        """Serves the connection, or waits while another thread does, until done() or
        time.monotonic() passes deadline (None: no limit): how a thread waits for its
        reply (_wait_reply) or an AsyncResult. Raises EOFError once the connection is
        over and done() is still false."""
        cond = self._cond
        while not done():
            if self.closed:
                raise EOFError("connection closed")
            remaining = None
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
            if self._recvlock.acquire(False):
                if done():
                    self._recvlock.release()
                    return
                self._read_locked(remaining)
                continue
            with cond:
                self._waiters += 1
                try:
                    if not done() and not self.closed and self._recvlock.locked():
                        cond.wait(remaining)
                finally:
                    self._waiters -= 1

    def poll(self, timeout=0):
        """rpyc's poll: serves one message if one comes within timeout (seconds); True
        when one did."""
        return self.serve(timeout)

    def poll_all(self, timeout=0):
        """rpyc's poll_all: serves messages until none comes within timeout; True when
        any was served."""
        served = False
        try:
            while self.poll(timeout):
                served = True
        except EOFError:
            pass
        return served

    def _wait_reply(self, seq, timeout):
        deadline = None if timeout is None else time.monotonic() + timeout
        replies = self._replies
        self._wait_until(lambda: seq in replies, deadline)
        with self._cond:
            reply = replies.pop(seq, None)
            if reply is None:
                self._ignored.add(seq)  # given up: the reply is released when it comes
        if reply is None:
            raise TimeoutError(f"result expired after {timeout}s")
        return reply

    # ---- serving ----------------------------------------------------------------

    def _serve_request(self, seq, body, defer=False):
        """Serves a request and sends its reply; with defer, a reply that is a result
        is returned as (seq, body) for the caller to send instead."""
        try:
            handler, boxed_args = body
            fn = self.HANDLERS.get(handler)
            if fn is None:
                raise ValueError(f"unknown request handler {handler!r}")
            result = fn(self, *unbox(self, boxed_args))
            if handler == _HANDLE_CLOSE:
                self._reply(seq, _MSG_REPLY, (_LABEL_VALUE, None))
                self.close()
                return
            # box(), without the call for the most common results
            body = (_LABEL_VALUE, result) if type(result) in _simple else box(self, result)
            if defer and (body[0] == _LABEL_VALUE or not _holds(body, _LABEL_LOCAL_REF)):
                return seq, body
            try:  # _reply(), one call less
                self._send(_MSG_REPLY, seq, body)
            except (TypeError, ValueError, OverflowError, UnicodeError):
                self._reply_exception(seq)  # the result cannot be encoded: say so
        except (KeyboardInterrupt, SystemExit, Exception):
            self._last_traceback = sys.exc_info()[2]
            self._reply_exception(seq)

    def _served_in_c(self, kind, seq, value):
        """_serve_request's end for a request the C channel served (_serve_in_c), as
        _serve_next's: value is what the handler returned, which C could not send (it
        goes by reference, or must be compressed), the exception it raised (kind
        SERVED_RAISED), or the reply's body, which C could not send as another thread
        had the receive lock (SERVED_REPLY). The reply is returned as (seq, body), or
        sent."""
        try:
            if kind == _SERVED_RAISED:
                raise value
            if kind == _SERVED_REPLY:
                return seq, value
            body = (_LABEL_VALUE, value) if type(value) in _simple else box(self, value)
            if not _holds(body, _LABEL_LOCAL_REF):
                return seq, body
            self._reply(seq, _MSG_REPLY, body)  # see _holds
        except (KeyboardInterrupt, SystemExit, Exception):
            self._last_traceback = sys.exc_info()[2]
            self._reply_exception(seq)
        finally:
            value = None  # no cycle through this frame

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
            self._send(_MSG_EXCEPTION, seq, body)
        except EOFError:
            pass
        except Exception as e:
            self._send(_MSG_EXCEPTION, seq, (("builtins", "RuntimeError"), (f"cannot send exception: {e!r}",), (), ""))

    # ---- sending ----------------------------------------------------------------

    def _send(self, kind, seq, body):
        dels = self._dels
        with self._sendlock:
            self._transport.send(kind, seq, body)
            if dels:
                self._send_dels()
        if dels:  # queued by a thread that found the lock taken just before release
            self._try_send_dels()

    def _send_dels(self):
        """Sends the queued DELs; the caller holds the send lock."""
        dels = self._dels
        while dels and not self.closed:
            try:
                id_pack, count = dels.popleft()
            except IndexError:
                return
            seq = next(self._seq)
            with self._cond:
                self._ignored.add(seq)
            if len(id_pack) == 4:  # rpyc-ng's DEL names the object by its plain id_pack
                args = (consts.LABEL_VALUE, (id_pack, count))
            else:
                args = (consts.LABEL_TUPLE, ((consts.LABEL_LOCAL_REF, id_pack), (consts.LABEL_VALUE, count)))
            self._transport.send(_MSG_REQUEST, seq, (consts.HANDLE_DEL, args))

    def _try_send_dels(self):
        """Sends queued DELs unless another send (maybe this very thread's, interrupted
        by GC) is under way: that one sends them when it is done."""
        if self._sendlock.acquire(False):
            try:
                self._send_dels()
            except Exception:
                pass
            finally:
                self._sendlock.release()

    def sync_request(self, handler, *args):
        if self.closed:
            raise EOFError("connection closed")
        if handler == consts.HANDLE_CALLATTR and self.ng:
            # rpyc-ng serves no CALLATTR: its client gets the attribute, then calls it
            obj, name, call_args, kwargs = (args + ((),))[:4]
            return self.sync_request(consts.HANDLE_CALL, self.sync_request(consts.HANDLE_GETATTR, obj, name), call_args, kwargs)
        seq = next(self._seq)
        self._send(_MSG_REQUEST, seq, (handler, box(self, args)))
        kind, body = self._wait_reply(seq, self._config.get("sync_request_timeout"))
        if kind == _MSG_REPLY:
            return unbox(self, body)
        raise vinegar.load(body, self._config["import_custom_exceptions"], self._config["instantiate_custom_exceptions"])

    def async_request(self, handler, *args, timeout=None):
        """Sends a request without waiting for its reply: returns an AsyncResult (rpyc's
        interface: ready, value, wait(), add_callback(), set_expiry()) the reply goes to."""
        if self.closed:
            raise EOFError("connection closed")
        seq = next(self._seq)
        result = AsyncResult(self)
        if timeout is not None:
            result.set_expiry(timeout)
        with self._cond:
            self._async_results[seq] = result
        try:
            self._send(_MSG_REQUEST, seq, (handler, box(self, args)))
        except BaseException:
            with self._cond:
                self._async_results.pop(seq, None)
            raise
        return result

    def ctxexit_request(self, proxy, typ, val, tb):
        """A proxy's __exit__: rpyc 5.x/6.x's CTXEXIT carries the first argument of
        __exit__ (the exception's class), rpyc-ng's the exception as a vinegar tuple."""
        if self.ng:
            return self.sync_request(consts.HANDLE_CTXEXIT, proxy, ng.exit_body(self, typ, val, tb))
        return self.sync_request(consts.HANDLE_CTXEXIT, proxy, typ)

    def ping(self, data=b"pybridge"):
        if self.sync_request(consts.HANDLE_PING, data) != data:
            raise ValueError("echo mismatch")

    @property
    def root(self):
        if self._remote_root is None:
            self._remote_root = self.sync_request(consts.HANDLE_GETROOT)
        return self._remote_root

    # ---- this side's objects -------------------------------------------------------

    def export(self, obj):
        """How obj is named to the peer when it travels by reference: its id_pack, and
        the object table keeps it for the peer. Four items unless the peer is known to
        be rpyc 5.x/6.x: rpyc-ng needs the fourth, the others read three."""
        id_pack = self.objects.add(obj)
        if self.ng is False:
            return id_pack
        return ng.id_pack(obj, id_pack)

    def local_object(self, id_pack):
        """The object of this side a LOCAL_REF names."""
        return self.objects.get(id_pack if type(id_pack) is tuple else tuple(id_pack))

    # ---- proxies ------------------------------------------------------------------

    def proxy_id_pack(self, obj):
        """The id_pack of obj if it is a proxy of this connection (boxed as LOCAL_REF)."""
        if issubclass(type(obj), BaseNetref) and _getattribute(obj, "____conn__") is self:
            return _getattribute(obj, "____id_pack__")
        return None

    def proxy_for(self, id_pack):
        """The proxy for a peer object, counting this reception.

        Receptions are counted outside the proxy, in the cache entry, and released by a
        weakref callback. CPython clears a weakref before anything else of a dying object
        runs (no __del__ here), so a lookup under the lock yields a live proxy or nothing:
        GC cannot drop the entry between lookup and use, and no proxy is ever revived
        from the middle of its death with its receptions already released."""
        with self._proxy_lock:
            proxy = self._cached_proxy(id_pack)
            if proxy is not None:
                return proxy
        cls = self._netref_class(id_pack)
        fresh = cls(self, id_pack)
        with self._proxy_lock:
            proxy = self._cached_proxy(id_pack)
            if proxy is not None:  # another thread made one meanwhile; fresh goes unused
                return proxy
            count = [1]

            def died(ref, id_pack=id_pack, count=count):
                self._proxy_died(id_pack, ref, count)

            self._proxies[id_pack] = (weakref.ref(fresh, died), count)
        return fresh

    def _cached_proxy(self, id_pack):
        entry = self._proxies.get(id_pack)
        if entry is None:
            return None
        proxy = entry[0]()
        if proxy is not None:
            entry[1][0] += 1
        return proxy

    def _proxy_died(self, id_pack, ref, count):
        """A proxy's weakref callback, in whatever thread dropped it: forget it and
        release every reception it counted."""
        with self._proxy_lock:
            entry = self._proxies.get(id_pack)
            if entry is not None and entry[0] is ref:
                del self._proxies[id_pack]
            n, count[0] = count[0], 0
        self.release(id_pack, n)

    def _netref_class(self, id_pack):
        name_pack, class_id, instance_id = id_pack[0], id_pack[1], id_pack[2]
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
        """Called when a proxy dies, in any thread at any moment (even inside a send of
        this thread): queue the DEL and send it when no send is under way."""
        if count > 0 and not self.closed:
            self._dels.append((id_pack, count))
            self._try_send_dels()

    def _flush_dels(self):
        """Sends every queued DEL now (waits for a send under way)."""
        with self._sendlock:
            self._send_dels()

    # ---- the by-value extension (mode go) -----------------------------------------

    def value_of(self, obj):
        return ByValue(by_value(obj))
