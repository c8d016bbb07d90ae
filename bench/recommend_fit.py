"""Fitting the recommender's rule table, the two baselines, and the quality measures.

- `fit` chooses the six coefficients per task of `chalicelib/recommend/scoring.estimate` by
  exhaustive search over `GRID`, minimising mean regret (then maximising hits) on the
  datasets it is given; the route's own scoring functions make the picks, so what is fitted
  is what the API answers.
- `mimir_pick` is the rule table of the original open-source system (Mimir AIP), kept here
  only as a baseline.
- hit: the pick's test score is within `HIT_MARGIN` of the best type's; regret: best minus pick.
"""
from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass

from chalicelib.recommend import scoring

HIT_MARGIN = 0.01
GRID = {
    "rf_offset": (0.0, -0.01, 0.01, -0.02, 0.02, 0.03, 0.05, -0.04),
    "rf_gain": (0.0, 0.25, 0.5, 1.0),
    "nn_offset": (0.0, -0.01, 0.01, -0.02, 0.02, -0.04, -0.08),
    "nn_gain": (0.0, 0.25, 0.5, 1.0),
    "nn_rows": (0.0, 0.01, 0.02, 0.04),
    "dt_offset": (0.0, -0.02, -0.05, -0.1),
}


@dataclass(frozen=True)
class Case:
    """One benchmark dataset: what the route measured, and each type's real test score."""

    name: str
    task: str
    probes: dict | None
    rows: int | None
    scores: dict[str, float]

    @property
    def best(self) -> float:
        return max(self.scores.values())


def pick(case: Case, params: dict[str, float]) -> str:
    if case.probes is None:
        return "random_forest"
    return scoring.choose(scoring.to_scores(scoring.estimate(case.task, case.probes, case.rows, params)))


def regret(case: Case, choice: str) -> float:
    return case.best - case.scores[choice]


def hit(case: Case, choice: str) -> bool:
    return case.scores[choice] >= case.best - HIT_MARGIN - 1e-12


def measure(cases: list[Case], choices: list[str]) -> dict[str, float]:
    if not cases:
        return {"n": 0, "hit_rate": float("nan"), "mean_regret": float("nan")}
    hits = sum(hit(c, p) for c, p in zip(cases, choices, strict=True))
    return {"n": len(cases), "hit_rate": hits / len(cases),
            "mean_regret": sum(regret(c, p) for c, p in zip(cases, choices, strict=True)) / len(cases)}


def fit(cases: list[Case]) -> dict[str, float]:
    """The grid point with the least mean regret on `cases` (then most hits; then earliest in GRID)."""
    names = list(GRID)
    best_key, best_params = None, None
    for values in itertools.product(*(GRID[n] for n in names)):
        params = dict(zip(names, values, strict=True))
        choices = [pick(c, params) for c in cases]
        key = (round(sum(regret(c, p) for c, p in zip(cases, choices, strict=True)), 9),
               -sum(hit(c, p) for c, p in zip(cases, choices, strict=True)))
        if best_key is None or key < best_key:
            best_key, best_params = key, params
    return best_params


def fit_by_task(cases: list[Case]) -> dict[str, dict[str, float]]:
    return {task: fit([c for c in cases if c.task == task]) for task in ("classification", "regression")}


def stable_order(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def train_heldout(cases: list[Case]) -> tuple[list[Case], list[Case]]:
    """Half of each task's datasets (alternating in a fixed hash order) to fit on, half held out."""
    train, held = [], []
    for task in ("classification", "regression"):
        ordered = sorted((c for c in cases if c.task == task), key=lambda c: stable_order(c.name))
        train += ordered[0::2]
        held += ordered[1::2]
    return train, held


def cross_fitted_picks(cases: list[Case], folds: int = 5) -> dict[str, str]:
    """Each dataset's pick by a table fitted without it (folds over a fixed hash order)."""
    ordered = sorted(cases, key=lambda c: stable_order(c.name))
    fold_of = {c.name: i % folds for i, c in enumerate(ordered)}
    picks = {}
    for f in range(folds):
        params = fit_by_task([c for c in cases if fold_of[c.name] != f])
        for c in cases:
            if fold_of[c.name] == f:
                picks[c.name] = pick(c, params[c.task])
    return picks


# --- the Mimir AIP rule table (baseline only) ----------------------------------------------

MIMIR_NUMERIC = {"int", "integer", "float", "double"}
MIMIR_OTHER = {"string", "boolean", "dateTime"}


def mimir_pick(ontology_ttl: str, frame) -> str:
    import rdflib
    from rdflib.namespace import OWL, RDF, RDFS, XSD

    graph = rdflib.Graph().parse(data=ontology_ttl, format="turtle")
    entities = len(set(graph.subjects(RDF.type, OWL.Class)))
    relationships = len(set(graph.subjects(RDF.type, OWL.ObjectProperty)))
    numeric = other = 0
    for prop in set(graph.subjects(RDF.type, OWL.DatatypeProperty)):
        for rng in graph.objects(prop, RDFS.range):
            local = str(rng)[len(str(XSD)):] if str(rng).startswith(str(XSD)) else ""
            numeric += local in MIMIR_NUMERIC
            other += local in MIMIR_OTHER
    share = numeric / (numeric + other) if numeric + other else 0.0
    rows = len(frame)
    size = "large" if rows > 10_000 else "medium" if rows >= 1_000 else "small"
    unstructured = any(frame[c].astype(str).str.len().max() > 100 for c in frame.columns if frame[c].dtype == object)
    return mimir_rules(entities, relationships, share, size, unstructured)


def mimir_rules(entities: int, relationships: int, share: float, size: str, unstructured: bool) -> str:
    points = dict.fromkeys(("decision_tree", "random_forest", "regression", "neural_network"), 0)
    if entities < 10 and relationships < 20:
        points["decision_tree"] += 2
    elif entities >= 10 and relationships >= 20:
        points["random_forest"] += 2
        points["neural_network"] += 1
    if share > 0.7:
        points["regression"] += 3
        points["neural_network"] += 1
    elif share < 0.3:
        points["decision_tree"] += 2
        points["random_forest"] += 2
    bonus = {"small": {"decision_tree": 2}, "medium": {"random_forest": 2, "regression": 1},
             "large": {"random_forest": 1, "neural_network": 3}}[size]
    for name, value in bonus.items():
        points[name] += value
    if unstructured:
        points["neural_network"] += 2
    if relationships > entities:
        points["random_forest"] += 1
        points["neural_network"] += 1
    top = max(points.values())
    if points["decision_tree"] == top:
        return "decision_tree"
    if points["random_forest"] == top:
        return "random_forest"
    return "regression" if points["regression"] >= points["neural_network"] else "neural_network"
