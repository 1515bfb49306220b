"""A service whose hosted code uses what rpyc's server gives it: the connection's config,
rpyc.async_ and rpyc.timed on the client's callables."""
import rpyc


class ConformanceService(rpyc.Service):
    def on_connect(self, conn):
        self._conn = conn

    def exposed_connection_info(self):
        cfg = self._conn._config
        logger = cfg["logger"]
        return (cfg["connid"], cfg["endpoints"], cfg["credentials"],
                callable(getattr(logger, "info", None)), cfg["log_exceptions"])

    def exposed_call_async(self, func, arg):
        res = rpyc.async_(func)(arg)
        seen = []
        res.add_callback(lambda r: seen.append(r.value))
        res.wait()
        return res.ready, res.error, res.value, tuple(seen)

    def exposed_call_async_failing(self, func):
        res = rpyc.async_(func)()
        res.wait()
        try:
            res.value
        except Exception as e:
            return res.error, type(e).__name__
        return res.error, None

    def exposed_call_timed(self, func, arg):
        return rpyc.timed(func, 10)(arg).value

    def exposed_expiring(self, func):
        res = rpyc.async_(func)()
        res.set_expiry(0)
        try:
            res.wait()
        except Exception as e:
            return res.expired, type(e).__name__
        return res.expired, None
