"""Fault injection on the real local stack: DynamoDB and S3 dropped, delayed past the timeout, reset.

`chalice local` talks to moto server through `tests/fakes/fault_proxy.py` (the `faulty` fixture
in conftest.py). Each faulted
request must answer 503 `upstream_unavailable` with Retry-After inside a bound (never 500,
never a hang), and once the faults clear no model is left `training` without a live run.

The stack here runs with a short time budget (connect 1 s, read 1 s, 2 attempts: about
2 x (1 + 1) + 1 s backoff = 5 s a call) so the whole module stays quick; the bound asserted
is the production one (< 25 s), which the defaults (2 x (2 + 5) + 1 = 15 s) keep too.
"""
from __future__ import annotations

import socket
import time
import uuid
from urllib.parse import urlparse

import pytest
from stack_samples import ONTOLOGY

pytestmark = pytest.mark.integration

BOUND_SECONDS = 25.0
HOLD_SECONDS = 2.5  # "delay": held past the stack's 1 s read timeout
MODES = ("drop", "delay", "reset")


@pytest.fixture(scope="module")
def project(faulty):
    """A project with an ontology, a draft model and readable data (made while nothing is faulted)."""
    http = faulty.http
    project_id = f"proj-{uuid.uuid4().hex[:8]}"
    bucket = faulty.env["DATA_BUCKETS"].split(",")[0]
    faulty.s3().put_object(Bucket=bucket, Key=f"{project_id}/readings/part-0.csv", Body=b"humidity,label\n1,true\n")
    status, onto = http.post("/api/ontologies", {"project_id": project_id, "name": "Sensors", "content": ONTOLOGY})
    assert status == 201, onto
    status, model = http.post("/api/ml-models", model_body(project_id, onto["id"]))
    assert status == 201, model
    return {"project_id": project_id, "ontology_id": onto["id"], "model_id": model["id"],
            "uri": f"s3://{bucket}/{project_id}/readings/"}


def model_body(project_id: str, ontology_id: str) -> dict:
    return {"project_id": project_id, "ontology_id": ontology_id, "name": "Humidity", "type": "decision_tree",
            "training_config": {"random_seed": 1}}


def unavailable_within_bound(http, method: str, path: str, body=None) -> float:
    """Send one request; it must answer 503 upstream_unavailable with Retry-After inside the bound."""
    import json
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(http.base + path, data=data, method=method, headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {http.token}"})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            raise AssertionError(f"{method} {path} answered {response.status}, not 503: {response.read()!r}")
    except urllib.error.HTTPError as exc:
        elapsed = time.monotonic() - started
        payload = json.loads(exc.read() or b"null")
        assert exc.code == 503, (method, path, exc.code, payload)
        assert payload["code"] == "upstream_unavailable", payload
        assert exc.headers["Retry-After"] and exc.headers["Retry-After"].isdigit(), dict(exc.headers)
    assert elapsed < BOUND_SECONDS, f"{method} {path} took {elapsed:.1f}s"
    return elapsed


@pytest.fixture
def fault(faulty):
    def inject(mode: str, service: str) -> None:
        faulty.proxy.faulted.clear()
        faulty.proxy.inject(mode, service=service, seconds=HOLD_SECONDS)

    yield inject
    faulty.proxy.clear()


@pytest.mark.parametrize("mode", MODES)
def test_dynamodb_faults_answer_503_within_the_bound(faulty, project, fault, mode):
    http = faulty.http
    fault(mode, "dynamodb")
    timings = [
        unavailable_within_bound(http, "GET", f"/api/ml-models/{project['model_id']}"),
        unavailable_within_bound(http, "GET", f"/api/ml-models?project_id={project['project_id']}"),
        unavailable_within_bound(http, "POST", "/api/ml-models",
                                 model_body(project["project_id"], project["ontology_id"])),
    ]
    assert faulty.proxy.faulted[mode] >= 3, faulty.proxy.faulted  # the fault was met, not bypassed
    print(f"dynamodb {mode}: 503 in " + ", ".join(f"{t:.2f}s" for t in timings))
    faulty.proxy.clear()
    status, model = http.get(f"/api/ml-models/{project['model_id']}")
    assert status == 200 and model["status"] == "draft", model


@pytest.mark.parametrize("mode", MODES)
def test_s3_faults_answer_503_within_the_bound_and_leave_no_model_training(faulty, project, fault, mode):
    http = faulty.http
    fault(mode, "s3")
    timings = [
        unavailable_within_bound(http, "POST", "/api/storage-configs", {
            "project_id": project["project_id"], "name": "readings", "ontology_id": project["ontology_id"],
            "uri": project["uri"], "format": "csv"}),
        unavailable_within_bound(http, "POST", "/api/ml-models/train",
                                 {"model_id": project["model_id"], "storage_ids": []}),
    ]
    assert faulty.proxy.faulted[mode] >= 2, faulty.proxy.faulted
    print(f"s3 {mode}: 503 in " + ", ".join(f"{t:.2f}s" for t in timings))
    faulty.proxy.clear()
    # The train failed after the model entered training: it is put back, and its run says why.
    status, model = http.get(f"/api/ml-models/{project['model_id']}")
    assert status == 200 and model["status"] == "draft", model
    status, runs = http.get(f"/api/ml-models/{project['model_id']}/runs")
    assert status == 200, runs
    latest = runs["runs"][0]
    assert latest["status"] == "failed" and "submission failed" in latest["failure_reason"], latest
    assert_no_model_training_without_a_live_run(http, project["project_id"])


def assert_no_model_training_without_a_live_run(http, project_id: str) -> None:
    status, page = http.get(f"/api/ml-models?project_id={project_id}&limit=100")
    assert status == 200, page
    for model in page["models"]:
        if model["status"] != "training":
            continue
        status, run = http.get(f"/api/ml-models/{model['id']}/runs/{model['training_task_id']}")
        assert status == 200 and run["status"] in ("queued", "submitted", "running"), (model, run)


def test_an_idle_connection_to_moto_does_not_stop_the_stack(faulty, project):
    """A client that opens a connection to the embedded AWS and sends half a request, then nothing."""
    moto = urlparse(faulty.endpoint)
    idle = [socket.create_connection((moto.hostname, moto.port)) for _ in range(3)]
    try:
        idle[0].sendall(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{")  # body never ends
        idle[1].sendall(b"GET / HTTP/1.1\r\n")  # head never ends
        started = time.monotonic()
        for _ in range(5):
            status, model = faulty.http.get(f"/api/ml-models/{project['model_id']}")
            assert status == 200, model
        status, created = faulty.http.post("/api/ml-models", model_body(project["project_id"],
                                                                        project["ontology_id"]))
        assert status == 201, created
        assert time.monotonic() - started < 10
    finally:
        for sock in idle:
            sock.close()
