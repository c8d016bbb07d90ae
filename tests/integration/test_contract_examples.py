"""The contract's curl examples, over HTTP, against the real local stack."""
from __future__ import annotations

import threading
import uuid

import pytest
from stack_samples import ONTOLOGY

pytestmark = pytest.mark.integration



@pytest.fixture
def project_id():
    return f"proj-{uuid.uuid4().hex[:8]}"


def test_contract_examples_list_create_get_update_delete(stack, project_id):
    http = stack.http
    status, onto = http.post("/api/ontologies", {"project_id": project_id, "name": "Sensors", "content": ONTOLOGY})
    assert status == 201

    # List ML Models: {"models": []} for a project without models.
    assert http.get(f"/api/ml-models?project_id={project_id}") == (200, {"models": [], "next_token": None})

    # Create ML Model (the contract's body, with a real ontology id).
    status, model = http.post("/api/ml-models", {
        "project_id": project_id, "ontology_id": onto["id"], "name": "Temperature Predictor",
        "description": "Predicts temperature based on sensor data", "type": "neural_network",
        "training_config": {"train_test_split": 0.8, "random_seed": 42, "learning_rate": 0.001, "batch_size": 32},
    })
    assert status == 201 and model["status"] == "draft" and model["type"] == "neural_network"

    status, listed = http.get(f"/api/ml-models?project_id={project_id}")
    assert status == 200 and listed["models"] == [model]

    assert http.get(f"/api/ml-models/{model['id']}") == (200, model)

    status, updated = http.put(f"/api/ml-models/{model['id']}",
                               {"description": "Updated model description", "status": "archived"})
    assert status == 200 and updated["status"] == "archived"
    assert updated["description"] == "Updated model description" and updated["name"] == model["name"]

    status, body = http.delete(f"/api/ml-models/{model['id']}")
    assert status == 204 and body is None
    status, body = http.get(f"/api/ml-models/{model['id']}")
    assert status == 404 and body["code"] == "not_found"


def test_errors_over_http_are_json(stack):
    http = stack.http
    status, body = http.request("POST", "/api/ml-models", raw=b"{not json")
    assert status == 400 and body["code"] == "invalid_input"
    status, body = http.request("POST", "/api/ml-models", raw=b"x=1",
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415 and body["code"] == "unsupported_media_type"
    status, body = http.request("POST", "/api/ml-models", raw=b'{"name": "' + b"x" * (1024 * 1024) + b'"}')
    assert status == 413 and body["code"] == "payload_too_large"


def test_concurrent_puts_lose_nothing(stack, project_id):
    http = stack.http
    _, onto = http.post("/api/ontologies", {"project_id": project_id, "name": "S", "content": ONTOLOGY})
    _, model = http.post("/api/ml-models", {"project_id": project_id, "ontology_id": onto["id"], "name": "m",
                                            "type": "regression"})
    results = []

    def put(i: int) -> None:
        results.append(http.put(f"/api/ml-models/{model['id']}", {"metadata": {f"writer_{i}": i}})[0])

    threads = [threading.Thread(target=put, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _, after = http.get(f"/api/ml-models/{model['id']}")
    written = {k for k in after["metadata"] if k.startswith("writer_")}
    # Every PUT that answered 200 is in the record; any other answer is an explicit 409.
    assert set(results) <= {200, 409}
    assert len(written) == results.count(200) >= 1


def test_with_auth_off_the_contract_examples_work_verbatim(open_stack, project_id):
    """`AUTH=off make run`: the contract's curls, without any Authorization header."""
    http, log_path = open_stack
    assert http.token is None
    status, onto = http.post("/api/ontologies", {"project_id": project_id, "name": "Sensors", "content": ONTOLOGY})
    assert status == 201, onto
    assert http.get(f"/api/ml-models?project_id={project_id}") == (200, {"models": [], "next_token": None})
    status, model = http.post("/api/ml-models", {
        "project_id": project_id, "ontology_id": onto["id"], "name": "Temperature Predictor",
        "description": "Predicts temperature based on sensor data", "type": "neural_network",
        "training_config": {"train_test_split": 0.8, "random_seed": 42, "learning_rate": 0.001, "batch_size": 32},
    })
    assert status == 201 and model["status"] == "draft"
    assert http.get(f"/api/ml-models/{model['id']}") == (200, model)
    status, updated = http.put(f"/api/ml-models/{model['id']}",
                               {"description": "Updated model description", "status": "archived"})
    assert status == 200 and updated["status"] == "archived"
    assert http.delete(f"/api/ml-models/{model['id']}")[0] == 204
    with open(log_path) as log:
        assert "authentication is OFF" in log.read()
