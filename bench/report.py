"""Writes one named section of docs/BENCHMARKS.md, leaving the other sections alone.

Each benchmark script owns a section delimited by HTML comments, so `make bench`
can run the scripts in any order and a re-run replaces only its own numbers.
"""
from __future__ import annotations

import platform
import re
from datetime import UTC, datetime
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"
HEADER = (
    "# Benchmarks\n\n"
    "Written by `make bench` (each section by the script it names). "
    "Numbers come from one run on the machine named in each section; they are "
    "measurements, not assertions, and vary with load.\n"
)


def machine() -> str:
    import os

    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"{python}, {os.cpu_count()} cores, {platform.machine()}"


def write_section(name: str, title: str, body: str, order: int = 50) -> None:
    """Replace (or add) the section `name` of docs/BENCHMARKS.md with `body`."""
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else HEADER
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = (
        f"<!-- BEGIN {order:02d} {name} -->\n## {title}\n\n"
        f"_Measured {stamp} on {machine()} by `{name}`._\n\n{body.strip()}\n<!-- END {name} -->\n"
    )
    pattern = re.compile(rf"<!-- BEGIN \d\d {re.escape(name)} -->.*?<!-- END {re.escape(name)} -->\n", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block
    # Keep sections in their declared order, whatever order the scripts ran in.
    sections = re.findall(r"(<!-- BEGIN (\d\d) .*?<!-- END .*? -->\n)", text, re.S)
    head = text.split("<!-- BEGIN", 1)[0].rstrip("\n") + "\n\n"
    ordered = sorted(sections, key=lambda s: s[1])
    BENCHMARKS.parent.mkdir(parents=True, exist_ok=True)
    BENCHMARKS.write_text(head + "\n".join(s[0] for s in ordered))


def markdown_table(headers: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
