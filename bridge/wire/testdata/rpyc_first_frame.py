"""A real rpyc classic client connecting to argv[1]; the Go test reads its first frame."""
import sys
import rpyc

try:
    rpyc.classic.connect("127.0.0.1", int(sys.argv[1]))
except Exception:
    pass
