"""DataScope: which URIs a project's storage configs may name, and the stage config behind it."""
from __future__ import annotations

import json

import pytest

from chalicelib.errors import InvalidInput
from chalicelib.services.data_scope import (
    MAX_SESSION_POLICY_CHARS,
    DataScope,
    SessionPolicyTooLarge,
    policy_json,
)

ARTIFACTS = "ml-models-artifacts-dev-123456789012"
GRANTS = {"proj-123": ["s3://team-bucket/sensors/", "s3://whole-team-bucket/"], "proj-9": ["s3://ninth/x/"]}


@pytest.fixture
def scope() -> DataScope:
    return DataScope.from_config("ml-data, ml-data-2", json.dumps(GRANTS), ARTIFACTS)


def refused(scope: DataScope, project: str, uri: str) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        scope.check(project, uri)
    return caught.value


@pytest.mark.parametrize("uri", [
    "s3://ml-data/proj-123/",
    "s3://ml-data/proj-123/readings/part-0.csv",
    "s3://ml-data-2/proj-123/a/b/",
    "s3://team-bucket/sensors/2026/",
    "s3://whole-team-bucket/anything/at/all",
    "s3://whole-team-bucket/",
])
def test_the_projects_own_locations_and_its_grants_are_accepted(scope, uri):
    location = scope.check("proj-123", uri)
    assert location.uri == uri


@pytest.mark.parametrize("uri", [
    "s3://ml-data/other-proj/readings/",  # another project's prefix, same bucket
    "s3://ml-data/proj-1234/readings/",  # the boundary: proj-123 must not reach proj-1234/
    "s3://ml-data/proj-12/",
    "s3://ml-data/proj-123",  # the bare name would list proj-1234/... too
    "s3://ml-data/",
    "s3://ml-data",
    "s3://team-bucket/other/",  # the grant's bucket, outside the granted prefix
    "s3://team-bucket/sensors-old/",
    "s3://ninth/x/",  # proj-9's grant
    "s3://unknown-bucket/proj-123/",
])
def test_anything_else_is_refused_naming_the_rule(scope, uri):
    error = refused(scope, "proj-123", uri)
    assert error.field == "uri"
    assert error.message.startswith(
        "uri must lie under s3://ml-data/proj-123/ or s3://ml-data-2/proj-123/ (this project's data location) "
        "or a location granted to the project; got ")
    assert uri in error.message


def test_the_grants_of_one_project_never_serve_another(scope):
    assert scope.check("proj-9", "s3://ninth/x/y").bucket == "ninth"
    refused(scope, "proj-123", "s3://ninth/x/y")
    refused(scope, "proj-9", "s3://team-bucket/sensors/")


@pytest.mark.parametrize("uri", [
    f"s3://{ARTIFACTS}/runs/",
    f"s3://{ARTIFACTS}/models/m/v1/",
    f"s3://{ARTIFACTS}/proj-123/",
    f"s3://{ARTIFACTS}/",
    f"s3://{ARTIFACTS}/data/proj-123/",
])
def test_the_artifact_bucket_is_never_a_data_location(scope, uri):
    error = refused(scope, "proj-123", uri)
    assert "must not point into the artifact bucket" in error.message


@pytest.mark.parametrize(("uri", "problem"), [
    ("s3://ml-data/proj-123/../other-proj/", "'..'"),
    ("s3://ml-data/proj-123/./x", "'.'"),
    ("s3://ml-data/proj-123//x", "'//'"),
    ("s3://ml-data//proj-123/x", "'/'"),
    ("s3://ml-data/proj-123/a\\..\\b", "backslash"),
    ("s3://ml-data/proj-123/a\tb", "control characters"),
    ("s3://ml-data/proj-123/a\x00", "control characters"),
])
def test_path_tricks_are_refused(scope, uri, problem):
    error = refused(scope, "proj-123", uri)
    assert "must be a plain S3 prefix" in error.message and problem in error.message


@pytest.mark.parametrize("project", ["", "../proj", "proj/123", "-proj", "p" * 101, None, "proj 1"])
def test_a_bad_project_id_is_refused(scope, project):
    with pytest.raises(InvalidInput) as caught:
        scope.check(project, "s3://ml-data/proj-123/")
    assert caught.value.field == "project_id"


def test_not_an_s3_uri_is_refused(scope):
    with pytest.raises(InvalidInput, match="s3://bucket/prefix"):
        scope.check("proj-123", "https://example.com/data.csv")


def test_locations_are_the_data_buckets_then_the_grants(scope):
    assert [loc.uri for loc in scope.locations("proj-123")] == [
        "s3://ml-data/proj-123/", "s3://ml-data-2/proj-123/", "s3://team-bucket/sensors/", "s3://whole-team-bucket/"]
    assert [loc.uri for loc in scope.locations("proj-new")] == ["s3://ml-data/proj-new/", "s3://ml-data-2/proj-new/"]


# ---- stage config -------------------------------------------------------------------------------


@pytest.mark.parametrize(("buckets", "grants", "names"), [
    ("Bad_Bucket", "{}", "DATA_BUCKETS: not a bucket name: 'Bad_Bucket'"),
    (ARTIFACTS, "{}", "is the artifact bucket"),
    ("ml-data", "not json", "PROJECT_DATA_GRANTS: not JSON"),
    ("ml-data", "[]", "expected a JSON object"),
    ("ml-data", '{"../x": ["s3://b-b/x/"]}', "'../x' is not a project id"),
    ("ml-data", '{"p": "s3://b-b/x/"}', "PROJECT_DATA_GRANTS['p']: expected a list"),
    ("ml-data", '{"p": ["s3://b-b/x"]}', "must end with '/'"),
    ("ml-data", '{"p": ["b-b/x/"]}', "is not an s3://bucket/prefix/ URI"),
    ("ml-data", json.dumps({"p": [f"s3://{ARTIFACTS}/runs/"]}), "is in the artifact bucket"),
    ("ml-data", '{"p": ["s3://b-b/x/../y/"]}', "'..'"),
    ("ml-data", '{"p": ["s3://b-b/x*/"]}', "'*'"),
    ("ml-data", '{"p": ["s3://b-b/${aws:username}/"]}', "'$'"),
])
def test_a_misconfigured_stage_fails_at_start_naming_the_entry(buckets, grants, names):
    with pytest.raises(ValueError) as caught:
        DataScope.from_config(buckets, grants, ARTIFACTS)
    assert names in str(caught.value)


def test_empty_grants_and_spaces_are_fine():
    scope = DataScope.from_config(" ml-data ,, ml-data ", "", ARTIFACTS)
    assert scope.data_buckets == ("ml-data",) and dict(scope.grants) == {}


def test_no_data_bucket_accepts_only_grants():
    scope = DataScope.from_config("", '{"p": ["s3://b-b/x/"]}', ARTIFACTS)
    assert scope.check("p", "s3://b-b/x/y").prefix == "x/y"
    with pytest.raises(InvalidInput, match="no data bucket"):
        scope.check("q", "s3://b-b/x/y")


def test_too_many_grants_for_one_session_policy_fail_at_start():
    grants = {"proj-big": [f"s3://team-bucket-{i:02d}/some/long/prefix/for/data/{i}/" for i in range(20)]}
    with pytest.raises(ValueError, match=r"PROJECT_DATA_GRANTS\['proj-big'\].*over STS's 2048") as caught:
        DataScope.from_config("ml-data", json.dumps(grants), ARTIFACTS)
    assert not isinstance(caught.value, InvalidInput)


def test_session_policy_too_large_is_a_value_error_of_its_own():
    scope = DataScope(("ml-data",), {"p": tuple(f"s3://b-{i:03d}/{'x' * 40}/" for i in range(30))}, ARTIFACTS)
    with pytest.raises(SessionPolicyTooLarge):
        scope.session_policy(project_id="p", model_id="m", version=1, run_id="r")


@pytest.mark.parametrize(("field", "value"), [("model_id", "m*"), ("run_id", "r?"), ("model_id", "${aws:x}"),
                                              ("version", 0), ("version", True)])
def test_session_policy_ids_cannot_widen_an_arn(scope, field, value):
    kwargs = {"project_id": "proj-123", "model_id": "m", "version": 1, "run_id": "r", field: value}
    with pytest.raises(InvalidInput):
        scope.session_policy(**kwargs)


def test_policy_json_is_compact(scope):
    policy = scope.session_policy(project_id="proj-123", model_id="m", version=1, run_id="r")
    text = policy_json(policy)
    assert ": " not in text and ", " not in text and json.loads(text) == policy
    assert len(text) <= MAX_SESSION_POLICY_CHARS

