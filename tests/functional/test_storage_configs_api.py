"""Storage config routes: an s3:// location that must be readable, and a data format."""
from __future__ import annotations

import boto3
import pytest


@pytest.fixture
def data_bucket(aws):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="project-data")
    s3.put_object(Bucket="project-data", Key="sensors/part-0.csv", Body=b"temperature,humidity\n1,2\n")
    return "project-data"


def test_create_get_update_delete(api, project, ontology, data_bucket):
    body = {"project_id": project, "name": "sensors", "ontology_id": ontology["id"],
            "uri": "s3://project-data/sensors/", "format": "csv"}
    reply = api.post("/api/storage-configs", body)
    assert reply.status == 201, reply
    config = reply.json
    assert {k: config[k] for k in body} == body and config["id"].startswith("storage-")
    assert api.get(f"/api/storage-configs/{config['id']}").json == config
    listed = api.get(f"/api/storage-configs?project_id={project}").json["storage_configs"]
    assert [c["id"] for c in listed] == [config["id"]]
    updated = api.put(f"/api/storage-configs/{config['id']}", {"format": "jsonl"}).json
    assert updated["format"] == "jsonl" and updated["uri"] == body["uri"]
    assert api.delete(f"/api/storage-configs/{config['id']}").status == 204
    assert api.get(f"/api/storage-configs/{config['id']}").status == 404


@pytest.mark.parametrize(
    ("uri", "needle"),
    [
        ("http://project-data/x", "s3://bucket/prefix"),
        ("s3://", "s3://bucket/prefix"),
        ("s3://no-such-bucket-here/data", "does not exist"),
        (42, "must be a string"),
    ],
)
def test_unreadable_or_malformed_uri_is_400(api, project, data_bucket, uri, needle):
    reply = api.post("/api/storage-configs", {"project_id": project, "name": "x", "uri": uri, "format": "csv"})
    assert reply.status == 400 and reply.json["field"] == "uri"
    assert needle in reply.json["message"]


def test_format_and_ontology_are_checked(api, project, data_bucket):
    base = {"project_id": project, "name": "x", "uri": "s3://project-data/sensors/"}
    reply = api.post("/api/storage-configs", {**base, "format": "xlsx"})
    assert reply.status == 400 and reply.json["field"] == "format"
    reply = api.post("/api/storage-configs", {**base, "format": "csv", "ontology_id": "onto-missing"})
    assert reply.status == 400 and reply.json["field"] == "ontology_id"
