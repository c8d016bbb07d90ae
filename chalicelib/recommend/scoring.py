"""The model types, and the choice among their scores.

Each type's score is the selector's calibrated probability ×100 that the type is within 0.01 of the
best of the four (`selector.py`). Scores are compared as reported (rounded to 0.1); equal scores are
broken in `TIE_ORDER`: random_forest, regression, neural_network, decision_tree (the type that wins
most often on tabular benchmarks first, then the cheaper to train).
"""
from __future__ import annotations

from chalicelib.recommend.selector import MODEL_TYPES

__all__ = ["MODEL_TYPES", "TIE_ORDER", "choose"]

TIE_ORDER = ("random_forest", "regression", "neural_network", "decision_tree")


def choose(scores: dict[str, float]) -> str:
    """The highest score; equal scores go to the earlier type in TIE_ORDER."""
    return min(TIE_ORDER, key=lambda t: (-scores[t], TIE_ORDER.index(t)))
