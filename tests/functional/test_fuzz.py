"""Property: no request to any route answers 5xx, and every error is a JSON {"code", "message"} body.

Hypothesis generates requests for every route in `ROUTE_ACCESS` (a new route without a template
here fails `test_every_route_is_fuzzed`): bodies that start from a valid one and then get fields
replaced by arbitrary JSON (deep nesting, lone surrogates, huge and tiny numbers, long strings,
wrong types), unknown fields added or required ones dropped, or raw bodies that are not JSON at
all; ids and query parameters that are real, random or hostile. The run is derandomized, so CI
sees the same cases every time, and prints how many requests it sent and how many answered 5xx.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runs import own_artifact

from chalicelib.api.http import ROUTE_ACCESS

EXAMPLES = 2000

# Text of any code point, lone surrogates included (Hypothesis leaves category Cs out by default).
ANY_CHAR = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())
TEXT = st.one_of(st.sampled_from(["", " ", "\ud800", "a\udfffb", "\udc00\ud800", "../../etc", "s3://x/y", "%00",
                                  "null", "\x00", "\N{GRINNING FACE}"]),
                 st.text(max_size=20), st.text(ANY_CHAR, max_size=20))
NUMBERS = st.one_of(
    st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -0.0, 1e125, 1e126, 1e-130, 1e-131, 5e-324, 1.7976931348623157e308, 10**38, 10**39 + 1,
                     2**63, -(2**64)]),
)
# Object keys: mostly ordinary ones, so a hostile value is not always refused for its key first.
KEYS = st.one_of(st.sampled_from(["k", "accuracy", "per_class", "team", "hyperparameters", "max_depth"]),
                 st.text(st.characters(codec="utf-8"), max_size=10), TEXT)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(KEYS, inner, max_size=4)), max_leaves=12)


def deep(depth: int, opener: str) -> str:
    closer = "]" if opener == "[" else "}"
    return (opener if opener == "[" else '{"a":') * depth + "1" + closer * depth


# Long strings: "x" is 1 byte in the body and the item, "é" 6 (a \u00e9 escape) in both.
BIG_TEXT = st.one_of(st.builds(lambda n: "x" * n, st.sampled_from([100_000, 360_000, 450_000, 900_000])),
                     st.builds(lambda n: "\u00e9" * n, st.sampled_from([20_000, 70_000, 160_000])))


# Values written as JSON text, because json.dumps cannot write them (or writes them differently).
RAW_VALUES = st.one_of(
    st.builds(deep, st.one_of(st.integers(30, 3000), st.sampled_from([33, 900, 990, 999])),
              st.sampled_from(["[", "{"])),
    st.builds(lambda n, d: d * n, st.integers(39, 5000), st.sampled_from(["9", "1"])),  # long integers
    st.builds(lambda n: "0." + "1" * n, st.integers(30, 400)),
    st.builds(lambda n: f"1e{n}", st.integers(-400, 400)),
    # Just outside (and just inside) what DynamoDB stores: 38 significant digits, 1E-130 to 1E+126.
    st.sampled_from(["1e126", "-1E+126", "1e-131", "9.9e125", "1e-130", "5e-324", "1.7976931348623157e308",
                     "1" * 39, "-" + "9" * 38, "1" + "0" * 130, "0." + "0" * 131 + "1"]),
    st.sampled_from(["NaN", "Infinity", "-Infinity", '"\\ud800"', '"\\udc00\\ud800"', '"\\u0000"', "1" * 4301]),
    BIG_TEXT.map(json.dumps),
)
# Whole bodies that are not a JSON object, or not JSON.
RAW_BODIES = st.one_of(
    st.sampled_from(["[" * 100_000, "{" * 50_000, "", "{", '{"a": }', "null", "[]", "42", '"text"', "\ufeff{}",
                     '{"a": 1, "a": 2}', "{\"a\": \"\\ud800\"}", "\x00"]),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
    RAW_VALUES,
)


class Ids:
    """Real ids of the records the fuzz works on, filled by the fixture."""

    project = ontology = model = storage = run = token = ""
    # A trained model (v1) with a prediction job, and that job's token.
    trained = prediction = prediction_token = evaluation = evaluation_token = ""


def templates(ids: Ids) -> dict[tuple[str, str], dict]:
    """A valid body per (path, method): the fuzz starts from it and breaks it."""
    create_model = {"project_id": ids.project, "ontology_id": ids.ontology, "name": "m", "type": "regression",
                    "description": "d", "metadata": {"team": "a"},
                    "training_config": {"train_test_split": 0.8, "random_seed": 1, "learning_rate": 0.01,
                                        "batch_size": 8, "max_iterations": 5, "hyperparameters": {}},
                    "monitoring": {"storage_ids": [ids.storage], "every_minutes": 60, "max_drop": 0.05,
                                   "max_psi": 0.2, "metric": "accuracy"}}
    return {
        ("/api/ml-models", "POST"): create_model,
        ("/api/ml-models/{model_id}", "PUT"): {"name": "n", "description": "d",
                                               "metadata": {"k": 1}, "performance_metrics": {"accuracy": 0.5},
                                               "training_metrics": {"loss": [0.5, 0.4]},
                                               "monitoring": {"storage_ids": [ids.storage], "every_minutes": 30}},
        ("/api/ml-models/recommend", "POST"): {"project_id": ids.project, "ontology_id": ids.ontology,
                                               "storage_ids": [ids.storage], "target_column": "temperature"},
        ("/api/ontologies", "POST"): {"project_id": ids.project, "name": "o", "description": "d",
                                      "content": "@prefix ex: <http://example.org/> .\nex:A a ex:B ."},
        ("/api/ontologies/{ontology_id}", "PUT"): {"name": "o", "description": "d"},
        ("/api/storage-configs", "POST"): {"project_id": ids.project, "name": "s", "ontology_id": ids.ontology,
                                           "uri": f"s3://ml-models-data-local/{ids.project}/d/", "format": "csv"},
        ("/api/storage-configs/{storage_id}", "PUT"): {"name": "s", "format": "parquet"},
        ("/api/ml-models/train", "POST"): {"model_id": ids.model, "storage_ids": [],
                                           "training_config": {"random_seed": 3}},
        ("/api/ml-models/{model_id}/training/complete", "POST"): {
            "model_artifact_path": "", "performance_metrics": {"accuracy": 0.9}, "training_metrics": {"loss": 0.1}},
        ("/api/ml-models/{model_id}/training/fail", "POST"): {"reason": "out of memory"},
        ("/api/ml-models/{model_id}/training/progress", "POST"): {"epoch": 1, "training_loss": 0.5,
                                                                  "validation_loss": 0.6},
        ("/api/ml-models/{model_id}/training/credentials", "POST"): {},
        ("/api/ml-models/{model_id}/training/cancel", "POST"): {},
        ("/api/ml-models/{model_id}/versions/{version}/promote", "POST"): {},
        ("/api/ml-models/{model_id}/predictions", "POST"): {
            "storage_ids": [ids.storage], "version": 1, "passthrough_columns": ["id"], "output_format": "parquet"},
        ("/api/ml-models/{model_id}/predictions/{prediction_id}/cancel", "POST"): {},
        ("/api/ml-models/{model_id}/predictions/{prediction_id}/progress", "POST"): {"rows": 10},
        ("/api/ml-models/{model_id}/predictions/{prediction_id}/complete", "POST"): {"rows": 10, "error_rows": 0},
        ("/api/ml-models/{model_id}/predictions/{prediction_id}/fail", "POST"): {"reason": "input unreadable"},
        ("/api/ml-models/{model_id}/evaluations", "POST"): {"storage_ids": [ids.storage], "version": 1},
        ("/api/ml-models/{model_id}/evaluations/{evaluation_id}/cancel", "POST"): {},
        ("/api/ml-models/{model_id}/evaluations/{evaluation_id}/progress", "POST"): {"rows": 10},
        ("/api/ml-models/{model_id}/evaluations/{evaluation_id}/complete", "POST"): {},
        ("/api/ml-models/{model_id}/evaluations/{evaluation_id}/fail", "POST"): {"reason": "labels missing"},
        ("/api/ml-models/{model_id}/evaluations/{evaluation_id}/credentials", "POST"): {},
        ("/api/ml-models/{model_id}/predictions/{prediction_id}/credentials", "POST"): {},
        ("/api/ml-models/{model_id}/predict", "POST"): {"instances": [{"temperature": 1.5, "humidity": 2}],
                                                       "version": 1},
    }


QUERIES = {"/api/ml-models": ("project_id", "limit", "next_token"),
           "/api/ontologies": ("project_id", "limit", "next_token"),
           "/api/storage-configs": ("project_id", "limit", "next_token"),
           "/api/ml-models/{model_id}/runs": ("limit", "next_token"),
           "/api/ml-models/{model_id}/predictions": ("limit", "next_token"),
           "/api/ml-models/{model_id}/evaluations": ("limit", "next_token")}


@st.composite
def bodies(draw, template: dict | None) -> str | None:
    """Request body text: a valid template broken in one to three places, or something else entirely.

    The body is kept as field name → JSON text, so a field (or a key inside an object field) can
    hold text json.dumps would never write."""
    if template is None or draw(st.sampled_from(["template"] * 9 + ["other"])) == "other":
        return draw(st.one_of(st.none(), RAW_BODIES, JSON.map(json.dumps)))
    fields = {name: json.dumps(value) for name, value in template.items()}
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["text", "replace", "raw", "inside", "inside", "big", "drop", "unknown"]))
        name = draw(st.sampled_from(sorted(template) or ["x"]))
        if action == "big":  # a field too big for the record, though the body is under 1 MiB
            blob = draw(BIG_TEXT)
            fields[name] = json.dumps({"blob": blob} if isinstance(template.get(name), dict) else blob)
        elif action == "text":  # the right type, hostile text: most fields are strings
            fields[name] = json.dumps(draw(TEXT))
        elif action == "replace":
            fields[name] = json.dumps(draw(JSON))
        elif action == "raw":
            fields[name] = draw(RAW_VALUES)
        elif action == "inside":  # a hostile value one level down, next to the template's own keys
            value = draw(st.one_of(RAW_VALUES, JSON.map(json.dumps)))
            own = template.get(name)
            if isinstance(own, list):
                fields[name] = "[" + ", ".join([*map(json.dumps, own), value]) + "]"
            else:
                own = own if isinstance(own, dict) else {}
                pairs = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in own.items()]
                fields[name] = "{" + ", ".join([*pairs, f"{json.dumps(draw(KEYS))}: {value}"]) + "}"
        elif action == "drop":
            fields.pop(name, None)
        else:
            fields[draw(KEYS)] = draw(st.one_of(RAW_VALUES, JSON.map(json.dumps)))
    return "{" + ", ".join(f"{json.dumps(name)}: {text}" for name, text in fields.items()) + "}"


def segment(value: str) -> str:
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def hostile_ids(real: str) -> st.SearchStrategy[str]:
    return st.one_of(st.just(real), st.just(real), st.just(real), st.text(ANY_CHAR, min_size=1, max_size=30),
                     st.sampled_from(["model-nope", "x" * 3000, "..", "%2F", " "]))


class Request:
    """One generated request; its repr (what Hypothesis shows for a failing case) keeps bodies short."""

    def __init__(self, method: str, url: str, body: str | None, headers: dict[str, str]) -> None:
        self.method, self.url, self.body, self.headers = method, url, body, headers

    def __repr__(self) -> str:
        body = self.body if self.body is None or len(self.body) <= 1000 else \
            f"{self.body[:150]!r} ... {self.body[-150:]!r} ({len(self.body)} chars)"
        return f"Request({self.method} {self.url[:300]} body={body} headers={self.headers})"


@st.composite
def callback_headers(draw, path: str, ids: Ids) -> dict[str, str]:
    """A job's callbacks get its token (mostly), a forged one or none."""
    for marker, token in (("/predictions/{prediction_id}/", ids.prediction_token),
                          ("/evaluations/{evaluation_id}/", ids.evaluation_token)):
        if marker in path:
            return {"Authorization": f"Bearer {draw(st.sampled_from([token, token, 'forged', '']))}"}
    if "/training/" in path:
        return {"Authorization": f"Bearer {draw(st.sampled_from([ids.token, ids.token, 'forged', '']))}",
                "X-Training-Run-Id": draw(st.sampled_from([ids.run, ids.run, "run-x", ""]))}
    return {}


@st.composite
def requests(draw, ids: Ids) -> Request:
    path, method = draw(st.sampled_from(sorted(ROUTE_ACCESS)))
    on_trained = "/predict" in path or "/evaluations" in path  # these routes work on the trained model
    params = {"model_id": ids.trained if on_trained else ids.model, "ontology_id": ids.ontology,
              "storage_id": ids.storage, "run_id": ids.run, "version": "1", "prediction_id": ids.prediction,
              "evaluation_id": ids.evaluation}
    url = path
    for name, real in params.items():
        if "{" + name + "}" in url:
            # DELETE only hostile ids: deleting the records under test would starve the rest of the run.
            value = draw(hostile_ids(real).filter(lambda v, r=real: v != r)) if method == "DELETE" \
                else draw(hostile_ids(real))
            url = url.replace("{" + name + "}", segment(value))
    if method == "GET" and path in QUERIES:
        query = {}
        for name in QUERIES[path]:
            real = {"project_id": ids.project, "limit": "10", "next_token": ""}[name]
            value = draw(st.one_of(st.just(real), st.none(), TEXT, st.text(st.characters(codec="ascii"),
                                                                            max_size=80)))
            if value is not None:
                query[name] = value
        if query:
            url += "?" + "&".join(f"{segment(k)}={segment(v)}" for k, v in query.items())
    body = draw(bodies(templates(ids).get((path, method)))) if method in ("POST", "PUT") else None
    headers = draw(callback_headers(path, ids))
    # Mostly the right media type (Hypothesis favours the first choices), sometimes not.
    content_type = draw(st.sampled_from(["application/json"] * 30 + ["text/plain", "application/JSON", "",
                                                                     "application/json; charset=latin-1"]))
    if content_type != "application/json":
        headers["Content-Type"] = content_type
    return Request(method, url, body, headers)


@pytest.fixture
def ids(api, launcher, project, ontology, make_model) -> Ids:
    found = Ids()
    found.project, found.ontology = project, ontology["id"]
    reply = api.post("/api/storage-configs", {"project_id": project, "name": "s", "ontology_id": ontology["id"],
                                              "uri": f"s3://ml-models-data-local/{project}/d/", "format": "csv"})
    assert reply.status == 201, reply
    found.storage = reply.json["id"]
    found.model = make_model()["id"]
    assert api.post("/api/ml-models/train", {"model_id": found.model}).status == 202
    job = launcher.jobs[-1]
    found.run, found.token = job.run_id, job.callback_token
    own_artifact(api, job)
    found.trained = make_model()["id"]
    assert api.post("/api/ml-models/train", {"model_id": found.trained}).status == 202
    trained = launcher.jobs[-1]
    assert api.post(f"/api/ml-models/{found.trained}/training/complete",
                    {"model_artifact_path": own_artifact(api, trained)},
                    headers={"Authorization": f"Bearer {trained.callback_token}"}).status == 200
    reply = api.post(f"/api/ml-models/{found.trained}/predictions", {"storage_ids": [found.storage]})
    assert reply.status == 202, reply
    found.prediction, found.prediction_token = reply.json["id"], launcher.jobs[-1].callback_token
    reply = api.post(f"/api/ml-models/{found.trained}/evaluations", {"storage_ids": [found.storage]})
    assert reply.status == 202, reply
    found.evaluation, found.evaluation_token = reply.json["id"], launcher.jobs[-1].callback_token
    return found


def test_every_route_is_fuzzed(ids):
    bodies_routes = {key for key in ROUTE_ACCESS if key[1] in ("POST", "PUT")}
    assert bodies_routes == set(templates(ids)), "a route takes a body the fuzz has no template for"
    assert {p for p, m in ROUTE_ACCESS if m == "GET" and "{" not in p} <= set(QUERIES)


def test_no_input_gets_a_5xx(api, ids, capsys):
    statuses: Counter[int] = Counter()
    durations: list[float] = []

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, print_blob=True,
              suppress_health_check=list(HealthCheck))
    @given(requests(ids))
    def no_5xx(request):
        started = time.perf_counter()
        reply = api.request(request.method, request.url, raw=request.body, headers=request.headers)
        durations.append(time.perf_counter() - started)
        statuses[reply.status] += 1
        assert reply.status < 500, (request, reply)
        if reply.status >= 400:
            assert isinstance(reply.json, dict) and {"code", "message"} <= set(reply.json), reply
            assert "Traceback" not in reply.raw.decode()
        elif reply.raw:
            json.loads(reply.raw)

    try:
        no_5xx()
    finally:
        fives = sum(n for status, n in statuses.items() if status >= 500)
        durations.sort()
        p95 = durations[int(0.95 * (len(durations) - 1))] * 1000 if durations else 0.0
        by_status = ", ".join(f"{status}: {n}" for status, n in sorted(statuses.items()))
        with capsys.disabled():  # shown with or without -s
            print(f"\nfuzz: {sum(statuses.values())} generated requests over {len(ROUTE_ACCESS)} routes; "
                  f"5xx: {fives}; p95 {p95:.1f} ms; by status: {by_status}")
