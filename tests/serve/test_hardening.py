"""Robustness that rpyc's own server has and clients rely on (issue: hardening)."""
import time

import rpyc


def test_client_silent_before_its_first_request(classic_server):
    # pools and lazily used connections connect first and speak later; the server must
    # not settle the client's dialect on a timer while neither side has said anything
    c = rpyc.connect("127.0.0.1", classic_server.port, config={"sync_request_timeout": 10})
    try:
        time.sleep(3)
        assert c.root.eval("6 * 7") == 42
    finally:
        c.close()
