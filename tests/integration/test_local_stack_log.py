"""A clean run on the local stack leaves a clean log: no fail report after the trainer completed
(it used to draw a 409 every time), the service's lines are JSON with the ids, and the trainer's
output is in the stack's own run-log folder."""
from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from stack_samples import ONTOLOGY

pytestmark = pytest.mark.integration


def service_lines(log_path: str) -> list[dict]:
    """The service's own lines (JSON objects with a `service`); other processes share the file."""
    found = []
    for line in Path(log_path).read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("service") == "ml-models":
                found.append(record)
    return found


def test_a_successful_run_posts_no_fail_report_and_logs_json_with_its_ids(stack):
    http = stack.http
    project = f"proj-{uuid.uuid4().hex[:8]}"
    status, onto = http.post("/api/ontologies", {"project_id": project, "name": "Sensors", "content": ONTOLOGY})
    assert status == 201, onto
    status, model = http.post("/api/ml-models", {"project_id": project, "ontology_id": onto["id"], "name": "clean",
                                                 "type": "decision_tree", "training_config": {"random_seed": 1}})
    assert status == 201, model
    status, accepted = http.post("/api/ml-models/train", {"model_id": model["id"], "storage_ids": []})
    assert status == 202, accepted
    run_id = accepted["training_task_id"]
    assert http.wait_for_status(model["id"], ("trained", "failed"))["status"] == "trained"

    deadline, exited = time.monotonic() + 60, []
    while not exited and time.monotonic() < deadline:  # the launcher notes the exit just after the report
        exited = [r for r in service_lines(stack.log_path) if r.get("message") == "trainer_exited"
                  and r.get("run_id") == run_id]
        time.sleep(0.2)
    assert exited and exited[0]["code"] == 0 and exited[0]["model_id"] == model["id"]
    run_log = Path(exited[0]["log"])
    assert run_log.name == f"train-{run_id}.log" and "training completed" in run_log.read_text()

    text = Path(stack.log_path).read_text(errors="replace")
    assert f"/api/ml-models/{model['id']}/training/complete" in text  # the server logs each request it serves
    assert f"/api/ml-models/{model['id']}/training/fail" not in text
    submitted = [r for r in service_lines(stack.log_path) if r.get("message") == "training_submitted"
                 and r.get("run_id") == run_id]
    assert submitted and submitted[0]["request_id"] and submitted[0]["model_id"] == model["id"]
