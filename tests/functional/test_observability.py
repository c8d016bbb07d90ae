"""What an operator sees: every log line is JSON with the request id (and the model and run ids
where there are any), runs are counted, and an error body names the request whose log line has
the details the caller is not shown."""
from __future__ import annotations

import io
import json
import sys

import pytest
from conftest import install_graph
from fakes.launcher import FakeLauncher
from fakes.metrics import RecordingRunMetrics
from runs import own_artifact

from chalicelib.observability import configure_logging

COMPLETE = {"performance_metrics": {"accuracy": 0.9}, "training_metrics": {"epoch": 3}}
# Stands for what a library's own message carries: an internal path and an endpoint.
INTERNAL = "Could not connect to the endpoint URL: http://10.0.3.7:443/ via /var/task/chalicelib/secret.py"


@pytest.fixture
def log_lines(api):
    """The lines the service logs while a test runs, each parsed as JSON (a line that is not JSON fails)."""
    buffer = io.StringIO()
    configure_logging(stream=buffer)
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
    configure_logging(stream=sys.stdout)


@pytest.fixture
def graph(api):
    launcher, metrics = FakeLauncher(), RecordingRunMetrics()
    install_graph(launcher=launcher, metrics=metrics)
    return launcher, metrics


def callback(api, job, kind: str, body: dict, token: str | None = None):
    return api.post(f"/api/ml-models/{job.model_id}/training/{kind}", body,
                    headers={"Authorization": f"Bearer {token or job.callback_token}", "X-Training-Run-Id": job.run_id})


def lines_named(lines: list[dict], message: str) -> list[dict]:
    return [line for line in lines if line.get("message") == message]


def test_a_run_is_logged_as_json_lines_with_request_model_and_run_ids_and_counted(api, graph, make_model,
                                                                                   log_lines):
    launcher, metrics = graph
    model = make_model()
    assert api.post("/api/ml-models/train", {"model_id": model["id"]}).status == 202
    job = launcher.jobs[0]
    reply = callback(api, job, "complete", {**COMPLETE, "model_artifact_path": own_artifact(api, job)})
    assert reply.status == 200, reply

    lines = log_lines()
    assert lines and all(line["service"] == "ml-models" and line["request_id"] for line in lines)
    submitted, = lines_named(lines, "training_submitted")
    succeeded, = lines_named(lines, "training_succeeded")
    for line in (submitted, succeeded):
        assert (line["model_id"], line["run_id"]) == (model["id"], job.run_id)
    assert submitted["request_id"] != succeeded["request_id"]  # two requests: the train and the callback
    assert metrics.counts == [("accepted", {"model_id": model["id"], "run_id": job.run_id}),
                              ("succeeded", {"model_id": model["id"], "run_id": job.run_id})]


def test_failed_runs_and_refused_callbacks_are_counted(api, graph, make_model):
    launcher, metrics = graph
    model = make_model()
    assert api.post("/api/ml-models/train", {"model_id": model["id"]}).status == 202
    job = launcher.jobs[0]

    assert callback(api, job, "fail", {"reason": "out of memory"}, token="not-the-run-token").status == 401
    assert callback(api, job, "fail", {"reason": "out of memory"}).status == 200
    late = callback(api, job, "complete", {**COMPLETE, "model_artifact_path": own_artifact(api, job)})
    assert late.status == 409, late

    assert metrics.names() == ["accepted", "callback_rejected", "failed", "callback_rejected"]
    rejections = [fields for name, fields in metrics.counts if name == "callback_rejected"]
    assert [(r["action"], r["status"]) for r in rejections] == [("fail", 401), ("complete", 409)]
    assert all(r["model_id"] == model["id"] and r["run_id"] == job.run_id for r in rejections)


def test_an_error_body_names_the_request_and_only_its_log_line_has_the_details(api, graph, make_model, log_lines):
    launcher, metrics = graph
    model = make_model()
    launcher.refuse_with = RuntimeError(INTERNAL)

    reply = api.post("/api/ml-models/train", {"model_id": model["id"]})

    assert reply.status == 503, reply
    assert reply.json["request_id"] and "retry" in reply.json["message"]
    assert "10.0.3.7" not in reply.raw.decode() and "/var/task" not in reply.raw.decode()
    after = api.get(f"/api/ml-models/{model['id']}").json
    assert after["status"] == "draft" and "/var/task" not in after["metadata"]["failure_reason"]
    failed, = lines_named(log_lines(), "submission_failed")
    assert failed["request_id"] == reply.json["request_id"] and failed["model_id"] == model["id"]
    assert INTERNAL in failed["exception"]  # the details, for the operator who has the request id
    assert metrics.names() == ["not_submitted"]  # never accepted, so not counted as a failed run


def test_a_4xx_body_and_its_log_line_share_the_request_id(api, log_lines):
    reply = api.get("/api/ml-models/no-such-model")
    assert reply.status == 404 and reply.json["code"] == "not_found", reply
    refused, = lines_named(log_lines(), "request_refused")
    assert refused["request_id"] == reply.json["request_id"]
    assert refused["model_id"] == "no-such-model" and refused["status"] == 404


class BrokenAuthenticator:
    def authenticate(self, authorization):
        raise RuntimeError(INTERNAL)


def test_an_unexpected_error_is_a_plain_500_whose_traceback_is_logged_under_its_request_id(api, log_lines):
    install_graph(launcher=FakeLauncher(), authenticator=BrokenAuthenticator())

    reply = api.get("/api/ml-models?project_id=proj-1")

    assert reply.status == 500
    assert reply.json == {"code": "internal_error", "message": "An internal error occurred.",
                          "request_id": reply.json["request_id"]}
    logged = [line for line in log_lines() if INTERNAL in line.get("exception", "")]
    assert logged and logged[0]["request_id"] == reply.json["request_id"]  # Chalice's own log line, as JSON


def test_emf_lines_carry_the_namespace_dimensions_and_ids(capsys):
    from chalicelib.observability import EmfRunMetrics

    EmfRunMetrics(stage="dev").callback_rejected("complete", 409, "model-1", "run-1")

    emf = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    declared, = emf["_aws"]["CloudWatchMetrics"]
    assert declared["Namespace"] == "MlModels" and declared["Metrics"][0]["Name"] == "CallbackRejections"
    assert sorted(declared["Dimensions"][0]) == ["service", "stage", "status"]
    assert (emf["CallbackRejections"], emf["status"], emf["stage"]) == ([1.0], "409", "dev")
    assert (emf["model_id"], emf["run_id"], emf["action"]) == ("model-1", "run-1", "complete")
