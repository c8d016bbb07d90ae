"""Failure paths of `python -m trainer`: each ends in one delivered fail report with a clear reason,
a non-zero exit code, and no committed artifact."""
from __future__ import annotations

import json
import signal
import threading
import time

import pytest
from ontologies import CUSTOMER_TTL
from trainer_helpers import (
    ARTIFACT_BUCKET,
    DATA_BUCKET,
    CallbackReceiver,
    make_spec,
    new_ids,
    put_frame,
    run_many,
    run_trainer,
    start_trainer,
    trainer_env,
)

from trainer.ontology import choose_target, parse_columns
from trainer.synthetic import synthetic_frame

pytestmark = pytest.mark.integration
CONFIG = {"train_test_split": 0.8, "random_seed": 1, "max_iterations": 5}
NO_TARGET_TTL = """
@prefix : <http://example.org/x#> .
@prefix owl: <http://www.w3.org/2002/07/owl#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
:height a owl:DatatypeProperty ; rdfs:range xsd:double .
:weight a owl:DatatypeProperty ; rdfs:range xsd:double .
"""


@pytest.fixture(scope="module")
def customers(s3):
    columns = parse_columns(CUSTOMER_TTL)
    frame = synthetic_frame(columns, choose_target(columns, None), rows=300, seed=2)
    put_frame(s3, "customers/ok.csv", frame, "csv")
    put_frame(s3, "no-label/data.csv", frame.drop(columns=["label"]), "csv")
    s3.put_object(Bucket=DATA_BUCKET, Key="empty/part-0.csv", Body=b"")
    s3.put_object(Bucket=DATA_BUCKET, Key="broken/part-0.parquet", Body=b"PAR1 this is not parquet")
    return frame


def _storage(prefix: str, fmt: str = "csv") -> list[dict]:
    return [{"id": "st", "uri": f"s3://{DATA_BUCKET}/{prefix}", "format": fmt}]


# Invalid hyperparameter values are covered in-process by test_trainer_units.py.
# name -> (model type, ttl, storage, config overrides, receiver statuses, words the reason must contain)
CASES = {
    "missing target column": (
        "decision_tree", CUSTOMER_TTL, _storage("no-label/"), {}, [], ["target column 'label'", "no-label/data.csv"],
    ),
    "empty data": ("random_forest", CUSTOMER_TTL, _storage("empty/"), {}, [], ["no training data", "empty/"]),
    "no objects at all": ("regression", CUSTOMER_TTL, _storage("nothing-here/"), {}, [], ["no training data"]),
    "unknown hyperparameter": (
        "decision_tree", CUSTOMER_TTL, _storage("customers/"), {"hyperparameters": {"max_depthh": 3}}, [],
        ["unknown hyperparameter 'max_depthh'", "max_depth"],
    ),
    "unreadable object": (
        "regression", CUSTOMER_TTL, _storage("broken/", "parquet"), {}, [],
        [f"s3://{DATA_BUCKET}/broken/part-0.parquet", "unreadable"],
    ),
    "no target candidates": ("decision_tree", NO_TARGET_TTL, [], {}, [], ["no target column", "height, weight"]),
    "fail callback answered 5xx twice": (
        "decision_tree", CUSTOMER_TTL, _storage("no-label/"), {}, [503, 502], ["target column 'label'"],
    ),
}


@pytest.fixture(scope="module")
def failures(customers, moto_server):
    cases, envs = {}, {}
    for name, (model_type, ttl, storage, overrides, statuses, _) in CASES.items():
        receiver = CallbackReceiver(statuses=statuses)
        model_id, run_id = new_ids()
        spec = make_spec(model_id, run_id, model_type, ttl, storage, {**CONFIG, **overrides})
        cases[name] = (spec, receiver)
        envs[name] = trainer_env(moto_server, receiver, spec)
    try:
        done = run_many(envs)
        yield {name: (done[name], *cases[name]) for name in cases}
    finally:
        for _, receiver in cases.values():
            receiver.stop()


def assert_failed_once(done, receiver, spec, s3, words):
    assert done.returncode != 0, done.stderr[-2000:]
    assert receiver.calls("complete") == []
    [fail] = receiver.delivered("fail")
    reason = fail["body"]["reason"]
    for word in words:
        assert word in reason
    assert fail["headers"]["Authorization"] == "Bearer test-token"
    assert fail["headers"]["X-Training-Run-Id"] == spec["run_id"]
    listed = s3.list_objects_v2(Bucket=ARTIFACT_BUCKET, Prefix=f"models/{spec['model_id']}/")
    assert "Contents" not in listed
    return reason


@pytest.mark.parametrize("case", list(CASES))
def test_failure_reports_reason_once(case, failures, s3):
    done, spec, receiver = failures[case]
    assert_failed_once(done, receiver, spec, s3, CASES[case][5])
    if case == "fail callback answered 5xx twice":
        assert [call["status"] for call in receiver.calls("fail")] == [503, 502, 200]


def test_existing_version_is_never_overwritten(customers, s3, moto_server, receiver):
    model_id, run_id = new_ids()
    key = f"models/{model_id}/v2/manifest.json"
    s3.put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=b'{"earlier": true}')
    spec = make_spec(model_id, run_id, "decision_tree", CUSTOMER_TTL, _storage("customers/"), CONFIG, version=2)

    done = run_trainer(trainer_env(moto_server, receiver, spec))

    assert done.returncode != 0
    [fail] = receiver.delivered("fail")
    assert "already exists" in fail["body"]["reason"] and f"{model_id}/v2/" in fail["body"]["reason"]
    assert json.loads(s3.get_object(Bucket=ARTIFACT_BUCKET, Key=key)["Body"].read()) == {"earlier": True}
    assert receiver.calls("complete") == []


def test_callback_down_for_a_while_is_retried_and_delivered_once(customers, s3, moto_server, receiver_factory):
    receiver = receiver_factory(start_delay=None)  # nothing listens yet: connection refused
    model_id, run_id = new_ids()
    spec = make_spec(model_id, run_id, "decision_tree", CUSTOMER_TTL, _storage("customers/"), CONFIG)
    process = start_trainer(trainer_env(moto_server, receiver, spec, TRAINER_CALLBACK_BACKOFF="0.3"))
    lines: list[str] = []

    def watch() -> None:
        for line in process.stderr:
            lines.append(line)
            if "callback attempt failed" in line and '"action": "complete"' in line:
                threading.Timer(1.0, receiver.start).start()  # up again while the trainer backs off

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert process.wait(timeout=120) == 0, "".join(lines)[-3000:]
    watcher.join(timeout=5)

    attempts = [line for line in lines if "callback attempt failed" in line and '"action": "complete"' in line]
    assert len(attempts) >= 2
    [complete] = receiver.delivered("complete")
    assert complete["body"]["model_artifact_path"] == f"s3://{ARTIFACT_BUCKET}/models/{model_id}/v1/"
    assert len(receiver.calls("complete")) == 1 and receiver.calls("fail") == []


def test_complete_rejected_with_4xx_is_not_retried_and_exits_non_zero(customers, s3, moto_server, receiver_factory):
    receiver = receiver_factory(status_for={"complete": 400})
    model_id, run_id = new_ids()
    spec = make_spec(model_id, run_id, "regression", CUSTOMER_TTL, _storage("customers/"), CONFIG)

    done = run_trainer(trainer_env(moto_server, receiver, spec))

    assert done.returncode != 0
    assert len(receiver.calls("complete")) == 1  # a 4xx is final
    [fail] = receiver.delivered("fail")
    assert "complete callback was not accepted" in fail["body"]["reason"]


def test_sigterm_ends_in_one_fail_report(customers, s3, moto_server, receiver):
    model_id, run_id = new_ids()
    config = {**CONFIG, "max_iterations": 10_000, "early_stopping_rounds": 1000, "batch_size": 8}  # the maxima
    spec = make_spec(model_id, run_id, "neural_network", CUSTOMER_TTL, _storage("customers/"), config)
    process = start_trainer(trainer_env(moto_server, receiver, spec))
    deadline = time.monotonic() + 90
    while not receiver.calls("progress") and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    assert receiver.calls("progress"), "training never reported progress"

    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 143, stderr[-2000:]
    [fail] = receiver.delivered("fail")
    assert "SIGTERM" in fail["body"]["reason"] and fail["body"]["reason"].startswith("cancelled")
    assert receiver.calls("complete") == []
    assert s3.list_objects_v2(Bucket=ARTIFACT_BUCKET, Prefix=f"models/{model_id}/").get("KeyCount") == 0


@pytest.mark.parametrize("status", [409, 401])
def test_a_run_the_api_says_has_ended_publishes_nothing_and_reports_nothing(customers, s3, moto_server,
                                                                           receiver_factory, status):
    """A cancelled (or superseded) run: its progress report right before publishing is refused."""
    receiver = receiver_factory(status_for={"progress": status})
    model_id, run_id = new_ids()
    spec = make_spec(model_id, run_id, "decision_tree", CUSTOMER_TTL, _storage("customers/"), CONFIG)

    done = run_trainer(trainer_env(moto_server, receiver, spec))

    assert done.returncode == 1, done.stderr[-2000:]
    assert list(receiver.calls("progress")[-1]["body"]) == ["epoch"]  # the check right before publishing
    assert receiver.calls("complete") == [] and receiver.calls("fail") == []
    assert s3.list_objects_v2(Bucket=ARTIFACT_BUCKET, Prefix=f"models/{model_id}/").get("KeyCount") == 0
