"""The training lifecycle on the real local stack: cancel a network mid-training, and versions with
rollback (train v1 and v2, fail v3, promote v1: the model serves v1's artifact, which loads)."""
from __future__ import annotations

import time
import uuid

import pytest
from stack_samples import ONTOLOGY, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def project(stack):
    project_id = f"proj-{uuid.uuid4().hex[:8]}"
    status, onto = stack.http.post("/api/ontologies", {"project_id": project_id, "name": "S", "content": ONTOLOGY})
    assert status == 201, onto
    return project_id, onto["id"]


def test_cancel_a_network_mid_training(stack, project):
    http = stack.http
    project_id, onto = project
    _, model = http.post("/api/ml-models", {
        "project_id": project_id, "ontology_id": onto, "name": "long", "type": "neural_network",
        "training_config": {"max_iterations": 10000, "early_stopping_rounds": 1000, "random_seed": 1}})
    status, accepted = http.post("/api/ml-models/train", {"model_id": model["id"], "storage_ids": []})
    assert status == 202, accepted
    run_id = accepted["training_task_id"]
    # Mid-training: the trainer has reported progress.
    wait_for(lambda: http.get(f"/api/ml-models/{model['id']}/runs/{run_id}")[1]["status"] == "running")
    started = time.monotonic()
    status, body = http.post(f"/api/ml-models/{model['id']}/training/cancel", {})
    assert status == 202, body
    assert body["status"] == "draft" and body["training_task_id"] == ""
    run = wait_for(lambda: (r := http.get(f"/api/ml-models/{model['id']}/runs/{run_id}")[1])["status"]
                   == "cancelled" and r, timeout=60)
    assert time.monotonic() - started < 45  # the 30 s grace period and a little
    assert run["status"] == "cancelled"
    time.sleep(2)  # a trainer that ignored the cancel would be writing now
    listed = stack.s3().list_objects_v2(Bucket=stack.env["ARTIFACT_BUCKET"], Prefix=f"models/{model['id']}/")
    assert listed.get("KeyCount", 0) == 0, listed.get("Contents")
    _, after = http.get(f"/api/ml-models/{model['id']}")
    assert after["status"] == "draft" and after["version"] == 0 and after["model_artifact_path"] == ""
    assert http.post(f"/api/ml-models/{model['id']}/training/cancel", {})[0] == 409


def test_versions_and_rollback(stack, project):
    from trainer.loader import load_model

    http = stack.http
    project_id, onto = project
    _, model = http.post("/api/ml-models", {
        "project_id": project_id, "ontology_id": onto, "name": "versions", "type": "decision_tree",
        "training_config": {"random_seed": 1}})
    paths = {}
    for version, seed in ((1, 1), (2, 2)):
        status, _ = http.post("/api/ml-models/train", {"model_id": model["id"], "storage_ids": [],
                                                       "training_config": {"random_seed": seed}})
        assert status == 202
        trained = http.wait_for_status(model["id"], ("trained", "failed"))
        assert trained["status"] == "trained" and trained["version"] == version, trained["metadata"]
        paths[version] = trained["model_artifact_path"]
    # v3 fails: the current version stays v2.
    status, _ = http.post("/api/ml-models/train", {"model_id": model["id"], "storage_ids": [],
                                                   "training_config": {"target_column": "no_such_column"}})
    assert status == 202
    failed = http.wait_for_status(model["id"], ("failed", "trained"))
    assert failed["status"] == "failed" and failed["version"] == 2 and failed["model_artifact_path"] == paths[2]

    status, versions = http.get(f"/api/ml-models/{model['id']}/versions")
    assert status == 200, versions
    assert [v["version"] for v in versions["versions"]] == [2, 1]
    assert versions["current_version"] == 2 and [v["current"] for v in versions["versions"]] == [True, False]

    status, promoted = http.post(f"/api/ml-models/{model['id']}/versions/1/promote", {})
    assert status == 200, promoted
    assert promoted["status"] == "trained" and promoted["version"] == 1 and promoted["model_artifact_path"] == paths[1]
    loaded = load_model(promoted["model_artifact_path"], s3_client=stack.s3())
    assert loaded.manifest["version"] == 1 and loaded.manifest["model_id"] == model["id"]
