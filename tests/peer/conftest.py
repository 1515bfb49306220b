"""Tests of the Python peer itself, in-process and through a real worker process. They run
under every venv (3.9 to 3.13, with and without the msgpack extension)."""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))
