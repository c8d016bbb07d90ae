"""A catalogue of bad inputs: each gets a 4xx JSON error naming the problem, never a 5xx."""
from __future__ import annotations

import pytest

GOOD = {"name": "m", "type": "decision_tree"}

# (case id, method, path, body or raw, expected status, text the error must mention)
CASES = [
    ("missing project_id", "POST", "/api/ml-models", {**GOOD, "ontology_id": "@onto"}, 400, "project_id"),
    ("missing ontology_id", "POST", "/api/ml-models", {**GOOD, "project_id": "@proj"}, 400, "ontology_id"),
    ("missing name", "POST", "/api/ml-models", {"type": "regression", "project_id": "@proj",
                                                "ontology_id": "@onto"}, 400, "name"),
    ("missing type", "POST", "/api/ml-models", {"name": "m", "project_id": "@proj", "ontology_id": "@onto"},
     400, "type"),
    ("unknown type", "POST", "/api/ml-models", {**GOOD, "type": "svm", "project_id": "@proj",
                                                "ontology_id": "@onto"}, 400, "decision_tree"),
    ("name wrong type", "POST", "/api/ml-models", {**GOOD, "name": 5, "project_id": "@proj",
                                                   "ontology_id": "@onto"}, 400, "name"),
    ("empty name", "POST", "/api/ml-models", {**GOOD, "name": "  ", "project_id": "@proj",
                                              "ontology_id": "@onto"}, 400, "name"),
    ("unknown field", "POST", "/api/ml-models", {**GOOD, "colour": "red", "project_id": "@proj",
                                                 "ontology_id": "@onto"}, 400, "colour"),
    ("metadata not object", "POST", "/api/ml-models", {**GOOD, "metadata": [1], "project_id": "@proj",
                                                       "ontology_id": "@onto"}, 400, "metadata"),
    ("unknown ontology", "POST", "/api/ml-models", {**GOOD, "project_id": "@proj", "ontology_id": "onto-nope"},
     400, "onto-nope"),
    ("ontology of another project", "POST", "/api/ml-models", {**GOOD, "project_id": "proj-x",
                                                               "ontology_id": "@onto"}, 400, "ontology_id"),
    ("split 1", "POST", "/api/ml-models", {**GOOD, "project_id": "@proj", "ontology_id": "@onto",
                                           "training_config": {"train_test_split": 1}}, 400, "train_test_split"),
    ("split 0", "POST", "/api/ml-models", {**GOOD, "project_id": "@proj", "ontology_id": "@onto",
                                           "training_config": {"train_test_split": 0}}, 400, "train_test_split"),
    ("negative learning rate", "POST", "/api/ml-models", {**GOOD, "project_id": "@proj", "ontology_id": "@onto",
                                                          "training_config": {"learning_rate": -1}}, 400,
     "learning_rate"),
    ("fractional batch", "POST", "/api/ml-models", {**GOOD, "project_id": "@proj", "ontology_id": "@onto",
                                                    "training_config": {"batch_size": 3.5}}, 400, "batch_size"),
    ("bool batch", "POST", "/api/ml-models", {**GOOD, "project_id": "@proj", "ontology_id": "@onto",
                                              "training_config": {"batch_size": True}}, 400, "batch_size"),
    ("zero max_iterations", "POST", "/api/ml-models", {**GOOD, "project_id": "@proj", "ontology_id": "@onto",
                                                       "training_config": {"max_iterations": 0}}, 400,
     "max_iterations"),
    ("zero early stopping", "POST", "/api/ml-models", {**GOOD, "project_id": "@proj", "ontology_id": "@onto",
                                                       "training_config": {"early_stopping_rounds": 0}}, 400,
     "early_stopping_rounds"),
    ("free key outside hyperparameters", "POST", "/api/ml-models",
     {**GOOD, "project_id": "@proj", "ontology_id": "@onto", "training_config": {"max_depth": 3}}, 400, "max_depth"),
    ("hyperparameters not object", "POST", "/api/ml-models",
     {**GOOD, "project_id": "@proj", "ontology_id": "@onto", "training_config": {"hyperparameters": 3}}, 400,
     "hyperparameters"),
    ("empty target column", "POST", "/api/ml-models",
     {**GOOD, "project_id": "@proj", "ontology_id": "@onto", "training_config": {"target_column": ""}}, 400,
     "target_column"),
    ("config not object", "POST", "/api/ml-models",
     {**GOOD, "project_id": "@proj", "ontology_id": "@onto", "training_config": "fast"}, 400, "training_config"),
    ("body is an array", "POST", "/api/ml-models", [1, 2], 400, "JSON object"),
    ("empty body", "POST", "/api/ml-models", None, 400, "JSON object"),
    ("malformed JSON", "POST", "/api/ml-models", b'{"name": ', 400, "not valid JSON"),
    ("NaN literal", "PUT", "/api/ml-models/@model", b'{"performance_metrics": {"accuracy": NaN}}', 400, "NaN"),
    ("not UTF-8", "POST", "/api/ml-models", b'{"name": "\xff"}', 400, "UTF-8"),
    ("unknown status", "PUT", "/api/ml-models/@model", {"status": "finished"}, 400, "status"),
    ("bad transition", "PUT", "/api/ml-models/@model", {"status": "trained"}, 409, "draft"),
    ("set training by hand", "PUT", "/api/ml-models/@model", {"status": "training"}, 409, "training"),
    ("put unknown field", "PUT", "/api/ml-models/@model", {"type": "regression"}, 400, "type"),
    ("metrics not object", "PUT", "/api/ml-models/@model", {"training_metrics": 3}, 400, "training_metrics"),
    ("unknown model get", "GET", "/api/ml-models/model-unknown", None, 404, "model-unknown"),
    ("unknown model put", "PUT", "/api/ml-models/model-unknown", {"name": "x"}, 404, "model-unknown"),
    ("unknown model delete", "DELETE", "/api/ml-models/model-unknown", None, 404, "model-unknown"),
    ("limit zero", "GET", "/api/ml-models?project_id=p&limit=0", None, 400, "limit"),
    ("limit text", "GET", "/api/ml-models?project_id=p&limit=ten", None, 400, "limit"),
    ("broken turtle", "POST", "/api/ontologies", {"project_id": "@proj", "name": "o", "content": "ex:a ex:b"},
     400, "Turtle"),
    ("ontology missing content", "POST", "/api/ontologies", {"project_id": "@proj", "name": "o"}, 400, "content"),
    ("unknown ontology get", "GET", "/api/ontologies/onto-unknown", None, 404, "onto-unknown"),
    ("unknown storage get", "GET", "/api/storage-configs/storage-unknown", None, 404, "storage-unknown"),
    ("storage missing format", "POST", "/api/storage-configs", {"project_id": "@proj", "name": "s",
                                                                "uri": "s3://b/p"}, 400, "format"),
]


@pytest.fixture
def ids(project, ontology, make_model):
    return {"@proj": project, "@onto": ontology["id"], "@model": make_model()["id"]}


def _fill(value, ids):
    if isinstance(value, str):
        for key, real in ids.items():
            value = value.replace(key, real)
        return value
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value


@pytest.mark.parametrize(("case", "method", "path", "body", "status", "mention"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_named_4xx(api, ids, case, method, path, body, status, mention):
    path = _fill(path, ids)
    if isinstance(body, bytes):
        raw = body
        for key, real in ids.items():
            raw = raw.replace(key.encode(), real.encode())
        reply = api.request(method, path, raw=raw)
    else:
        reply = api.request(method, path, body=_fill(body, ids))
    assert reply.status == status, reply
    assert set(reply.json) >= {"code", "message"}
    assert mention in reply.json["message"] or mention == reply.json.get("field"), reply.json
    assert "Traceback" not in reply.raw.decode()


def test_oversize_body_is_413(api, ids):
    blob = "x" * (1024 * 1024 + 10)
    reply = api.post("/api/ml-models", {"project_id": ids["@proj"], "name": blob})
    assert reply.status == 413 and reply.json["code"] == "payload_too_large"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_wrong_content_type_is_415(api, content_type):
    reply = api.request("POST", "/api/ml-models", raw="name=x", headers={"Content-Type": content_type})
    assert reply.status == 415 and reply.json["field"] == "Content-Type"
    assert content_type in reply.json["message"]


def test_json_with_charset_is_accepted(api, ids):
    reply = api.request("POST", "/api/ml-models", body={"project_id": ids["@proj"], "ontology_id": ids["@onto"],
                                                        "name": "m", "type": "regression"},
                        headers={"Content-Type": "application/json; charset=utf-8"})
    assert reply.status == 201


def test_unsupported_method_is_json_405(api):
    reply = api.request("PATCH", "/api/ml-models/model-1", body={"name": "x"})
    assert reply.status == 405 and reply.json["code"] == "method_not_allowed"
