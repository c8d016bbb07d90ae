"""The benchmark's yardsticks: the Mimir AIP rule table as the issue states it, and the quality measures."""
from __future__ import annotations

import pandas as pd
import pytest

from bench.recommend_fit import Case, cross_fitted_picks, hit, measure, mimir_pick, mimir_rules, regret


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # few entities and relationships, mostly categorical, small data: decision tree on every rule
        ((1, 0, 0.2, "small", False), "decision_tree"),
        # rich ontology, numeric, large: RF 2+1+1 = 4, NN 1+1+3+1 = 6
        ((12, 25, 0.8, "large", False), "neural_network"),
        # numeric share > 0.7, medium: DT 2, RF 2, regression 3+1=4, NN 1 -> regression
        ((1, 0, 0.9, "medium", False), "regression"),
        # DT ties the maximum: DT 2+2=4 vs RF 2+2=4 -> decision_tree first
        ((1, 0, 0.1, "medium", False), "decision_tree"),
        # RF 2+2+1 = 5 beats NN 1+2+1 = 4 (rich ontology, medium, unstructured, relationships > entities)
        ((10, 20, 0.5, "medium", True), "random_forest"),
        # regression 3+1 = 4 ties NN 1+2+1 = 4 (RF 2+1 = 3, DT 2): regression on a tie
        ((1, 2, 0.9, "medium", True), "regression"),
        # regression 3 vs DT 2: no tie rule needed
        ((10, 5, 0.8, "small", False), "regression"),
    ],
)
def test_mimir_rules(args, expected):
    assert mimir_rules(*args) == expected


def test_mimir_reads_the_ontology_and_the_data():
    ttl = """\
@prefix owl: <http://www.w3.org/2002/07/owl#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
@prefix : <http://example.org/x#> .
:A a owl:Class . :a a owl:DatatypeProperty ; rdfs:range xsd:double .
:b a owl:DatatypeProperty ; rdfs:range xsd:double . :c a owl:DatatypeProperty ; rdfs:range xsd:integer .
:d a owl:DatatypeProperty ; rdfs:range xsd:string .
"""
    frame = pd.DataFrame({"a": [1.0] * 1500, "b": [2.0] * 1500, "c": [3] * 1500, "d": ["x"] * 1500})
    # numeric share 3/4 > 0.7, medium: regression 3+1 = 4 beats DT 2 and RF 2
    assert mimir_pick(ttl, frame) == "regression"
    frame.loc[0, "d"] = "y" * 101  # unstructured: NN +2 -> NN 1+2 = 3 < regression 4
    assert mimir_pick(ttl, frame) == "regression"


def test_hit_and_regret():
    case = Case("d", "classification", None, None,
                {"decision_tree": 0.80, "random_forest": 0.90, "regression": 0.895, "neural_network": 0.85})
    assert hit(case, "regression") and not hit(case, "neural_network")
    assert regret(case, "decision_tree") == pytest.approx(0.10)
    m = measure([case, case], ["random_forest", "neural_network"])
    assert m["hit_rate"] == 0.5 and m["mean_regret"] == pytest.approx(0.025)


def test_cross_fitted_picks_cover_every_case():
    cases = [Case(f"d{i}", "regression", {"linear": 0.5 + i / 100, "tree": 0.6}, 1000,
                  {"decision_tree": 0.4, "random_forest": 0.6, "regression": 0.5 + i / 100, "neural_network": 0.5})
             for i in range(10)]
    picks = cross_fitted_picks(cases)
    assert set(picks) == {c.name for c in cases}
