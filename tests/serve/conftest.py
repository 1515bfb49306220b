"""Fixtures for the serve tests. The client side of every test is the rpyc installed in
the venv running pytest (5.3.1 or 6.0.2), exactly as users have it."""
import os
import sys

import pytest
import rpyc

from servers import pybridge_server, stock_server


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
