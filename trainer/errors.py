"""The one error type a training run fails with.

Every expected failure (bad spec, missing column, unreadable object, invalid
hyperparameter...) is raised as `TrainingFailed` with a human-readable reason;
`main()` turns it into the fail callback. Anything else is a bug and is reported
with its exception type and message.
"""
from __future__ import annotations


class TrainingFailed(Exception):
    """A run cannot succeed; `reason` is what the fail callback carries."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RunEnded(TrainingFailed):
    """The control plane says this run is over (cancelled, superseded, or failed by a report): the trainer
    stops without publishing its artifact and without a report of its own (any would be refused)."""


class ArtifactError(Exception):
    """An artifact cannot be loaded safely (missing file, sha256 mismatch, untrusted type)."""
