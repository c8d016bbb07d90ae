"""Bounded cost per request (issue 11): ontologies parsed once within limits, recommend's reads
capped per request, and a per-project limit on concurrent training runs."""
from __future__ import annotations

import json
import sys

import boto3
import pytest
from conftest import install_graph
from fakes.records import at
from samples import SENSOR_TTL

from chalicelib.ontology import MAX_TRIPLES
from chalicelib.recommend.sample import MAX_BYTES_PER_REQUEST, MAX_STORAGE_CONFIGS_PER_REQUEST
from chalicelib.records import Ontology
from chalicelib.services.ontologies import MAX_PREFIXES

BUCKET = "ml-models-data-local"  # the local stage's data bucket (DATA_BUCKETS)
HEAD = "@prefix owl: <http://www.w3.org/2002/07/owl#> .\n@prefix ex: <http://example.org/x#> .\n"


def create(api, project, content):
    return api.post("/api/ontologies", {"project_id": project, "name": "Big", "content": content})


def stored(api, project) -> list:
    return api.get(f"/api/ontologies?project_id={project}").json["ontologies"]


# ---- ontologies ----------------------------------------------------------------------------------


def test_an_ontology_of_9400_prefixes_is_refused_before_parsing(api, project, monkeypatch):
    content = "".join(f"@prefix p{i}: <u:{i}> .\n" for i in range(9400)) + "ex:A a owl:Class .\n"  # 190 KB
    monkeypatch.setitem(sys.modules, "rdflib", None)  # a parse would now fail with 500: the count comes first
    reply = create(api, project, HEAD + content)
    assert reply.status == 413, reply
    assert reply.json["field"] == "content" and reply.json["limit"] == MAX_PREFIXES
    assert "9402 prefixes" in reply.json["message"]
    monkeypatch.delitem(sys.modules, "rdflib")
    assert stored(api, project) == []


def test_sparql_style_prefixes_count_too_and_the_limit_itself_is_accepted(api, project):
    at_limit = "".join(f"PREFIX p{i}: <http://example.org/{i}#>\n" for i in range(MAX_PREFIXES - 2))
    assert create(api, project, HEAD + at_limit + "ex:A a owl:Class .\n").status == 201
    over = create(api, project, HEAD + at_limit + "prefix one: <http://e/1#>\nex:A a owl:Class .\n")
    assert (over.status, over.json["field"]) == (413, "content")


def test_an_ontology_over_the_triple_limit_is_413_and_not_stored(api, project):
    # 60,000 items of a collection are 120,000 triples in 120 KB, well under the byte limit.
    content = HEAD + "ex:A ex:values ( " + " ".join("1" for _ in range(60_000)) + " ) .\n"
    reply = create(api, project, content)
    assert reply.status == 413, reply
    assert (reply.json["field"], reply.json["limit"]) == ("content", MAX_TRIPLES)
    assert stored(api, project) == []


def test_content_whose_summary_would_overflow_the_record_is_413(api, project):
    # Short properties with long IRIs: 280 KB of Turtle whose summary holds each IRI twice more.
    base = "http://example.org/" + "a" * 900 + "#"
    content = f"@prefix owl: <http://www.w3.org/2002/07/owl#> .\n@prefix ex: <{base}> .\n" + "".join(
        f"<{base}p{i}> a owl:DatatypeProperty .\n" for i in range(290))
    assert len(content) < 300_000
    reply = create(api, project, content)
    assert reply.status == 413, reply
    assert reply.json["field"] == "content" and "summary" in reply.json["message"]
    assert stored(api, project) == []


def test_get_returns_the_summary_stored_at_write_time_without_parsing(api, project, monkeypatch):
    created = create(api, project, SENSOR_TTL)
    assert created.status == 201
    monkeypatch.setitem(sys.modules, "rdflib", None)  # any parse now raises ImportError (a 500)
    got = api.get(f"/api/ontologies/{created.json['id']}")
    assert got.status == 200, got
    assert got.json["summary"] == created.json["summary"]
    assert got.json["summary"]["triples"] == 18
    assert [p["name"] for p in got.json["summary"]["datatype_properties"]] == [
        "humidity", "pressure", "site_type", "temperature"]
    renamed = api.put(f"/api/ontologies/{created.json['id']}", {"name": "Renamed"})
    assert renamed.status == 200 and renamed.json["summary"] == created.json["summary"]
    # The recommender reads the stored summary too.
    recommended = api.post("/api/ml-models/recommend", {"project_id": project, "ontology_id": created.json["id"]})
    assert recommended.status == 200, recommended
    assert recommended.json["ontology_analysis"]["datatype_properties"] == 4


def test_a_changed_content_gets_a_new_summary(api, project):
    created = create(api, project, SENSOR_TTL).json
    smaller = HEAD + "ex:A a owl:Class .\n"
    updated = api.put(f"/api/ontologies/{created['id']}", {"content": smaller})
    assert updated.status == 200
    assert updated.json["summary"]["triples"] == 1
    assert api.get(f"/api/ontologies/{created['id']}").json["summary"] == updated.json["summary"]


def test_a_record_written_before_summaries_were_stored_is_still_served(api, project):
    graph = install_graph()
    old = graph.repos.ontologies.add(Ontology(id=f"onto-old-{project}", project_id=project, name="Old",
                                              content=SENSOR_TTL, created_at=at(0), updated_at=at(0)))
    assert old.summary == {}
    got = api.get(f"/api/ontologies/{old.id}")
    assert got.status == 200, got
    assert got.json["summary"]["triples"] == 18
    assert "summary" not in stored(api, project)[0]  # lists never carry (or compute) it


# ---- recommend -----------------------------------------------------------------------------------


@pytest.fixture
def s3(aws):
    return boto3.client("s3", region_name="us-east-1")


def bind_configs(api, project, s3, ontology_id: str, count: int, body: bytes) -> list[str]:
    ids = []
    for i in range(count):
        s3.put_object(Bucket=BUCKET, Key=f"{project}/d{i}/part-0.csv", Body=body)
        reply = api.post("/api/storage-configs", {"project_id": project, "name": f"d{i}", "ontology_id": ontology_id,
                                                  "uri": f"s3://{BUCKET}/{project}/d{i}/", "format": "csv"})
        assert reply.status == 201, reply
        ids.append(reply.json["id"])
    return ids


def csv_of(size: int) -> bytes:
    line = b"1.5,2.5,7,true\n"
    return b"temperature,humidity,pressure,label\n" + line * (size // len(line))


def test_recommend_samples_at_most_the_newest_storage_configs_bound_to_the_ontology(api, project, ontology, s3):
    ids = bind_configs(api, project, s3, ontology["id"], MAX_STORAGE_CONFIGS_PER_REQUEST + 2, csv_of(200))
    reply = api.post("/api/ml-models/recommend", {"project_id": project, "ontology_id": ontology["id"]})
    assert reply.status == 200, reply
    data = reply.json["data_analysis"]
    sampled = [s["storage_id"] for s in data["storage_configs"]]
    assert sorted(sampled) == sorted(ids[2:])  # the 20 newest; the two oldest are not read
    assert data["storage_configs_limited"] is True
    assert f"only the {MAX_STORAGE_CONFIGS_PER_REQUEST} newest were sampled" in reply.json["reasoning"]
    assert data["sampling_bound"]["max_storage_configs_per_request"] == MAX_STORAGE_CONFIGS_PER_REQUEST


def test_recommend_reads_at_most_the_request_byte_budget_across_storage_configs(api, project, ontology, s3):
    # Nine configs of 1.2 MB each: 1 MB apiece (the per-config bound) would be 9 MB in all.
    bind_configs(api, project, s3, ontology["id"], 9, csv_of(1_200_000))
    reply = api.post("/api/ml-models/recommend", {"project_id": project, "ontology_id": ontology["id"]})
    assert reply.status == 200, reply
    data = reply.json["data_analysis"]
    assert len(data["storage_configs"]) == 9
    assert "storage_configs_limited" not in data
    assert 8 * 800_000 < data["bytes_read"] <= MAX_BYTES_PER_REQUEST
    assert data["sampling_bound"]["max_bytes_read_per_request"] == MAX_BYTES_PER_REQUEST


# ---- concurrent runs per project -----------------------------------------------------------------


def train(api, model_id):
    return api.post("/api/ml-models/train", {"model_id": model_id, "storage_ids": []})


def test_the_sixth_concurrent_run_of_a_project_is_429_and_changes_nothing(api, launcher, make_model, issuer):
    models = [make_model(name=f"m{i}") for i in range(6)]
    for model in models[:5]:
        assert train(api, model["id"]).status == 202
    raw = api.client.http.post("/api/ml-models/train", headers={**api.default_headers,
                               "Content-Type": "application/json"},
                               body=json.dumps({"model_id": models[5]["id"], "storage_ids": []}))
    assert raw.status_code == 429, raw.body
    body = json.loads(raw.body)
    assert (body["code"], body["field"], body["limit"], body["active_runs"]) == (
        "too_many_requests", "project_id", 5, 5)
    assert "the limit is 5" in body["message"] and "MAX_CONCURRENT_RUNS_PER_PROJECT" in body["message"]
    assert int(raw.headers["Retry-After"]) > 0
    sixth = api.get(f"/api/ml-models/{models[5]['id']}").json
    assert {k: v for k, v in sixth.items() if k != "updated_at"} == {
        k: v for k, v in models[5].items() if k != "updated_at"}
    assert sixth["status"] == "draft" and sixth["training_task_id"] == ""
    assert api.get(f"/api/ml-models/{models[5]['id']}/runs").json["runs"] == []
    assert len(launcher.jobs) == 5

    # Another project is unaffected.
    other = "proj-other-" + models[0]["project_id"]
    onto = api.post("/api/ontologies", {"project_id": other, "name": "S", "content": SENSOR_TTL}).json
    theirs = api.post("/api/ml-models", {"project_id": other, "ontology_id": onto["id"], "name": "t",
                                         "type": "random_forest"}).json
    assert train(api, theirs["id"]).status == 202

    # After one run ends, the next is accepted.
    job = launcher.jobs[0]
    ended = api.post(f"/api/ml-models/{job.model_id}/training/fail", {"reason": "out of memory"},
                     headers={"Authorization": f"Bearer {job.callback_token}", "X-Training-Run-Id": job.run_id})
    assert ended.status == 200, ended
    assert train(api, models[5]["id"]).status == 202


def test_the_limit_is_stage_config(api, make_model, monkeypatch):
    from fakes.launcher import FakeLauncher

    monkeypatch.setenv("MAX_CONCURRENT_RUNS_PER_PROJECT", "1")
    install_graph(launcher=FakeLauncher())
    first, second = make_model(name="a"), make_model(name="b")
    assert train(api, first["id"]).status == 202
    refused = train(api, second["id"])
    assert (refused.status, refused.json["limit"], refused.json["active_runs"]) == (429, 1, 1)
