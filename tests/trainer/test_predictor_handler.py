"""The predictor function's handler (`trainer.predictor`) on real artifacts of every model type.

The artifacts are written by the trainer as a process (synthetic customer data, small and quick),
then loaded by the handler from moto server S3. Its answers must be exactly the loader's, after a
JSON round trip; bad instances get the documented error; artifacts that cannot be loaded get an
`artifact_error` and no traceback.
"""
from __future__ import annotations

import json
import math
import random

import pytest
from botocore.config import Config
from ontologies import CUSTOMER_TTL
from trainer_helpers import ARTIFACT_BUCKET, CallbackReceiver, free_port, make_spec, new_ids, run_many, trainer_env

from trainer import predictor
from trainer.loader import load_model
from trainer.predictor import MAX_INSTANCES, ModelCache, handle, instance_frame, predict_rows

pytestmark = pytest.mark.integration

# (model type, target column): a classifier of three classes, and Ridge on a number for `regression`.
CASES = {
    "decision_tree": "label",
    "random_forest": "label",
    "regression": "spend",
    "neural_network": "label",
}
CONFIG = {"train_test_split": 0.8, "random_seed": 3, "max_iterations": 10, "learning_rate": 0.01,
          "batch_size": 64, "synthetic_rows": 300}
PLANS = ["plan_a", "plan_b", "plan_c", "plan_d", "plan_e", "plan_unseen"]


@pytest.fixture(scope="module")
def artifacts(moto_server, s3):
    """model type -> artifact URI, each trained by `python -m trainer`."""
    cases, envs = {}, {}
    for model_type, target in CASES.items():
        receiver = CallbackReceiver()
        model_id, run_id = new_ids()
        spec = make_spec(model_id, run_id, model_type, CUSTOMER_TTL, [], {**CONFIG, "target_column": target})
        cases[model_type] = (spec, receiver)
        envs[model_type] = trainer_env(moto_server, receiver, spec)
    try:
        done = run_many(envs, workers=2)
    finally:
        for _, receiver in cases.values():
            receiver.stop()
    for model_type, result in done.items():
        assert result.returncode == 0, (model_type, result.stderr[-3000:])
    return {model_type: f"s3://{ARTIFACT_BUCKET}/models/{spec['model_id']}/v1/"
            for model_type, (spec, _) in cases.items()}


@pytest.fixture(scope="module")
def loaded(artifacts, s3):
    """model type -> the loader's own LoadedModel (not the handler's), to compare with."""
    return {model_type: load_model(uri, s3) for model_type, uri in artifacts.items()}


@pytest.fixture
def models(s3):
    """A fresh cache that loads from moto server and counts its loads."""
    return ModelCache(load=lambda uri: load_model(uri, s3))


def instances(count: int, seed: int = 11) -> list[dict]:
    """Customer rows as a client sends them: JSON values, some nulls, an unseen plan, an extra key."""
    rng = random.Random(seed)

    def maybe(value):
        return None if rng.random() < 0.05 else value

    rows = []
    for _ in range(count):
        rows.append({
            "age": maybe(rng.randint(0, 99)),
            "income": maybe(round(rng.gauss(30, 10), 3)),
            "plan": maybe(rng.choice(PLANS)),
            "is_active": maybe(rng.random() < 0.5),
            "signup_date": maybe(f"202{rng.randint(0, 4)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
                                 + rng.choice(["T10:30:00Z", "", " 08:00", "T12:00:00+02:00"])),
            "spend": maybe(rng.gauss(0, 5)),
            "label": maybe(rng.choice(["class_a", "class_b", "class_c"])),
            "customer_id": "c-1",  # not a feature (excluded as an identifier): ignored
            "note": "not in the schema",
        })
    return rows


def event(uri: str, rows, model_id: str = "model-x", version: int = 1) -> dict:
    return {"model_id": model_id, "version": version, "artifact_uri": uri, "instances": rows}


def round_trip(value):
    return json.loads(json.dumps(value, allow_nan=False))


@pytest.mark.parametrize("count", [1, MAX_INSTANCES])
@pytest.mark.parametrize("model_type", list(CASES))
def test_answers_exactly_what_the_loader_predicts(model_type, count, artifacts, loaded, models):
    rows = instances(count)
    reference = loaded[model_type]

    result = round_trip(handle(round_trip(event(artifacts[model_type], rows, "model-7", 3)), models))

    assert result["model_id"] == "model-7" and result["version"] == 3
    assert result["predictions"] == reference.predict(rows)
    if reference.task == "classification":
        assert set(result) == {"model_id", "version", "predictions", "probabilities", "classes"}
        assert result["classes"] == reference.classes == ["class_a", "class_b", "class_c"]
        assert result["probabilities"] == reference.predict_proba(rows)
        assert all(len(p) == 3 and math.isclose(sum(p), 1.0) for p in result["probabilities"])
        assert set(result["predictions"]) <= set(reference.classes)
    else:
        assert set(result) == {"model_id", "version", "predictions"}
        assert all(type(p) is float for p in result["predictions"])
    assert len(result["predictions"]) == count
    assert result == handle(event(artifacts[model_type], rows, "model-7", 3), models)  # JSON-native already
    assert predict_rows(reference, rows) == {k: v for k, v in result.items() if k not in ("model_id", "version")}


def test_a_warm_call_does_not_reload_and_the_uri_is_one_key(artifacts, models):
    uri = artifacts["neural_network"]
    first = handle(event(uri, instances(5)), models)
    second = handle(event(uri.rstrip("/"), instances(5)), models)
    assert models.loads == 1 and first == second
    handle(event(artifacts["decision_tree"], instances(5)), models)
    assert models.loads == 2


def test_the_cache_keeps_the_most_recently_used_versions():
    loads: list[str] = []
    cache = ModelCache(load=lambda uri: loads.append(uri) or f"model of {uri}", size=2)
    for uri in ["a", "b", "a", "c", "a", "b"]:
        assert cache.get(uri)[0] == f"model of {uri}"
    assert loads == ["a", "b", "c", "b"]  # c evicted b (a was used more recently); b evicted c
    assert cache.loads == 4 and "a" in cache and "c" not in cache


def test_the_lambda_entry_point_loads_from_s3_of_its_environment(artifacts, loaded, moto_server, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    rows = instances(3)
    result = predictor.handler(event(artifacts["random_forest"], rows), None)
    assert result["predictions"] == loaded["random_forest"].predict(rows)
    assert artifacts["random_forest"] in predictor.MODELS


def test_nulls_extra_keys_and_numbers_as_text_are_accepted(artifacts, loaded, models):
    reference = loaded["decision_tree"]
    nulls = {name: None for name in reference.feature_names}
    assert handle(event(artifacts["decision_tree"], [nulls]), models)["predictions"] == reference.predict([nulls])
    as_number = {**instances(1)[0], "plan": 3}
    assert predict_rows(reference, [as_number]) == predict_rows(reference, [{**as_number, "plan": "3"}])
    # Left to a DataFrame of these dicts, the column would read 3.0, 2.5 and null, and 3 become "3.0".
    rows = [as_number, {**as_number, "plan": 2.5}, {**as_number, "plan": None}]
    assert instance_frame(reference.manifest["input_schema"], rows)["plan"].tolist() == ["3", "2.5", None]


def valid() -> dict:
    return {"age": 30, "income": 12.5, "plan": "plan_a", "is_active": True, "signup_date": "2024-05-01T12:00:00Z",
            "spend": 3.0}


BAD_VALUES = [
    ("age", "hot", 'instances[1].age must be a number, got "hot"'),
    ("age", True, "instances[1].age must be a number, got true"),
    ("income", [1.0], "instances[1].income must be a number, got [1.0]"),
    ("income", math.inf, "instances[1].income must be a finite number, got Infinity"),
    ("age", 10**400, "instances[1].age must be a finite number, got 1000"),
    ("is_active", "yes", 'instances[1].is_active must be true, false or null, got "yes"'),
    ("is_active", 1, "instances[1].is_active must be true, false or null, got 1"),
    ("signup_date", 20240501, 'instances[1].signup_date must be a datetime string such as "2024-05-01T12:00:00Z", '
                              "got 20240501"),
    ("signup_date", "tomorrow", 'instances[1].signup_date must be a datetime string such as "2024-05-01T12:00:00Z", '
                                'got "tomorrow"'),
    ("plan", False, "instances[1].plan must be a string, got false"),
    ("plan", {"a": 1}, 'instances[1].plan must be a string, got {"a": 1}'),
]


@pytest.mark.parametrize(("feature", "value", "message"), BAD_VALUES)
def test_a_bad_value_is_named_with_its_field(feature, value, message, artifacts, models):
    rows = [valid(), {**valid(), feature: value}, valid()]
    result = handle(event(artifacts["decision_tree"], rows), models)
    assert set(result) == {"error"}
    assert result["error"]["code"] == "invalid_input" and result["error"]["field"] == f"instances[1].{feature}"
    assert result["error"]["message"].startswith(message)
    assert len(result["error"]["message"]) < 200


@pytest.mark.parametrize(("rows", "message", "field"), [
    ({"age": 1}, 'instances must be a list of objects, got {"age": 1}', "instances"),
    ([], "instances must hold at least one instance", "instances"),
    ([valid()] * (MAX_INSTANCES + 1), f"instances holds {MAX_INSTANCES + 1} instances; at most {MAX_INSTANCES} "
                                      "per request", "instances"),
    ([valid(), 5], "instances[1] must be a JSON object, got 5", "instances[1]"),
    ([{k: v for k, v in valid().items() if k != "income"}], "instances[0] is missing feature 'income'",
     "instances[0].income"),
])
def test_the_instances_shape_is_checked(rows, message, field, artifacts, models):
    result = handle(event(artifacts["decision_tree"], rows), models)
    assert result == {"error": {"code": "invalid_input", "message": message, "field": field}}


def test_a_request_refused_for_its_shape_costs_no_load(artifacts, models):
    handle(event(artifacts["decision_tree"], [valid()] * (MAX_INSTANCES + 1)), models)
    assert models.loads == 0


def test_the_first_problem_in_instance_then_schema_order_is_reported(artifacts, loaded, models):
    uri = artifacts["decision_tree"]
    names = loaded["decision_tree"].feature_names
    bad_date, bad_age = {**valid(), "signup_date": "someday"}, {**valid(), "age": "old"}
    assert handle(event(uri, [valid(), bad_date, bad_age]), models)["error"]["field"] == "instances[1].signup_date"
    assert handle(event(uri, [valid(), bad_age, bad_date]), models)["error"]["field"] == "instances[1].age"
    both = {**bad_date, "age": "old"}
    first = min(["signup_date", "age"], key=names.index)
    assert handle(event(uri, [both]), models)["error"]["field"] == f"instances[0].{first}"


def test_a_malformed_event_raises():
    with pytest.raises(ValueError, match="artifact_uri"):
        handle({"instances": [valid()]}, ModelCache(load=lambda uri: pytest.fail("no load expected")))


def copy_version(s3, uri: str, name: str) -> tuple[str, str]:
    """A copy of the version at `uri` under a new prefix: (its URI, its key prefix)."""
    source = uri[len(f"s3://{ARTIFACT_BUCKET}/"):]
    target = f"broken/{name}/v1/"
    for item in s3.list_objects_v2(Bucket=ARTIFACT_BUCKET, Prefix=source)["Contents"]:
        body = s3.get_object(Bucket=ARTIFACT_BUCKET, Key=item["Key"])["Body"].read()
        s3.put_object(Bucket=ARTIFACT_BUCKET, Key=target + item["Key"][len(source):], Body=body)
    return f"s3://{ARTIFACT_BUCKET}/{target}", target


def rewrite_manifest(s3, prefix: str, change) -> None:
    key = prefix + "manifest.json"
    manifest = json.loads(s3.get_object(Bucket=ARTIFACT_BUCKET, Key=key)["Body"].read())
    change(manifest)
    s3.put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=json.dumps(manifest).encode())


def assert_artifact_error(result: dict, uri: str, *details: str) -> None:
    assert set(result) == {"error"} and set(result["error"]) == {"code", "message"}
    assert result["error"]["code"] == "artifact_error"
    message = result["error"]["message"]
    assert message.startswith(f"model artifact {uri} cannot be loaded: ")
    assert all(detail in message for detail in details), message
    assert "Traceback" not in message and "File \"" not in message


def test_a_corrupted_model_file_is_an_artifact_error(artifacts, s3, models):
    uri, prefix = copy_version(s3, artifacts["decision_tree"], "corrupted")
    s3.put_object(Bucket=ARTIFACT_BUCKET, Key=prefix + "model.skops", Body=b"not a model")
    assert_artifact_error(handle(event(uri, [valid()]), models), uri, "sha256 mismatch", "model.skops")


def test_a_corrupted_file_with_a_matching_manifest_is_an_artifact_error(artifacts, s3, models):
    import hashlib

    uri, prefix = copy_version(s3, artifacts["neural_network"], "resigned")
    s3.put_object(Bucket=ARTIFACT_BUCKET, Key=prefix + "network.pt", Body=b"garbage")
    rewrite_manifest(s3, prefix, lambda m: m["files"]["network.pt"].update(
        sha256=hashlib.sha256(b"garbage").hexdigest(), size=7))
    assert_artifact_error(handle(event(uri, [valid()]), models), uri)


def test_a_missing_version_or_an_unknown_format_is_an_artifact_error(artifacts, s3, models):
    missing = f"s3://{ARTIFACT_BUCKET}/models/no-such-model/v9/"
    assert_artifact_error(handle(event(missing, [valid()]), models), missing,
                          f"cannot read {missing}manifest.json (NoSuchKey)")
    uri, prefix = copy_version(s3, artifacts["regression"], "future")
    rewrite_manifest(s3, prefix, lambda m: m.update(format_version=99))
    assert_artifact_error(handle(event(uri, [valid()]), models), uri, "format_version 99")
    assert models.loads == 0  # nothing broken is cached


def test_unreachable_storage_is_retryable_not_an_artifact_error(artifacts):
    import boto3

    dead = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{free_port()}", region_name="us-east-1",
                        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1))
    result = handle(event(artifacts["decision_tree"], [valid()]), ModelCache(load=lambda uri: load_model(uri, dead)))
    assert result["error"]["code"] == "storage_unavailable"
    assert "EndpointConnectionError" in result["error"]["message"] and artifacts["decision_tree"] in \
        result["error"]["message"]
