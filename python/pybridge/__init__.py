"""pybridge's Python peer: a full RPyC peer that pybridge's Go process runs in its workers.

Pure standard library (Python 3.9+); the Go binary embeds this package and puts it on the
worker's path, so nothing needs to be installed in the interpreter that hosts the objects.
"""
from .service import Service

__all__ = ["Service"]
__version__ = "0.1.0"
