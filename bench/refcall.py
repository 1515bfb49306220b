"""Go calling Python through a held `Ref` (to math.sqrt), against a hand-rolled
JSON-lines pipe to a Python subprocess, in one run:

    python bench/refcall.py [--calls 20000] [--repeat 3]

It runs `go test -bench 'CallPython|JSONLines' ./pyhost` (each benchmark reports its p50
and p99 latency) and prints, per isolation, the p50 against the pipe's from the same
run: "faster" above 1. Go must be on PATH.
"""
import argparse
import re
import statistics
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LINE = re.compile(r"^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+[\d.]+ ns/op\s+([\d.]+) p50-ns\s+([\d.]+) p99-ns")


def run(calls):
    out = subprocess.run(["go", "test", "-run", "^$", "-bench", "CallPython|JSONLines",
                          "-benchtime", f"{calls}x", "./pyhost"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    got = {}
    for line in out.splitlines():
        m = LINE.match(line)
        if m:
            got[m.group(1)] = float(m.group(2))
    return got


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    runs = [run(args.calls) for _ in range(args.repeat)]
    pipe = "RoundTripJSONLines"
    print(f"Go -> Python call through a held Ref, p50 of {args.calls} calls, median of {args.repeat} runs")
    print(f"{'':28} {'p50':>10} {'vs JSON-lines pipe (same run)':>30}")
    print(f"{'JSON-lines subprocess pipe':28} {statistics.median(r[pipe] for r in runs) / 1e3:8.2f} µs")
    for name in sorted(k for k in runs[0] if k.startswith("CallPython/")):
        p50 = statistics.median(r[name] for r in runs)
        ratio = statistics.median(r[pipe] / r[name] for r in runs)
        print(f"{name.split('/')[1] + ' Ref':28} {p50 / 1e3:8.2f} µs {ratio:28.2f}x faster")


if __name__ == "__main__":
    main()
