"""Storage config routes: an s3:// location that must be readable, and a data format."""
from __future__ import annotations

import boto3
import pytest

DATA = "ml-models-data-local"  # the local stage's data bucket (DATA_BUCKETS)


@pytest.fixture
def data_bucket(aws, project):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(Bucket=DATA, Key=f"{project}/sensors/part-0.csv", Body=b"temperature,humidity\n1,2\n")
    return DATA


def test_create_get_update_delete(api, project, ontology, data_bucket):
    body = {"project_id": project, "name": "sensors", "ontology_id": ontology["id"],
            "uri": f"s3://{DATA}/{project}/sensors/", "format": "csv"}
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
        ("s3://no-such-bucket-here/data", "must lie under"),
        (42, "must be a string"),
    ],
)
def test_unreadable_or_malformed_uri_is_400(api, project, data_bucket, uri, needle):
    reply = api.post("/api/storage-configs", {"project_id": project, "name": "x", "uri": uri, "format": "csv"})
    assert reply.status == 400 and reply.json["field"] == "uri"
    assert needle in reply.json["message"]


def test_format_and_ontology_are_checked(api, project, data_bucket):
    base = {"project_id": project, "name": "x", "uri": f"s3://{DATA}/{project}/sensors/"}
    reply = api.post("/api/storage-configs", {**base, "format": "xlsx"})
    assert reply.status == 400 and reply.json["field"] == "format"
    reply = api.post("/api/storage-configs", {**base, "format": "csv", "ontology_id": "onto-missing"})
    assert reply.status == 400 and reply.json["field"] == "ontology_id"


def test_a_location_outside_the_project_is_refused(api, project, data_bucket):
    """The server decides where a project's data may be: its own prefix of a data bucket, never the
    artifact bucket, another project's prefix, or a prefix that merely starts with the project id."""
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(Bucket=DATA, Key="proj-victim/secret.csv", Body=b"a\n1\n")
    s3.put_object(Bucket=DATA, Key=f"{project}0/x.csv", Body=b"a\n1\n")
    for uri in (f"s3://{DATA}/proj-victim/", f"s3://{DATA}/", f"s3://{DATA}/{project}0/",
                f"s3://{DATA}/{project}/../proj-victim/", "s3://ml-models-artifacts-local/runs/",
                "s3://ml-models-artifacts-local/models/", f"s3://ml-models-artifacts-local/{project}/"):
        reply = api.post("/api/storage-configs", {"project_id": project, "name": "x", "uri": uri, "format": "csv"})
        assert reply.status == 400 and reply.json["field"] == "uri", (uri, reply)
    # Moving an existing config elsewhere is refused the same way, and leaves it as it was.
    own = api.post("/api/storage-configs", {"project_id": project, "name": "x", "format": "csv",
                                            "uri": f"s3://{DATA}/{project}/sensors/"}).json
    reply = api.put(f"/api/storage-configs/{own['id']}", {"uri": f"s3://{DATA}/proj-victim/"})
    assert reply.status == 400 and reply.json["field"] == "uri"
    assert api.get(f"/api/storage-configs/{own['id']}").json == own
