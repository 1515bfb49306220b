"""pybridge.Service names itself as rpyc.Service does."""
import pytest

from pybridge import Service


class EchoService(Service):
    pass


class Named(Service):
    ALIASES = ["first", "second"]


def test_names_follow_rpyc():
    assert EchoService.get_service_name() == "ECHO"
    assert EchoService.get_service_aliases() == ("ECHO",)
    assert Named.get_service_name() == "FIRST"
    assert Named.get_service_aliases() == ("FIRST", "SECOND")
    assert EchoService().exposed_get_service_name() == "ECHO"


def test_names_match_rpyc_service():
    rpyc = pytest.importorskip("rpyc", reason="rpyc is not installed in this venv")

    class EchoService(rpyc.Service):
        pass

    class Named(rpyc.Service):
        ALIASES = ["first", "second"]

    assert EchoService.get_service_name() == "ECHO"
    assert Named.get_service_aliases() == ("FIRST", "SECOND")
