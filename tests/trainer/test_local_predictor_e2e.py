"""The predictor as the API reaches it locally: `python -m scripts.local_predictor` as a process (S3 from
its environment: moto server), a real artifact written by the trainer, boto3's Lambda client and the
API's `LambdaPredictor`; and the in-process twin the API's tests use, which must answer the same.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import boto3
import pytest
from botocore.config import Config
from fakes.predictor import InProcessPredictor
from ontologies import CUSTOMER_TTL
from trainer_helpers import ARTIFACT_BUCKET, REPO, CallbackReceiver, make_spec, new_ids, run_trainer, trainer_env

from chalicelib.adapters.predictor import LambdaPredictor
from chalicelib.errors import InvalidInput, UpstreamFailed, UpstreamUnavailable
from trainer.loader import load_model

pytestmark = pytest.mark.integration

FUNCTION = "ml-models-predictor-e2e"
CONFIG = {"train_test_split": 0.8, "random_seed": 5, "synthetic_rows": 200}
ROWS = [
    {"age": 41, "income": 30.5, "plan": "plan_b", "is_active": True, "signup_date": "2023-03-04T10:00:00Z",
     "spend": 2.5},
    {"age": None, "income": 12, "plan": "plan_new", "is_active": None, "signup_date": None, "spend": -1.0},
]


@pytest.fixture(scope="module")
def artifact_uri(moto_server, s3):
    receiver = CallbackReceiver()
    model_id, run_id = new_ids()
    try:
        done = run_trainer(trainer_env(moto_server, receiver, make_spec(model_id, run_id, "decision_tree",
                                                                        CUSTOMER_TTL, [], CONFIG)))
    finally:
        receiver.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    return f"s3://{ARTIFACT_BUCKET}/models/{model_id}/v1/"


def start_local_predictor(moto_server: str, stderr) -> tuple[subprocess.Popen, str]:
    """The local twin as a process; (process, its URL: the first line it prints)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINER_")}
    env.update(PYTHONPATH=str(REPO), AWS_ENDPOINT_URL=moto_server)
    process = subprocess.Popen([sys.executable, "-m", "scripts.local_predictor", "--port", "0",
                                "--function-name", FUNCTION], env=env, cwd=str(REPO), stdout=subprocess.PIPE,
                               stderr=stderr, text=True)
    ready = json.loads(process.stdout.readline())
    assert ready["function_name"] == FUNCTION
    return process, ready["url"]


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def local_predictor(moto_server, tmp_path_factory):
    """(URL, path of its stderr) of the twin shared by this module's tests."""
    path = tmp_path_factory.mktemp("predictor") / "stderr.log"
    with path.open("w") as stderr:
        process, url = start_local_predictor(moto_server, stderr)
        try:
            yield url, path
        finally:
            stop(process)


def json_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def client(url: str):
    return boto3.client("lambda", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x",
                        aws_secret_access_key="x",
                        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=30))


def payload(uri: str, rows=ROWS) -> dict:
    return {"model_id": "model-e2e", "version": 1, "artifact_uri": uri, "instances": rows}


def test_the_api_adapter_gets_the_loaders_predictions(local_predictor, artifact_uri, s3):
    url, stderr = local_predictor
    result = LambdaPredictor(lambda: client(url), FUNCTION).predict(payload(artifact_uri))
    model = load_model(artifact_uri, s3)
    assert result == {"model_id": "model-e2e", "version": 1, "predictions": model.predict(ROWS),
                      "probabilities": model.predict_proba(ROWS), "classes": model.classes}
    logged = [line for line in json_lines(stderr) if line["message"] == "predicted"]
    assert logged and logged[-1]["model_id"] == "model-e2e" and logged[-1]["instances"] == len(ROWS)


def test_the_in_process_twin_answers_the_same(local_predictor, artifact_uri, moto_server, monkeypatch):
    url, _ = local_predictor
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)  # the twin's S3, as the process has it
    remote = LambdaPredictor(lambda: client(url), FUNCTION)
    local = InProcessPredictor(function_name=FUNCTION)
    assert local.predict(payload(artifact_uri)) == remote.predict(payload(artifact_uri))
    bad = payload(artifact_uri, [{**ROWS[0], "age": "forty"}])
    errors = []
    for predictor in (remote, local):
        with pytest.raises(InvalidInput) as raised:
            predictor.predict(bad)
        errors.append(raised.value.to_body())
    assert errors[0] == errors[1] == {"code": "invalid_input", "field": "instances[0].age",
                                      "message": 'instances[0].age must be a number, got "forty"'}


def test_failures_map_to_domain_errors(local_predictor, artifact_uri):
    url, _ = local_predictor
    predictor = LambdaPredictor(lambda: client(url), FUNCTION)
    with pytest.raises(UpstreamFailed, match=r"failed \(ValueError\)$"):  # no artifact_uri: the handler raises
        predictor.predict({"instances": ROWS})
    missing = f"s3://{ARTIFACT_BUCKET}/models/none/v1/"
    with pytest.raises(UpstreamFailed, match=f"cannot be used: model artifact {missing} .*NoSuchKey"):
        predictor.predict(payload(missing))
    with pytest.raises(UpstreamFailed, match="does not exist"):
        LambdaPredictor(lambda: client(url), "another-function").predict(payload(artifact_uri))


def test_sigterm_stops_it_and_then_it_is_unavailable(moto_server, artifact_uri, tmp_path):
    with (tmp_path / "stderr.log").open("w") as stderr:
        process, url = start_local_predictor(moto_server, stderr)
        try:
            predictor = LambdaPredictor(lambda: client(url), FUNCTION)
            with pytest.raises(InvalidInput):  # it serves (a request refused before any model is loaded)
                predictor.predict(payload(artifact_uri, []))
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
        finally:
            stop(process)
    with pytest.raises(UpstreamUnavailable):
        predictor.predict(payload(artifact_uri))
