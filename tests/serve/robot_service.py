"""A Robot Framework test library hosted by `pybridge serve`, as robotframework-rpycremote
hosts it: RPyCRobotRemote's own server-side service, built by RPyCRobotRemoteServer around
the library, served by pybridge instead of rpyc's ThreadedServer.

    pybridge serve --service robot_service:Service --protocol-config '{...}'
"""
import types

from RPyCRobotRemote import Server


class RobotLibrary:
    """Keywords run in the server's interpreter; their output is captured by the client."""

    def add_numbers(self, a, b):
        return int(a) + int(b)

    def join_words(self, *words, sep="-"):
        return sep.join(words)

    def greet(self, name):
        print(f"Hello, {name}, from the hosted library")
        return f"Hello, {name}!"

    def fail_with(self, message):
        raise AssertionError(f"hosted keyword failed: {message}")


def _keep_service(service, **_):
    # RPyCRobotRemoteServer builds its rpyc server through this factory: keep the service
    # (with the library bound) instead of listening with rpyc's ThreadedServer
    return types.SimpleNamespace(service=service)


# what RPyCRobotRemoteServer passes rpyc as protocol_config (less the logger)
PROTOCOL_CONFIG = {"allow_all_attrs": True, "allow_getattr": True, "allow_setattr": True,
                   "allow_delattr": True, "allow_exposed_attrs": False}

Service = Server(RobotLibrary(), serve=False, server=_keep_service)._server.service
