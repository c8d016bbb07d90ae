"""One measured child process: its wall time and its own peak memory.

Linux carries a process's memory high-water mark across fork and exec: a child's `ru_maxrss` starts at the
RSS of the process that forked it (checked: a 1.5 GiB parent's `python -c pass` reports 1.5 GiB). The
benchmarks' own process holds moto's objects and their inputs, often more than the child under test, so a
child started from it directly reports the benchmark's memory, not its own. Each measured child is therefore
started by a small launcher (a bare interpreter, ~10 MiB): its child's high-water mark starts near zero and is
the child's own.
"""
from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LAUNCHER = """
import json, os, subprocess, sys, time
started = time.perf_counter()
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
wall = time.perf_counter() - started
with open(sys.argv[1], "w") as out:
    json.dump({"wall": wall, "maxrss_kib": usage.ru_maxrss, "returncode": os.waitstatus_to_exitcode(status)}, out)
"""


def measure(command: list[str], env: dict) -> dict:
    """Wall seconds (spawn to exit) and peak RSS (MiB) of one child process started by LAUNCHER; its last
    stdout line parsed as JSON if it is JSON, and the tail of its stderr if it failed."""
    import subprocess

    with tempfile.NamedTemporaryFile(suffix=".json") as report:
        done = subprocess.run([sys.executable, "-I", "-S", "-c", LAUNCHER, report.name, *command], env=env,
                              cwd=str(ROOT), capture_output=True, text=True)
        usage = json.loads(Path(report.name).read_text() or "{}")
    if not usage:
        raise RuntimeError(f"the launcher failed: {done.stderr[-1500:]}")
    result = {"wall": usage["wall"], "peak_mib": usage["maxrss_kib"] / 1024, "returncode": usage["returncode"]}
    if result["returncode"] != 0:
        result["error"] = done.stderr[-1500:]
    lines = done.stdout.strip().splitlines()
    if lines:
        with contextlib.suppress(ValueError):
            result["output"] = json.loads(lines[-1])
    return result
