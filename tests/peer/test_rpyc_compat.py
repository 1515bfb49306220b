"""rpyc's BaseNetref counts pybridge's proxies once rpyc.core.netref is imported, whichever
was imported first; nothing else about rpyc's classes changes. Each case runs in a fresh
interpreter of an rpyc venv (the import order is the point)."""
import subprocess

import pytest

from conftest import REPO

CHECKS = """
import rpyc
from rpyc.core import netref as rnetref
from pybridge import netref as pnetref

proxy = pnetref.builtin_classes["builtins.dict"](None, ("builtins.dict", 1, 2))
assert isinstance(proxy, rpyc.BaseNetref)
assert issubclass(type(proxy), rpyc.BaseNetref)
assert not isinstance({}, rpyc.BaseNetref) and not issubclass(dict, rpyc.BaseNetref)
assert isinstance(proxy, dict)  # its __class__ is the local class of that name
# rpyc's own netref classes are untouched
cls = rnetref.builtin_classes_cache["builtins.list"]
assert issubclass(cls, rpyc.BaseNetref) and not isinstance(proxy, cls)
assert isinstance(rpyc.BaseNetref, rnetref.NetrefMetaclass)
assert repr(rpyc.BaseNetref) == "<netref class 'rpyc.core.netref.BaseNetref'>"
print("ok")
"""


@pytest.mark.parametrize("venv", ["rpyc5", "rpyc6"])
@pytest.mark.parametrize("first", ["pybridge", "rpyc"])
def test_rpyc_basenetref_counts_pybridge_proxies(venv, first):
    python = REPO / ".venv" / venv / "bin" / "python"
    assert python.exists(), f"the {venv} venv (make venvs) is needed"
    prelude = "import pybridge.netref\n" if first == "pybridge" else "import rpyc.core.netref\n"
    out = subprocess.run([str(python), "-c", prelude + CHECKS], cwd=str(REPO / "python"),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
