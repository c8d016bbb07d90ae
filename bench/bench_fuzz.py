"""The property-based fuzz run (tests/functional/test_fuzz.py) as a benchmark: how many generated
requests, how many answered 5xx (must be 0), and their latency p95, through the Chalice test client
over in-process moto. Runs the test itself, so the numbers are those of the suite's own cases."""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from bench.report import markdown_table, write_section

ROOT = Path(__file__).resolve().parent.parent
SUMMARY = re.compile(r"fuzz: (\d+) generated requests over (\d+) routes; 5xx: (\d+); p95 ([\d.]+) ms; by status: (.*)")


def main() -> int:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/functional/test_fuzz.py"], cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    match = SUMMARY.search(proc.stdout)
    if proc.returncode != 0 or match is None:
        print(proc.stdout[-3000:], proc.stderr[-2000:], file=sys.stderr)
        return 1
    requests, routes, fives, p95, by_status = match.groups()
    body = markdown_table(["generated requests", "routes", "5xx", "p95 latency", "wall time"],
                          [[requests, routes, fives, f"{float(p95):.1f} ms", f"{elapsed:.0f} s"]])
    body += (f"\n\nAnswers by status: {by_status.strip()}. Hypothesis with `derandomize=True`, so every run "
             "generates the same cases; every route of the app is fuzzed (a test fails if one is not).")
    write_section("bench/bench_fuzz.py", "Fuzzing every route: no 5xx, latency p95", body, order=28)
    print(match.group(0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
