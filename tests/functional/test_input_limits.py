"""Regressions for inputs that once answered 500 (issue 11): each now gets a 4xx JSON error naming
what is wrong, and nothing is written or lost.

The limits themselves are documented where they live: JSON depth and number length in
`chalicelib/api/http.py` (parse_json_body), DynamoDB's number range and the item-size check in
`chalicelib/services/validation.py`.
"""
from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest
from runs import own_artifact

from chalicelib.api.http import MAX_JSON_DEPTH
from chalicelib.services.validation import MAX_ITEM_BYTES


def token_of(key: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def nested(depth: int, leaf: str = "1") -> str:
    """JSON text of `depth` levels of objects around `leaf` ({"a": {"a": ... 1}}); as text, because
    json.dumps itself cannot write 990 levels."""
    return '{"a": ' * depth + leaf + "}" * depth


def assert_json_error(reply, status: int, field: str | None = None):
    assert reply.status == status, reply
    assert set(reply.json) >= {"code", "message"}, reply.json
    assert "Traceback" not in reply.raw.decode()
    if field is not None:
        assert reply.json.get("field") == field, reply.json


@pytest.fixture
def model(make_model) -> dict:
    return make_model(metadata={"team": "a"})


def unchanged(api, model) -> bool:
    return api.get(f"/api/ml-models/{model['id']}").json == model


def no_models(api, project) -> bool:
    return api.get(f"/api/ml-models?project_id={project}").json["models"] == []


def create_body(project, ontology, **extra) -> dict:
    return {"project_id": project, "ontology_id": ontology["id"], "name": "m", "type": "regression", **extra}


# --- JSON depth -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_a_body_of_100000_brackets_is_400(api, project, ontology, model, method):
    path = "/api/ml-models" if method == "POST" else f"/api/ml-models/{model['id']}"
    reply = api.request(method, path, raw="[" * 100_000)
    assert_json_error(reply, 400)
    assert "deeper" in reply.json["message"] and str(MAX_JSON_DEPTH) in reply.json["message"]
    assert unchanged(api, model)
    assert [m["id"] for m in api.get(f"/api/ml-models?project_id={project}").json["models"]] == [model["id"]]


def test_performance_metrics_990_deep_is_400_on_put(api, model):
    reply = api.request("PUT", f"/api/ml-models/{model['id']}", raw='{"performance_metrics": ' + nested(990) + "}")
    assert_json_error(reply, 400)
    assert "deeper" in reply.json["message"]
    assert unchanged(api, model)


def test_nesting_up_to_the_limit_is_accepted(api, model):
    # The body itself is one level; performance_metrics may use the rest.
    path = f"/api/ml-models/{model['id']}"
    reply = api.request("PUT", path, raw='{"performance_metrics": ' + nested(MAX_JSON_DEPTH - 1) + "}")
    assert reply.status == 200, reply
    reply = api.request("PUT", path, raw='{"performance_metrics": ' + nested(MAX_JSON_DEPTH) + "}")
    assert_json_error(reply, 400)


def test_brackets_inside_strings_do_not_count_as_depth(api, model):
    text = '[{"\\"' * 50
    reply = api.put(f"/api/ml-models/{model['id']}", {"metadata": {"note": text}})
    assert reply.status == 200, reply
    assert reply.json["metadata"]["note"] == text


def training_model(api, launcher, make_model):
    model = make_model()
    assert api.post("/api/ml-models/train", {"model_id": model["id"]}).status == 202
    return launcher.jobs[-1]


def complete(api, job, body: dict | None = None, raw: bytes | None = None):
    headers = {"Authorization": f"Bearer {job.callback_token}", "X-Training-Run-Id": job.run_id}
    return api.request("POST", f"/api/ml-models/{job.model_id}/training/complete", body=body, raw=raw,
                       headers=headers)


def test_complete_callback_with_metrics_990_deep_is_400_and_the_run_can_still_complete(api, launcher, make_model):
    job = training_model(api, launcher, make_model)
    artifact = own_artifact(api, job)
    run_before = api.get(f"/api/ml-models/{job.model_id}/runs/{job.run_id}").json
    raw = json.dumps({"model_artifact_path": artifact})[:-1] + ', "performance_metrics": ' + nested(990) + "}"
    reply = complete(api, job, raw=raw.encode())
    assert_json_error(reply, 400)
    assert api.get(f"/api/ml-models/{job.model_id}").json["status"] == "training"
    assert api.get(f"/api/ml-models/{job.model_id}/runs/{job.run_id}").json == run_before
    # Nothing was half written: the trainer's corrected report is taken.
    assert complete(api, job, {"model_artifact_path": artifact, "performance_metrics": {"accuracy": 0.9}}).status == 200
    after = api.get(f"/api/ml-models/{job.model_id}").json
    assert after["status"] == "trained" and after["performance_metrics"] == {"accuracy": 0.9}


# --- Unicode ----------------------------------------------------------------------------------------------

def test_a_lone_surrogate_in_name_is_400_naming_it(api, project, ontology):
    raw = json.dumps(create_body(project, ontology, name="\ud800"))  # json.dumps writes the "\ud800" escape
    assert "\\ud800" in raw
    reply = api.request("POST", "/api/ml-models", raw=raw)
    assert_json_error(reply, 400, field="name")
    assert "Unicode" in reply.json["message"]
    assert no_models(api, project)


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "ok\udfff"}, "name"),
    ({"metadata": {"tags": ["a", "b\ud83d"]}}, "metadata.tags[1]"),
    ({"metadata": {"\udc00key": 1}}, "metadata"),
    ({"performance_metrics": {"per_class": {"x": "\ud800\ud800"}}}, "performance_metrics.per_class.x"),
])
def test_lone_surrogates_anywhere_are_400_naming_the_path(api, model, body, field):
    reply = api.request("PUT", f"/api/ml-models/{model['id']}", raw=json.dumps(body))
    assert_json_error(reply, 400, field=field)
    assert unchanged(api, model)


def test_a_surrogate_pair_is_one_valid_character(api, model):
    reply = api.request("PUT", f"/api/ml-models/{model['id']}", raw='{"name": "\\ud83d\\ude00"}')
    assert reply.status == 200 and reply.json["name"] == "\N{GRINNING FACE}"


# --- Numbers ----------------------------------------------------------------------------------------------

def test_a_4300_digit_integer_in_metrics_is_400(api, model):
    raw = '{"performance_metrics": {"accuracy": ' + "7" * 4300 + "}}"
    reply = api.request("PUT", f"/api/ml-models/{model['id']}", raw=raw)
    assert_json_error(reply, 400, field="performance_metrics.accuracy")
    assert unchanged(api, model)


def test_a_4300_digit_integer_in_the_complete_callback_is_400(api, launcher, make_model):
    job = training_model(api, launcher, make_model)
    raw = json.dumps({"model_artifact_path": own_artifact(api, job), "training_metrics": {"loss": 1}})
    raw = raw.replace('"loss": 1', '"loss": ' + "9" * 4300)
    assert_json_error(complete(api, job, raw=raw.encode()), 400, field="training_metrics.loss")
    assert api.get(f"/api/ml-models/{job.model_id}").json["status"] == "training"


# A fraction is a double once parsed (at most 17 significant digits), so precision is held to
# DynamoDB's 38 digits for integers, which are kept exactly.
@pytest.mark.parametrize("number", ["12345678901234567890123456789012345678901", "-1" + "3" * 38, "1e200",
                                    "-1e-200", "1E126", "1" + "0" * 126])
def test_numbers_dynamodb_cannot_store_are_400_naming_the_path(api, model, number):
    raw = '{"training_metrics": {"loss": [0.5, ' + number + "]}}"
    reply = api.request("PUT", f"/api/ml-models/{model['id']}", raw=raw)
    assert_json_error(reply, 400, field="training_metrics.loss[1]")
    assert unchanged(api, model)


@pytest.mark.parametrize("number", ["1e125", "-9.9e125", "1e-130", "0", "12345678901234567890123456789012345678",
                                    "1" + "0" * 100])
def test_numbers_dynamodb_can_store_are_accepted(api, model, number):
    raw = '{"metadata": {"n": ' + number + "}}"
    reply = api.request("PUT", f"/api/ml-models/{model['id']}", raw=raw)
    assert reply.status == 200, reply


def test_numbers_in_training_config_are_held_to_the_same_range(api, project, ontology):
    body = create_body(project, ontology)
    raw = json.dumps(body)[:-1] + ', "training_config": {"learning_rate": 1e-300}}'
    assert_json_error(api.request("POST", "/api/ml-models", raw=raw), 400, field="training_config.learning_rate")
    assert no_models(api, project)


# --- Item size --------------------------------------------------------------------------------------------

def test_metadata_of_900_kb_is_413_naming_metadata_on_create(api, project, ontology):
    reply = api.post("/api/ml-models", create_body(project, ontology, metadata={"blob": "x" * 900_000}))
    assert_json_error(reply, 413, field="metadata")
    assert reply.json["code"] == "payload_too_large" and str(MAX_ITEM_BYTES) in reply.json["message"]
    assert no_models(api, project)


def test_metadata_growing_past_the_item_limit_is_413_and_the_model_is_unchanged(api, model):
    assert api.put(f"/api/ml-models/{model['id']}", {"metadata": {"a": "x" * 200_000}}).status == 200
    before = api.get(f"/api/ml-models/{model['id']}").json
    reply = api.put(f"/api/ml-models/{model['id']}", {"metadata": {"b": "y" * 200_000}})
    assert_json_error(reply, 413, field="metadata")
    assert api.get(f"/api/ml-models/{model['id']}").json == before


def test_the_biggest_field_is_named(api, model):
    reply = api.put(f"/api/ml-models/{model['id']}", {"metadata": {"a": "x" * 100_000},
                                                     "performance_metrics": {"m": "y" * 300_000}})
    assert_json_error(reply, 413, field="performance_metrics")
    assert unchanged(api, model)


def test_non_ascii_text_counts_as_dynamodb_stores_it(api, model):
    # JSON attributes are stored with \\uXXXX escapes: 60,000 "é" take 360,000 bytes.
    reply = api.put(f"/api/ml-models/{model['id']}", {"metadata": {"a": "\u00e9" * 60_000}})
    assert_json_error(reply, 413, field="metadata")


def test_an_oversize_ontology_is_413_not_500(api, project):
    comment = "# " + "x" * 500_000 + "\n"
    reply = api.post("/api/ontologies", {"project_id": project, "name": "o",
                                         "content": comment + "@prefix ex: <http://example.org/> .\n"})
    assert reply.status in (400, 413), reply
    assert api.get(f"/api/ontologies?project_id={project}").json["ontologies"] == []


def test_dynamodbs_own_item_size_refusal_is_413(aws):
    """Were the estimate ever short, DynamoDB's own ValidationException is a 413 too, not a 500."""
    from fakes.records import a_model

    from chalicelib.adapters import dynamo
    from chalicelib.adapters.tables import bind_tables
    from chalicelib.config import Settings
    from chalicelib.errors import NotFound, PayloadTooLarge

    bind_tables(Settings.from_environ())

    class Unchecked(dynamo.ModelRepository):
        item_limit = 10**9  # skip our own check, so the write reaches DynamoDB (moto)

    record = a_model("model-too-big", "proj-too-big").but(metadata={"blob": "x" * 500_000})
    with pytest.raises(PayloadTooLarge) as raised:
        Unchecked().add(record)
    assert raised.value.field == "metadata"
    with pytest.raises(NotFound):
        dynamo.ModelRepository().get(record.id)


# --- Pagination tokens ------------------------------------------------------------------------------------

LIST_ROUTES = ["/api/ml-models?project_id={project}", "/api/ontologies?project_id={project}",
               "/api/storage-configs?project_id={project}", "/api/ml-models/{model}/runs"]


def forged_tokens(project: str, model: str, route: str) -> dict[str, str]:
    owner, value, sort = ("model_id", model, {"version": {"N": "1"}}) if "/runs" in route else \
        ("project_id", project, {"created_at": {"S": "2024-01-01T00:00:00Z"}})
    key = "run_id" if "/runs" in route else "id"
    return {
        "plain owner": token_of({owner: "x"}),
        "plain own owner": token_of({owner: value}),
        "another owner": token_of({owner: {"S": "someone-else"}, key: {"S": "k"}, **sort}),
        "missing sort key": token_of({owner: {"S": value}, key: {"S": "k"}}),
        "missing table key": token_of({owner: {"S": value}, **sort}),
        "extra attribute": token_of({owner: {"S": value}, key: {"S": "k"}, **sort, "x": {"S": "y"}}),
        "wrong type": token_of({owner: {"S": value}, key: {"N": "1"}, **sort}),
        "not json": base64.urlsafe_b64encode(b"\xff\xfe[").decode(),
        "json list": token_of([owner, value]),
        "not base64": "%%%not-base64%%%",
        "huge": "A" * 5000,
    }


@pytest.mark.parametrize("route", LIST_ROUTES)
def test_forged_next_tokens_are_400_on_every_list_route(api, project, model, route):
    path = route.format(project=project, model=model["id"])
    sep = "&" if "?" in path else "?"
    for name, token in forged_tokens(project, model["id"], route).items():
        reply = api.get(f"{path}{sep}next_token={quote(token)}")
        assert_json_error(reply, 400, field="next_token")
        assert name and "next_token" in reply.json["message"]
