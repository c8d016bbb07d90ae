"""Print one bearer token for the running local stack (`make token PROJECT=proj-123 ROLE=viewer`).

    python -m scripts.token --project proj-123 --role editor [--ttl 3600] [--subject local-user]
    python -m scripts.token --role admin

PROJECT and ROLE in the environment stand in for the flags (ROLE defaults to editor).
Only the token goes to stdout, so `TOKEN=$(python -m scripts.token ...)` works; everything
else goes to stderr. Exit 2 when the arguments are wrong or no local stack is running.
(Run it as a module: `python scripts/token.py` would shadow the standard library's `token`.)
"""
from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from scripts import local_issuer

ROLE_CHOICES = ("viewer", "editor", "admin")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.token", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--project", default=os.environ.get("PROJECT") or None,
                        help="project id the token grants ROLE in (env PROJECT); not needed for admin")
    parser.add_argument("--role", default=os.environ.get("ROLE") or "editor", type=str.lower,
                        choices=ROLE_CHOICES, help="viewer, editor (default) or admin (env ROLE)")
    parser.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    parser.add_argument("--subject", default="local-user", help="the token's sub (default local-user)")
    parser.add_argument("--key-dir", type=Path, default=local_issuer.KEY_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.project = args.project or None  # `make token PROJECT=` passes an empty string
    if args.role != "admin" and not args.project:
        parser.error(f"--project (or PROJECT=...) is required for role {args.role}")
    if args.ttl <= 0:
        parser.error("--ttl must be a positive number of seconds")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        state = local_issuer.read_state(args.key_dir)
    except (FileNotFoundError, ValueError):
        print("No local stack is running (no issuer state in .local/issuer/). Start it with `make run`, "
              "then run this again.", file=sys.stderr)
        return 2
    if not _issuer_is_up(state["jwks_url"]):
        print(f"The local stack's issuer at {state['issuer']} does not answer; is `make run` still running?",
              file=sys.stderr)
        return 2
    projects = {} if args.role == "admin" else {args.project: args.role}
    try:
        token = local_issuer.mint(args.subject, projects, admin=args.role == "admin", issuer=state["issuer"],
                                  audience=state["audience"], ttl_seconds=args.ttl, key_dir=args.key_dir)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


def _issuer_is_up(jwks_url: str) -> bool:
    # A state file left behind by a killed stack must not yield tokens nothing will accept.
    try:
        with urllib.request.urlopen(jwks_url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


if __name__ == "__main__":
    sys.exit(main())
