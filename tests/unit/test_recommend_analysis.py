"""The recommender's pure parts: bounded sampling over a fake S3, probes, scores and the tie rule."""
from __future__ import annotations

import json
import math
import random

from chalicelib.adapters.s3 import S3Object
from chalicelib.ontology import summarize
from chalicelib.recommend import probes, sample, scoring
from chalicelib.recommend.engine import recommend
from chalicelib.recommend.profile import Column
from chalicelib.recommend.selector import load_selector

TTL = """\
@prefix owl: <http://www.w3.org/2002/07/owl#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
@prefix ex: <http://example.org/d#> .
ex:Row a owl:Class .
ex:a a owl:DatatypeProperty ; rdfs:range xsd:double .
ex:b a owl:DatatypeProperty ; rdfs:range xsd:double .
ex:city a owl:DatatypeProperty ; rdfs:range xsd:string .
ex:target a owl:DatatypeProperty ; rdfs:range xsd:double .
"""


class FakeS3:
    """Objects in memory; records every ranged read so tests can check the byte bound."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects
        self.reads: list[tuple[str, int, int]] = []

    def list_objects(self, location, max_objects=1000):
        keys = sorted(k for k in self.objects if k.startswith(location.prefix))
        return [S3Object(k, len(self.objects[k]), "etag") for k in keys][:max_objects]

    def read_range(self, location, key, start, end):
        self.reads.append((key, start, end))
        return self.objects[key][start:end + 1]


def linear_csv(rows: int, seed: int = 1, noise: float = 0.1) -> bytes:
    rng = random.Random(seed)
    lines = ["a,b,city,target"]
    for _ in range(rows):
        a, b = rng.gauss(0, 1), rng.gauss(0, 1)
        lines.append(f"{a:.5f},{b:.5f},{rng.choice(['x', 'y', 'z'])},{2 * a - b + rng.gauss(0, noise):.5f}")
    return ("\n".join(lines) + "\n").encode()


def config(fmt: str = "csv") -> dict:
    return {"id": "storage-1", "uri": "s3://bucket/data/", "format": fmt}


def test_small_object_is_read_whole_and_counted_exactly():
    s3 = FakeS3({"data/part-0.csv": linear_csv(500)})
    got = sample.sample_storage(s3, config())
    assert got.columns == ["a", "b", "city", "target"] and len(got.rows) == 500
    assert got.estimated_rows == 500 and got.row_count_exact and not got.problems
    assert s3.reads == [("data/part-0.csv", 0, len(s3.objects["data/part-0.csv"]) - 1)]


def test_large_object_is_read_in_bounded_ranges_and_estimated():
    body = linear_csv(60_000)
    s3 = FakeS3({"data/big.csv": body})
    got = sample.sample_storage(s3, config())
    assert got.bytes_read <= sample.MAX_BYTES < len(body)
    assert len(s3.reads) == sample.CHUNKS and s3.reads[0][1] == 0
    assert sample.MAX_ROWS - sample.CHUNKS < len(got.rows) <= sample.MAX_ROWS and not got.row_count_exact
    assert abs(got.estimated_rows - 60_000) / 60_000 < 0.05
    assert all(len(row) == 4 and row["a"] is not None for row in got.rows)  # only complete lines were parsed


def test_many_objects_only_a_few_are_read():
    s3 = FakeS3({f"data/part-{i:03d}.csv": linear_csv(100, seed=i) for i in range(40)})
    got = sample.sample_storage(s3, config())
    assert got.objects == 40 and got.objects_read == sample.MAX_OBJECTS_SAMPLED
    assert {key for key, _, _ in s3.reads} == {"data/part-000.csv", "data/part-013.csv", "data/part-026.csv",
                                               "data/part-039.csv"}
    assert abs(got.estimated_rows - 4000) <= 40 and not got.row_count_exact


def test_several_large_objects_get_one_range_each_from_the_start():
    s3 = FakeS3({f"data/part-{i}.csv": linear_csv(20_000, seed=i) for i in range(6)})
    got = sample.sample_storage(s3, config())
    assert len(s3.reads) == sample.MAX_GETS and all(start == 0 for _, start, _ in s3.reads)
    assert got.bytes_read <= sample.MAX_BYTES and not got.row_count_exact
    assert abs(got.estimated_rows - 120_000) / 120_000 < 0.05


def test_jsonl_rows_and_bad_lines():
    lines = [json.dumps({"a": i, "b": None, "city": "x", "target": i * 2.0}) for i in range(30)] + ["[1]", "{oops"]
    s3 = FakeS3({"data/rows.jsonl": ("\n".join(lines) + "\n").encode()})
    got = sample.sample_storage(s3, config("jsonl"))
    assert len(got.rows) == 30 and got.rows[3] == {"a": "3", "b": None, "city": "x", "target": "6.0"}
    assert got.rows_rejected == 2 and "not JSON objects" in got.problems[0]


def test_parquet_is_not_sampled_and_says_why():
    s3 = FakeS3({"data/part.parquet": b"PAR1" + b"\x00" * 100 + b"PAR1"})
    got = sample.sample_storage(s3, config("parquet"))
    assert got.rows == [] and got.objects == 1 and got.estimated_rows is None and s3.reads == []
    assert "no Parquet reader" in got.problems[0]


def test_empty_prefix_is_a_problem_not_an_error():
    got = sample.sample_storage(FakeS3({}), config())
    assert got.rows == [] and "no objects" in got.problems[0]


def column(name: str, kind: str, values: list) -> Column:
    return Column(name, kind, [None if v is None else str(v) for v in values])


def test_probes_see_linear_and_nonlinear_targets():
    rng = random.Random(3)
    xs = [(rng.uniform(-1, 1), rng.uniform(-1, 1)) for _ in range(400)]
    features = [column("a", "number", [a for a, _ in xs]), column("b", "number", [b for _, b in xs])]
    linear = column("t", "number", [3 * a + b for a, b in xs])
    step = column("t", "string", ["p" if a * b > 0 else "n" for a, b in xs])
    lin = probes.cross_validate(probes.encode(features, linear, "regression"))
    assert lin["linear"] > 0.99 and lin["linear"] > lin["tree"]
    xor = probes.cross_validate(probes.encode(features, step, "classification"))
    assert xor["tree"] > 0.9 and xor["linear"] < 0.7


def test_probe_input_is_bounded():
    rng = random.Random(4)
    features = [column(f"f{i}", "number", [rng.random() for _ in range(3000)]) for i in range(80)]
    target = column("t", "number", [rng.random() for _ in range(3000)])
    problem = probes.encode(features, target, "regression")
    assert len(problem.y) == probes.PROBE_ROWS and problem.dims <= probes.MAX_DIMS


def test_solve_matches_a_known_system():
    w = probes.solve([[4.0, 2.0], [2.0, 3.0]], [[10.0], [8.0]])
    assert abs(w[0][0] - 1.75) < 1e-9 and abs(w[1][0] - 1.5) < 1e-9


def test_ties_follow_the_documented_order():
    assert scoring.choose({t: 50.0 for t in scoring.MODEL_TYPES}) == "random_forest"
    tied = {"decision_tree": 80.0, "random_forest": 70.0, "regression": 80.0, "neural_network": 80.0}
    assert scoring.choose(tied) == "regression"
    assert scoring.choose({**tied, "decision_tree": 80.1}) == "decision_tree"


def test_engine_linear_data_end_to_end():
    s3 = FakeS3({"data/part-0.csv": linear_csv(1500, noise=0.05)})
    result = recommend(summarize(TTL), [sample.sample_storage(s3, config())])
    assert result["task"] == "regression" and result["score_basis"] == "calibrated_probability"
    assert result["data_analysis"]["probes"]["linear"] > 0.99
    shipped = load_selector().probabilities("regression", result["data_analysis"], result["data_analysis"]["probes"])
    assert result["all_scores"] == {t: round(100 * p, 1) for t, p in shipped.items()}
    assert result["recommended_type"] == scoring.choose(result["all_scores"])
    assert result["score"] == result["all_scores"][result["recommended_type"]] == max(result["all_scores"].values())
    assert result == recommend(summarize(TTL), [sample.sample_storage(s3, config())])


def test_engine_without_target_answers_the_base_rates():
    ttl = TTL.replace("ex:target", "ex:value")
    s3 = FakeS3({"data/part-0.csv": linear_csv(50).replace(b"target", b"value")})
    result = recommend(summarize(ttl), [sample.sample_storage(s3, config())])
    assert result["task"] == "unknown" and result["score_basis"] == "base_rate"
    assert result["data_analysis"]["target"]["task"] == "unknown"
    assert result["all_scores"] == {t: round(100 * p, 1) for t, p in load_selector().prior("unknown").items()}
    assert "base rates" in result["reasoning"]


def test_the_tree_probe_splits_values_one_float_apart():
    """Two feature values that are adjacent floats: their midpoint rounds to the larger one, and a split
    there once sent every row left (an empty leaf, ZeroDivisionError, a 500 from recommend)."""
    low = 0.3
    high = math.nextafter(low, 1.0)
    assert (low + high) / 2 == high  # the rounding this guards against
    rows = 60
    x = [[low if i % 2 else high] for i in range(rows)]
    for task, y, classes in [("regression", [float(i % 2) for i in range(rows)], 0),
                             ("classification", [i % 2 for i in range(rows)], 2)]:
        problem = probes.Problem(x=x, y=y, task=task, classes=classes, dims=1, features_used=1, features_total=1)
        scores = probes.cross_validate(problem)
        assert scores["tree"] == 1.0, (task, scores)


def test_standardised_values_near_the_float_limit_stay_finite():
    values = [1e308, -1e308, 1.7e308, 0.0]
    out = probes._standardise(values)
    assert all(math.isfinite(v) for v in out)
    assert abs(sum(out)) < 1e-9 and abs(sum(v * v for v in out) / len(out) - 1) < 1e-9
