"""robotframework-rpycremote (its RPyCRobotRemote library, an rpyc-ng client) runs a robot
suite against a library hosted by `pybridge serve`: keywords with arguments, a failing
keyword, and the hosted code's output captured in the robot log. Collected in the rpyc-ng
venv only (conftest.py)."""
import json
import subprocess
import sys

import pytest
from robot.api import ExecutionResult

from servers import HERE, pybridge_server
from robot_service import PROTOCOL_CONFIG


@pytest.fixture(scope="module")
def robot_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("robot")
    with pybridge_server("--service", "robot_service:Service", "--protocol-config", json.dumps(PROTOCOL_CONFIG),
                         cwd=str(HERE)) as srv:
        done = subprocess.run([sys.executable, "-m", "robot", "--outputdir", str(out), "--variable", f"PORT:{srv.port}",
                               "--console", "none", str(HERE / "robot" / "remote.robot")],
                              capture_output=True, text=True, timeout=300, cwd=str(out))
    # robot's status is the number of failed tests: the one failing on purpose
    assert done.returncode == 1, done.stdout + done.stderr
    return ExecutionResult(str(out / "output.xml"))


def robot_tests(result):
    return {t.name: t for t in result.suite.all_tests}


def messages(item):
    """Every log message under a test or keyword."""
    found = []
    for child in getattr(item, "body", ()):
        if getattr(child, "type", None) == "MESSAGE":
            found.append(child.message)
        else:
            found.extend(messages(child))
    return found


def test_keywords_with_arguments_pass(robot_run):
    tests = robot_tests(robot_run)
    assert tests["Keyword With Arguments"].status == "PASS", tests["Keyword With Arguments"].message
    assert tests["Keyword With Varargs And Named Argument"].status == "PASS"


def test_failing_keyword_fails_with_its_message(robot_run):
    failed = robot_tests(robot_run)["Failing Keyword"]
    assert failed.status == "FAIL"
    assert "hosted keyword failed: on purpose" in failed.message


def test_hosted_output_is_captured_in_the_log(robot_run):
    greet = robot_tests(robot_run)["Output Is Captured"]
    assert greet.status == "PASS", greet.message
    assert any("Hello, Robot, from the hosted library" in m for m in messages(greet))
    assert robot_run.statistics.total.passed == 3 and robot_run.statistics.total.failed == 1
