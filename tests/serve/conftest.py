"""Fixtures for the serve tests. The client side of every test is the rpyc installed in
the venv running pytest (5.3.1, 6.0.2 or rpyc-ng 7.x), exactly as users have it."""
import os
import sys

import pytest
import rpyc
from rpyc.core import consts

from servers import pybridge_server, stock_server

# rpyc-ng (imported as rpyc too) has handlers rpyc lacks. Its own tests, and the
# robotframework-rpycremote ones (installed with it), run in its venv only.
RPYC_NG = hasattr(consts, "HANDLE_TYPE")
collect_ignore = [] if RPYC_NG else ["test_rpycng.py", "test_robot.py"]


@pytest.fixture(scope="module")
def classic_server():
    # SERVE_TARGET=rpyc runs the same tests against rpyc's own server: that is how the
    # tests themselves are checked against the reference implementation.
    if os.environ.get("SERVE_TARGET") == "rpyc":
        with stock_server(sys.executable) as srv:
            yield srv
        return
    with pybridge_server("--classic", "--workers", "2") as srv:
        yield srv


@pytest.fixture
def conn(classic_server):
    c = rpyc.classic.connect("127.0.0.1", classic_server.port)
    yield c
    c.close()


@pytest.fixture(scope="module", params=["pybridge", "rpyc"])
def target(request):
    """A classic server: pybridge's, or rpyc's own for reference (a test against both
    holds pybridge to what rpyc does)."""
    if request.param == "rpyc":
        with stock_server(sys.executable) as srv:
            yield srv
    else:
        with pybridge_server("--classic") as srv:
            yield srv
