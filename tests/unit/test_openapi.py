"""docs/openapi.yaml: a valid OpenAPI document that documents exactly the routes the app has.

A route added to the app without being documented (or documented and then removed) fails
`test_spec_documents_exactly_the_app_routes`. The request schemas are also held against the
service's own field lists and enums, and every example in the document against its schema.

Security follows `ROUTE_ACCESS` (chalicelib/api/http.py), the rule every route was registered
with: user routes carry the global `bearerAuth` requirement and document 401 and 503 (and 403
where their rule can refuse a known caller); the trainer's callbacks (and a prediction or evaluation job's)
override it with the run's (or job's) token.
"""
from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
SPEC_URI = "urn:ml-models:openapi"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return yaml.safe_load(SPEC_PATH.read_text())


@pytest.fixture(scope="module")
def app_routes() -> dict[str, dict[str, Any]]:
    from app import app

    return app.routes


def spec_operations(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(path, method.upper()): op for path, item in spec["paths"].items()
            for method, op in item.items() if method in HTTP_METHODS}


def resolve(spec: dict[str, Any], node: Any) -> Any:
    """Follow a local `$ref` (parameters, responses, examples...) to the object it names."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def validator_for(spec: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A JSON Schema 2020-12 validator (OpenAPI 3.1's dialect) whose `#/components/...` refs resolve."""
    registry = Registry().with_resource(SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT202012))
    return Draft202012Validator(_rebase(schema), registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _rebase(node: Any) -> Any:
    """Rewrite `#/...` refs as absolute refs into the registered document."""
    if isinstance(node, dict):
        return {k: (SPEC_URI + v if k == "$ref" and isinstance(v, str) and v.startswith("#") else _rebase(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_rebase(v) for v in node]
    return node


def test_document_is_valid_openapi(spec):
    from openapi_spec_validator import validate

    validate(spec)
    assert spec["openapi"].startswith("3.1")


def test_spec_documents_exactly_the_app_routes(spec, app_routes):
    in_app = {(path, method) for path, methods in app_routes.items() for method in methods}
    in_spec = set(spec_operations(spec))
    undocumented = sorted(in_app - in_spec)
    stale = sorted(in_spec - in_app)
    problems = []
    if undocumented:
        problems.append("routes in the app but missing from docs/openapi.yaml: "
                        + ", ".join(f"{m} {p}" for p, m in undocumented))
    if stale:
        problems.append("operations in docs/openapi.yaml that the app does not have: "
                        + ", ".join(f"{m} {p}" for p, m in stale))
    assert not problems, "\n".join(problems)


def test_path_parameters_agree(spec, app_routes):
    problems = []
    for (path, method), op in spec_operations(spec).items():
        entry = app_routes.get(path, {}).get(method)
        templated = re.findall(r"{([^}]+)}", path)
        declared = [resolve(spec, p) for p in spec["paths"][path].get("parameters", []) + op.get("parameters", [])]
        in_path = [p["name"] for p in declared if p["in"] == "path"]
        if sorted(in_path) != sorted(templated):
            problems.append(f"{method} {path}: path parameters declared {in_path}, template has {templated}")
        if any(not p.get("required") for p in declared if p["in"] == "path"):
            problems.append(f"{method} {path}: a path parameter is not marked required")
        if entry is not None and list(entry.view_args) != templated:
            problems.append(f"{method} {path}: the view takes {entry.view_args}, the spec names {templated}")
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def route_access() -> dict[tuple[str, str], Any]:
    import app  # noqa: F401  (registering the blueprints fills ROUTE_ACCESS)
    from chalicelib.api.http import ROUTE_ACCESS

    return dict(ROUTE_ACCESS)


def effective_security(spec: dict[str, Any], op: dict[str, Any]) -> list[dict[str, list]]:
    """An operation's own `security`, else the document's (OpenAPI's override rule)."""
    return op["security"] if "security" in op else spec.get("security", [])


def response_ref(op: dict[str, Any], status: str) -> str | None:
    return op["responses"].get(status, {}).get("$ref")


def test_every_app_route_has_an_access_rule(app_routes, route_access):
    """A route registered around `user_route`/`callback_route` would skip authentication."""
    in_app = {(path, method) for path, methods in app_routes.items() for method in methods}
    assert in_app == set(route_access), sorted(in_app ^ set(route_access))


def test_security_schemes(spec):
    schemes = spec["components"]["securitySchemes"]
    assert (schemes["bearerAuth"]["type"], schemes["bearerAuth"]["scheme"]) == ("http", "bearer")
    assert schemes["bearerAuth"]["bearerFormat"] == "JWT"
    assert (schemes["runToken"]["type"], schemes["runToken"]["scheme"]) == ("http", "bearer")
    assert spec["security"] == [{"bearerAuth": []}], "user routes are authenticated: the global requirement"


def test_user_routes_declare_bearer_auth_and_its_errors(spec, route_access):
    """Each user route: the JWT requirement, 401 (with WWW-Authenticate), 503 when the issuer's keys
    cannot be fetched, 403 exactly where its rule can refuse a known caller, 404 where it names a record."""
    from chalicelib.api.http import CALLBACK
    from chalicelib.services.access import WRITE

    problems = []
    user_ops = 0
    for (path, method), op in spec_operations(spec).items():
        rule = route_access.get((path, method))
        if rule is None or rule == CALLBACK:
            continue  # unknown routes: test_spec_documents_exactly_the_app_routes; callbacks: below
        user_ops += 1
        where = f"{method} {path} ({rule.describe()})"
        if effective_security(spec, op) != [{"bearerAuth": []}]:
            problems.append(f"{where}: security is {effective_security(spec, op)}, not bearerAuth")
        if response_ref(op, "401") != "#/components/responses/Unauthorized":
            problems.append(f"{where}: does not document 401 Unauthorized")
        if "503" not in op["responses"]:
            problems.append(f"{where}: does not document 503 (the issuer's keys could not be fetched)")
        # A write can meet a viewer; a named project can be one the caller may not read. A read of a
        # record cannot answer 403: a record the caller may not read is a 404, like an unknown id.
        can_forbid = rule.action == WRITE or rule.target.kind == "project"
        if can_forbid and response_ref(op, "403") != "#/components/responses/Forbidden":
            problems.append(f"{where}: does not document 403 Forbidden")
        if not can_forbid and "403" in op["responses"]:
            problems.append(f"{where}: documents a 403 its rule cannot give (a foreign record is a 404)")
        if rule.target.kind != "project" and "404" not in op["responses"]:
            problems.append(f"{where}: names a record but does not document 404")
    assert user_ops == sum(rule != CALLBACK for rule in route_access.values()), "user routes missing from the spec"
    assert not problems, "\n".join(problems)


def test_callback_routes_use_the_run_token(spec, route_access):
    """The trainer's callbacks override the global JWT requirement with the run's token (or none)."""
    from chalicelib.api.http import CALLBACK

    ops = spec_operations(spec)
    callbacks = {key for key, rule in route_access.items() if rule == CALLBACK}
    assert len(callbacks) >= 4, "the trainer callbacks were not found in the app"
    problems = []
    for path, method in sorted(callbacks):
        op = ops.get((path, method))
        if op is None:
            continue  # reported by test_spec_documents_exactly_the_app_routes
        if not any(part in path for part in ("/training/", "/predictions/{prediction_id}/",
                                             "/evaluations/{evaluation_id}/")):
            problems.append(f"{method} {path}: a token-authenticated route outside /training/ and a job's")
        if op.get("security") not in ([], [{"runToken": []}]):
            problems.append(f"{method} {path}: must override security with [] or [runToken], has {op.get('security')}")
        if op.get("security") and response_ref(op, "401") != "#/components/responses/RunTokenUnauthorized":
            problems.append(f"{method} {path}: does not document 401 RunTokenUnauthorized")
        if "403" in op["responses"]:
            problems.append(f"{method} {path}: callbacks have no roles, so no 403")
    assert not problems, "\n".join(problems)


def test_unauthorized_responses_document_www_authenticate(spec):
    from chalicelib.api.http import error_response
    from chalicelib.errors import Unauthorized

    sent = error_response(Unauthorized("x", field="Authorization")).headers["WWW-Authenticate"]
    for name in ("Unauthorized", "RunTokenUnauthorized"):
        header = resolve(spec, spec["components"]["responses"][name]["headers"]["WWW-Authenticate"])
        assert header["schema"]["const"] == sent, name


def test_websocket_limits_match_the_code(spec):
    from chalicelib.services import notifications

    ws = spec["x-websocket"]
    assert ws["max_subscriptions_per_connection"] == notifications.MAX_SUBSCRIPTIONS
    assert f"at most {notifications.MAX_SUBSCRIPTIONS} subscriptions" in spec["info"]["description"]


def test_operations_document_the_errors_the_edge_gives(spec):
    """Bodies go through the size/media-type guard; ids in the path can be unknown; lists are paginated."""
    problems = []
    for (path, method), op in spec_operations(spec).items():
        codes = set(op["responses"])
        params = {resolve(spec, p)["name"] for p in op.get("parameters", [])}
        if "requestBody" in op and not {"400", "413", "415"} <= codes:
            problems.append(f"{method} {path}: has a body but does not document 400, 413 and 415")
        if "{" in path and "404" not in codes:
            problems.append(f"{method} {path}: has a path id but does not document 404")
        if method == "GET" and "{" not in path.rsplit("/", 1)[-1] and not {"limit", "next_token"} <= params:
            problems.append(f"{method} {path}: a list without limit/next_token")
        if method == "GET" and path.count("/") == 2 and "project_id" not in params:
            problems.append(f"{method} {path}: a project list without project_id")
        if not any(c.startswith("2") for c in codes):
            problems.append(f"{method} {path}: no success response")
    assert not problems, "\n".join(problems)


def route_status(entry: Any) -> int:
    """The success status a route answers with (the `status` its `json_route` decorator was given)."""
    status = inspect.getclosurevars(entry.view_function).nonlocals.get("status")
    assert isinstance(status, int), f"cannot read the success status of {entry.method} {entry.path}; update this test"
    return status


def test_success_statuses_match_the_routes(spec, app_routes):
    """One success response per operation, the one the route answers with (create 201, delete 204, train 202)."""
    for (path, method), op in spec_operations(spec).items():
        entry = app_routes.get(path, {}).get(method)
        if entry is None:
            continue  # reported by test_spec_documents_exactly_the_app_routes
        want = str(route_status(entry))
        success = [c for c in op["responses"] if c.startswith("2")]
        assert success == [want], f"{method} {path}: spec says {success}, the route answers {want}"
        body = resolve(spec, op["responses"][want]).get("content")
        assert (body is None) == (want == "204"), f"{method} {path}: a {want} response with the wrong body"


def error_code(spec: dict[str, Any], response: dict[str, Any]) -> str | None:
    """The `code` an error response pins (its schema is `allOf: [Error, {code: {const: ...}}]`)."""
    schema = resolve(spec, response).get("content", {}).get("application/json", {}).get("schema")
    parts = resolve(spec, schema or {}).get("allOf", [])
    if len(parts) != 2 or parts[0].get("$ref") != "#/components/schemas/Error":
        return None
    return parts[1]["properties"]["code"]["const"]


def test_error_responses_pin_the_domain_error_code(spec):
    """Each documented 4xx/5xx is an Error body whose `code` is the one the DomainError for that status has."""
    from chalicelib import errors

    by_status = {cls.status: cls.code for cls in vars(errors).values()
                 if isinstance(cls, type) and issubclass(cls, errors.DomainError) and cls is not errors.DomainError}
    problems = []
    for (path, method), op in spec_operations(spec).items():
        for status, response in op["responses"].items():
            if status.startswith(("4", "5")):
                code, sent = error_code(spec, response), by_status.get(int(status))
                if code != sent:
                    problems.append(f"{method} {path} {status}: the spec pins code {code}, the app sends {sent}")
    assert not problems, "\n".join(problems)


def schema_properties(spec, name: str) -> set[str]:
    return set(spec["components"]["schemas"][name]["properties"])


def test_request_schemas_match_the_services(spec):
    from chalicelib.adapters.sts import RunCredentials
    from chalicelib.services import ml_models, ontologies, recommend, storage_configs, training
    from chalicelib.services import validation as v

    schemas = spec["components"]["schemas"]
    assert schema_properties(spec, "CreateMlModelRequest") == set(ml_models.CREATE_FIELDS)
    assert schema_properties(spec, "UpdateMlModelRequest") == set(ml_models.UPDATE_FIELDS)
    assert schema_properties(spec, "CreateOntologyRequest") == set(ontologies.FIELDS)
    assert schema_properties(spec, "CreateStorageConfigRequest") == set(storage_configs.FIELDS)
    assert schema_properties(spec, "RecommendRequest") == set(recommend.FIELDS)
    assert schema_properties(spec, "TrainingConfig") == set(v.TRAINING_CONFIG_KEYS)
    assert schemas["RecommendRequest"]["properties"]["storage_ids"]["maxItems"] == recommend.MAX_STORAGE_IDS
    assert schemas["TrainRequest"]["properties"]["storage_ids"]["maxItems"] == training.MAX_STORAGE_IDS
    assert schemas["ProjectId"]["pattern"] == v.PROJECT_ID.pattern
    for name in ("CreateMlModelRequest", "CreateOntologyRequest", "CreateStorageConfigRequest", "RecommendRequest"):
        assert schemas[name]["properties"]["project_id"]["$ref"] == "#/components/schemas/ProjectId", name
    assert schema_properties(spec, "RunCredentials") == {f.name for f in dataclasses.fields(RunCredentials)}
    for name, schema in schemas.items():
        if name.endswith("Request") or name == "TrainingConfig":
            assert schema.get("additionalProperties") is False, f"{name}: the service refuses unknown fields"


def test_enums_match_the_code(spec):
    from chalicelib.services import storage_configs, training
    from chalicelib.services import validation as v

    schemas = spec["components"]["schemas"]
    assert schemas["ModelType"]["enum"] == list(v.MODEL_TYPES)
    assert schemas["ModelStatus"]["enum"] == list(v.STATUSES)
    assert schemas["StorageFormat"]["enum"] == list(storage_configs.FORMATS)
    assert schemas["RunStatus"]["enum"] == list(training.RUN_STATUSES)
    assert set(schemas["CallbackStatus"]["properties"]["status"]["enum"]) == {
        training.COMPLETED["status"], training.FAILED["status"], "progress recorded"}
    assert schemas["TrainingFailRequest"]["properties"]["reason"]["maxLength"] == training.MAX_REASON


def test_prediction_enums_and_limits_match_the_code(spec):
    from chalicelib.services import model_jobs, online_predictions, predictions

    schemas = spec["components"]["schemas"]
    assert schemas["PredictionStatus"]["enum"] == list(model_jobs.STATUSES)
    assert schemas["PredictionOutputFormat"]["enum"] == list(predictions.OUTPUT_FORMATS)
    assert set(schemas["PredictionCallbackStatus"]["properties"]["status"]["enum"]) == {
        "prediction completed", "prediction failed", "progress recorded"}
    create = schemas["CreatePredictionRequest"]["properties"]
    assert create["storage_ids"]["maxItems"] == model_jobs.MAX_STORAGE_IDS
    assert create["passthrough_columns"]["maxItems"] == predictions.MAX_PASSTHROUGH_COLUMNS
    assert create["passthrough_columns"]["items"]["maxLength"] == predictions.MAX_COLUMN_NAME
    assert create["passthrough_columns"]["items"]["not"]["anyOf"] == [
        {"enum": list(predictions.RESERVED_COLUMNS)}, {"pattern": "^" + predictions.RESERVED_PREFIX}]
    assert schemas["PredictRequest"]["properties"]["instances"]["maxItems"] == online_predictions.MAX_INSTANCES
    assert schemas["PredictionFailRequest"]["properties"]["reason"]["maxLength"] == model_jobs.MAX_REASON
    limit = spec["components"]["responses"]["TooManyPredictionJobs"]["content"]["application/json"]["example"]
    assert limit["limit"] == model_jobs.MAX_ACTIVE_PER_MODEL


def test_evaluation_and_monitoring_enums_and_limits_match_the_code(spec):
    from chalicelib.services import evaluations, model_jobs
    from chalicelib.services import validation as v

    schemas = spec["components"]["schemas"]
    assert schemas["EvaluationStatus"]["enum"] == list(model_jobs.STATUSES)
    assert schemas["EvaluationVerdict"]["enum"] == list(evaluations.VERDICTS)
    assert set(schemas["EvaluationCallbackStatus"]["properties"]["status"]["enum"]) == {
        "evaluation completed", "evaluation failed", "progress recorded"}
    assert schema_properties(spec, "CreateEvaluationRequest") == set(evaluations.EvaluationService.REQUEST_FIELDS)
    assert set(schemas["EvaluationCompleteRequest"].get("properties", {})) == set(
        evaluations.EvaluationService.COMPLETE_FIELDS)
    assert schemas["CreateEvaluationRequest"]["properties"]["storage_ids"]["maxItems"] == model_jobs.MAX_STORAGE_IDS
    assert schemas["EvaluationFailRequest"]["properties"]["reason"]["maxLength"] == model_jobs.MAX_REASON
    limit = spec["components"]["responses"]["TooManyEvaluationJobs"]["content"]["application/json"]["example"]
    assert limit["limit"] == model_jobs.MAX_ACTIVE_PER_MODEL

    monitoring = schemas["Monitoring"]["properties"]
    assert set(monitoring) == set(v.MONITORING_FIELDS)
    assert monitoring["storage_ids"]["maxItems"] == v.MAX_MONITORED_STORAGE_IDS
    every = monitoring["every_minutes"]
    assert (every["minimum"], every["maximum"]) == (v.MIN_EVERY_MINUTES, v.MAX_EVERY_MINUTES)
    assert {k: monitoring[k]["default"] for k in v.MONITORING_DEFAULTS} == v.MONITORING_DEFAULTS


@pytest.mark.parametrize(
    ("config", "valid"),
    [
        ({"train_test_split": 0.8, "random_seed": 42, "learning_rate": 0.001, "batch_size": 32}, True),
        ({"max_iterations": 5, "early_stopping_rounds": 3, "target_column": "y", "hyperparameters": {"k": 1}}, True),
        ({"train_test_split": 1}, False),
        ({"train_test_split": 0}, False),
        ({"random_seed": -1}, False),
        ({"random_seed": 2**32}, False),
        ({"learning_rate": 0}, False),
        ({"batch_size": 3.5}, False),
        ({"max_iterations": 0}, False),
        ({"target_column": ""}, False),
        ({"hyperparameters": 3}, False),
        ({"max_depth": 3}, False),
    ],
)
def test_training_config_schema_agrees_with_the_validator(spec, config, valid):
    """The schema's ranges are the service's: both accept or both refuse."""
    from chalicelib.errors import InvalidInput
    from chalicelib.services import validation as v

    schema_ok = validator_for(spec, {"$ref": "#/components/schemas/TrainingConfig"}).is_valid(config)
    try:
        v.training_config(config, with_defaults=False)
        service_ok = True
    except InvalidInput:
        service_ok = False
    assert schema_ok == service_ok == valid, f"schema accepts: {schema_ok}, service accepts: {service_ok}"


@pytest.mark.parametrize(
    ("project_id", "valid"),
    [("proj-123", True), ("P", True), ("a.b_c-9", True), ("x" * 100, True), ("x" * 101, False),
     ("-proj", False), (".hidden", False), ("a/b", False), ("proj:1", False), ("", False), ("proj 1", False)],
)
def test_project_id_schema_agrees_with_the_validator(spec, project_id, valid):
    from chalicelib.errors import InvalidInput
    from chalicelib.services import validation as v

    schema_ok = validator_for(spec, {"$ref": "#/components/schemas/ProjectId"}).is_valid(project_id)
    try:
        v.project_id({"project_id": project_id})
        service_ok = True
    except InvalidInput:
        service_ok = False
    assert schema_ok == service_ok == valid, f"schema accepts: {schema_ok}, service accepts: {service_ok}"


def test_project_id_with_a_trailing_newline_is_refused():
    """Python's `$` matches before a final newline (the jsonschema library's pattern check has the same
    blind spot, so this is checked on the service alone)."""
    from chalicelib.errors import InvalidInput
    from chalicelib.services import validation as v

    with pytest.raises(InvalidInput):
        v.project_id({"project_id": "proj-1\n"})


def iter_examples(spec):
    """(where, schema, example value) for every example attached to a media type or parameter."""
    for (path, method), op in spec_operations(spec).items():
        bodies = [("request", resolve(spec, op["requestBody"]))] if "requestBody" in op else []
        bodies += [(code, resolve(spec, r)) for code, r in op["responses"].items()]
        for where, body in bodies:
            media = body.get("content", {}).get("application/json", {})
            values = [resolve(spec, e)["value"] for e in media.get("examples", {}).values()]
            if "example" in media:
                values.append(media["example"])
            for value in values:
                yield f"{method} {path} {where}", media["schema"], value
    for name, param in spec["components"]["parameters"].items():
        if "example" in param:
            yield f"parameter {name}", param["schema"], param["example"]


def test_examples_match_their_schemas(spec):
    examples = list(iter_examples(spec))
    assert len(examples) > 20
    problems = []
    for where, schema, value in examples:
        for error in validator_for(spec, schema).iter_errors(value):
            problems.append(f"{where}: {'/'.join(map(str, error.absolute_path))}: {error.message}")
    assert not problems, "\n".join(problems)


def test_contract_examples_are_request_examples(spec):
    """The contract's curl bodies are in the document (and so validated above)."""
    ops = spec_operations(spec)
    for key in [("/api/ml-models", "POST"), ("/api/ml-models/{model_id}", "PUT"), ("/api/ml-models/train", "POST"),
                ("/api/ml-models/recommend", "POST"), ("/api/ml-models/{model_id}/training/complete", "POST"),
                ("/api/ml-models/{model_id}/training/fail", "POST")]:
        assert "contract" in ops[key]["requestBody"]["content"]["application/json"]["examples"], key
