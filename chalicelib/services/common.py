"""Small dependencies every service receives: a clock and an id generator."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], str]
IdFactory = Callable[[str], str]


def utc_now() -> str:
    """ISO-8601 UTC with microseconds, so that string order is time order."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"

