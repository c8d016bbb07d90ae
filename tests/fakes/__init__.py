"""Fakes of external systems, real enough to drive the real client libraries against them."""
