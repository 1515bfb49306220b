"""The registry tests use the serve tests' server helpers (tests/serve/servers.py). They
run once per rpyc client version, not per isolation: registering does not depend on
where Python runs."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "serve"))
