"""The baseline the worker round trip is compared with: a subprocess answering JSON
lines on stdin with JSON lines on stdout, calling a trivial function per line."""
import json
import sys


def add(a, b):
    return a + b


def main():
    out = sys.stdout
    for line in sys.stdin:
        req = json.loads(line)
        out.write(json.dumps({"id": req["id"], "result": add(*req["args"])}) + "\n")
        out.flush()


main()
