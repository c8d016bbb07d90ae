"""The trimmed Lambda zip, and nothing else, serves the API: extracted and run by the runtime's
Python as `python -I -S -B` (no site-packages, no venv), with the packaged dev stage's environment
pointed at a moto server of its own process and a local token issuer, it creates, lists and gets a
model through `app.app(event, context)`; and what the smoke path does not reach (every kept AWS
service, EKS tokens, TLS bundle, metrics, every chalicelib module) loads from the zip too.

The harness is bench/bench_cold_start.py's, which times the same process."""
from __future__ import annotations

import zipfile
from pathlib import Path

import boto3
import pytest
from infra_support import REGION, resolve, stack_values

from scripts.package import AWS_SERVICES, LAMBDA_RUNTIME, TARGET_ZIPPED_BYTES, ZIP_EPOCH, drop_reason

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(packages, tmp_path_factory):
    """(the zip stack, the report of one fresh process that served the smoke path from the dev zip)."""
    from bench.bench_cold_start import run_from_zip, zip_stack

    package = packages["dev"]
    env = resolve(package.template["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"],
                  stack_values("dev"))
    with zip_stack(package.zip_path, env, tmp_path_factory.mktemp("zip-dev")) as stack:
        yield stack, run_from_zip(stack, checks=True)


def test_the_zip_alone_creates_lists_and_gets_a_model(served):
    stack, report = served
    calls = report["requests"]
    assert [(c["label"], c["status"]) for c in calls] == [
        ("first request: GET /api/ml-models", 200), ("POST /api/ontologies", 201), ("POST /api/ml-models", 201),
        ("GET /api/ml-models", 200), ("GET /api/ml-models/{model_id}", 200)], [c["body"] for c in calls]
    first, onto, model, listed, got = (c["body"] for c in calls)
    assert first == {"models": [], "next_token": None}
    assert onto["project_id"] == "proj-zip" and [c["name"] for c in onto["summary"]["classes"]] == ["Reading"]
    assert model["ontology_id"] == onto["id"] and model["name"] == "Temperature" and model["status"] == "draft"
    assert [m["id"] for m in listed["models"]] == [model["id"]]
    assert got == model

    # The record is in moto's table, read back around the app.
    dynamodb = boto3.client("dynamodb", endpoint_url=stack.moto_url, region_name=REGION)
    stored = dynamodb.get_item(TableName=stack.env["MODELS_TABLE"], Key={"id": {"S": model["id"]}},
                               ConsistentRead=True)
    assert stored["Item"]["name"] == {"S": "Temperature"}


def test_the_process_saw_only_the_zip_and_the_standard_library(served):
    stack, report = served
    assert report["python"].startswith(LAMBDA_RUNTIME.removeprefix("python") + ".")
    assert report["sys_path"][0] == str(stack.root)
    assert not [p for p in report["sys_path"] if "site-packages" in p or ".venv" in p], report["sys_path"]
    assert report["outside_zip"] == []
    assert stack.env["AWS_LAMBDA_FUNCTION_NAME"]  # so `import app` ran the deployed stage's start-up check


def test_every_kept_service_makes_a_client_and_a_dropped_one_does_not(served):
    _, report = served
    assert report["checks"]["clients"] == {**{s: "ok" for s in AWS_SERVICES}, "ec2": "unknown service"}


def test_what_the_smoke_path_does_not_reach_loads_from_the_zip(served):
    stack, report = served
    checks = report["checks"]
    assert checks["import_failures"] == {}
    assert checks["eks_token_prefix"] == "k8s-aws-v1."
    # botocore verifies TLS with certifi's bundle, the one kept (its own is dropped).
    assert checks["ca_bundle"] == str(stack.root / "certifi" / "cacert.pem")
    assert (stack.root / "certifi" / "cacert.pem").stat().st_size > 100_000
    assert not (stack.root / "botocore" / "cacert.pem").exists()
    (metric,) = checks["metric_lines"]
    assert metric["RunsAccepted"] == [1.0] and metric["_aws"]["CloudWatchMetrics"][0]["Namespace"]
    assert checks["kubernetes_api_client"] == "BatchV1Api"
    # The kubernetes client's models and dateutil, as the reconciler reads a Job.
    assert checks["kubernetes_job"] == ["train-zip", "2026-12-03T10:00:00+00:00", "DeadlineExceeded"]
    # rdflib's Turtle parser reports a syntax error without its SPARQL, serializers, other parsers or pyparsing.
    assert checks["turtle_error"].startswith("content is not valid Turtle: line 2"), checks["turtle_error"]
    # cryptography's compiled bindings sign and verify without cffi's and pycparser's Python packages.
    assert checks["jwt_verified"] == {"RS256": "zip", "ES256": "zip"}
    assert checks["charset_decoded"] == "température, humidité"  # charset_normalizer without its compiled md/cd


def test_the_zips_are_trimmed_under_the_target_and_reproducible(packages):
    for stage, package in packages.items():
        assert package.zip.zipped_bytes <= TARGET_ZIPPED_BYTES, stage
        assert package.trim.services == sorted(AWS_SERVICES)
        assert package.trim.chalice_zipped_bytes > 2 * package.zip.zipped_bytes  # the rewrite did its work
        with zipfile.ZipFile(package.zip_path) as archive:
            infos = archive.infolist()
        names = [i.filename for i in infos]
        assert names == sorted(names) and {i.date_time for i in infos} == {ZIP_EPOCH}
        assert [n for n in names if drop_reason(n, certifi=True)] == []
        assert {"botocore/data/endpoints.json", "botocore/data/partitions.json", "botocore/data/_retry.json",
                "botocore/data/sdk-default-configuration.json"} <= set(names)
    # Two builds (the stages differ in their templates only) give the same bytes.
    zips = {Path(p.zip_path).read_bytes() for p in packages.values()}
    assert len(zips) == 1
