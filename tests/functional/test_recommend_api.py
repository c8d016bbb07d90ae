"""POST /api/ml-models/recommend: the contract's fields, determinism, errors, and data edge cases."""
from __future__ import annotations

import random
import re

import boto3
import pytest

TYPES = {"decision_tree", "random_forest", "regression", "neural_network"}
TIE_ORDER = ["random_forest", "regression", "neural_network", "decision_tree"]
BUCKET = "ml-models-data-local"  # the local stage's data bucket (DATA_BUCKETS)

CLASSIFY_TTL = """\
@prefix owl: <http://www.w3.org/2002/07/owl#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
@prefix ex: <http://example.org/iris#> .

ex:Flower a owl:Class .
ex:Garden a owl:Class .
ex:grownIn a owl:ObjectProperty ; rdfs:domain ex:Flower ; rdfs:range ex:Garden .
ex:x1 a owl:DatatypeProperty ; rdfs:domain ex:Flower ; rdfs:range xsd:double .
ex:x2 a owl:DatatypeProperty ; rdfs:domain ex:Flower ; rdfs:range xsd:double .
ex:colour a owl:DatatypeProperty ; rdfs:domain ex:Flower ; rdfs:range xsd:string .
ex:label a owl:DatatypeProperty ; rdfs:domain ex:Flower ; rdfs:range xsd:string .
"""


def flowers_csv(rows: int = 300, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    lines = ["x1,x2,colour,label"]
    for _ in range(rows):
        x1, x2 = rng.uniform(-1, 1), rng.uniform(-1, 1)
        label = "a" if x1 * x2 > 0 else "b"  # a non-linear (XOR-like) concept
        lines.append(f"{x1:.4f},{x2:.4f},{rng.choice(['red', 'blue'])},{label}")
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def s3(aws):
    return boto3.client("s3", region_name="us-east-1")


@pytest.fixture
def flowers(api, project, s3):
    """An ontology with a 'label' target and a CSV storage config bound to it."""
    onto = api.post("/api/ontologies", {"project_id": project, "name": "Flowers", "content": CLASSIFY_TTL}).json
    s3.put_object(Bucket=BUCKET, Key=f"{project}/flowers/part-0.csv", Body=flowers_csv())
    config = api.post("/api/storage-configs", {
        "project_id": project, "name": "flowers", "ontology_id": onto["id"],
        "uri": f"s3://{BUCKET}/{project}/flowers/", "format": "csv"}).json
    return onto, config


def recommend(api, **body):
    return api.post("/api/ml-models/recommend", body)


def test_contract_fields_and_ranges(api, project, flowers):
    onto, config = flowers
    reply = recommend(api, project_id=project, ontology_id=onto["id"])
    assert reply.status == 200, reply
    body = reply.json
    assert set(body["all_scores"]) == TYPES
    assert all(0 <= s <= 100 for s in body["all_scores"].values())
    assert body["recommended_type"] in TYPES and 0 <= body["score"] <= 100
    assert body["score"] == body["all_scores"][body["recommended_type"]] == max(body["all_scores"].values())
    best = [t for t in TIE_ORDER if body["all_scores"][t] == body["score"]]
    assert body["recommended_type"] == best[0]
    assert isinstance(body["reasoning"], str) and re.fullmatch(r"([A-Z][^\n]*?\.)( [A-Z][^\n]*?\.)+", body["reasoning"])
    assert "classification" in body["reasoning"] and "Recommended: " in body["reasoning"]
    ontology = body["ontology_analysis"]
    assert (ontology["classes"], ontology["object_properties"], ontology["datatype_properties"]) == (2, 1, 4)
    assert ontology["numeric_properties"] == 2 and ontology["categorical_properties"] == 2
    data = body["data_analysis"]
    assert data["status"] == "sampled" and data["storage_configs"][0]["storage_id"] == config["id"]
    assert data["estimated_rows"] == 300 and data["row_count_exact"] is True
    assert (data["feature_count"], data["numeric_features"], data["categorical_features"]) == (3, 2, 1)
    assert data["target"]["task"] == "classification"
    assert data["target"]["class_balance"]["classes"] == 2
    assert data["has_free_text"] is False and data["missing_share"] == 0
    assert body["task"] == "classification" and body["score_basis"] == "calibrated_probability"
    # The XOR-like concept is invisible to a linear model and plain to a tree.
    assert data["probes"]["tree"] > data["probes"]["linear"] + 0.2
    assert body["recommended_type"] in ("random_forest", "decision_tree")


def test_same_inputs_same_answer(api, project, flowers):
    onto, _ = flowers
    first = recommend(api, project_id=project, ontology_id=onto["id"])
    second = recommend(api, project_id=project, ontology_id=onto["id"])
    assert first.status == second.status == 200
    assert first.json == second.json


def test_storage_ids_and_target_column_are_honoured(api, project, flowers, s3):
    onto, config = flowers
    s3.put_object(Bucket=BUCKET, Key=f"{project}/other/a.csv", Body=b"x1,x2,colour,label\n")
    other = api.post("/api/storage-configs", {"project_id": project, "name": "unbound",
                                              "uri": f"s3://{BUCKET}/{project}/other/", "format": "csv"}).json
    reply = recommend(api, project_id=project, ontology_id=onto["id"], storage_ids=[other["id"]])
    assert reply.status == 200
    assert [c["storage_id"] for c in reply.json["data_analysis"]["storage_configs"]] == [other["id"]]
    assert reply.json["data_analysis"]["status"] == "unreadable"
    reply = recommend(api, project_id=project, ontology_id=onto["id"], target_column="x1")
    assert reply.status == 200 and reply.json["task"] == "regression"
    assert reply.json["data_analysis"]["target"]["name"] == "x1"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ontology_id": "onto-x"}, "project_id"),
        ({"project_id": "p"}, "ontology_id"),
        ({"project_id": 7, "ontology_id": "onto-x"}, "project_id"),
        ({"project_id": "p", "ontology_id": ["onto-x"]}, "ontology_id"),
        ({"project_id": "p", "ontology_id": "o", "storage_ids": "storage-1"}, "storage_ids"),
        ({"project_id": "p", "ontology_id": "o", "storage_ids": []}, "storage_ids"),
        ({"project_id": "p", "ontology_id": "o", "storage_ids": [3]}, "storage_ids"),
        ({"project_id": "p", "ontology_id": "o", "target_column": 5}, "target_column"),
        ({"project_id": "p", "ontology_id": "o", "colour": "red"}, "colour"),
    ],
)
def test_invalid_input_is_400_naming_the_field(api, body, field):
    reply = recommend(api, **body)
    assert reply.status == 400, reply
    assert reply.json["code"] == "invalid_input" and reply.json["field"] == field


def test_body_must_be_a_json_object(api):
    assert api.post("/api/ml-models/recommend", raw="[1, 2]").status == 400
    assert api.post("/api/ml-models/recommend", raw="{not json").status == 400


def test_unknown_storage_id_or_target_is_400(api, project, flowers):
    onto, _ = flowers
    reply = recommend(api, project_id=project, ontology_id=onto["id"], storage_ids=["storage-nope"])
    assert reply.status == 400 and reply.json["field"] == "storage_ids" and "storage-nope" in reply.json["message"]
    reply = recommend(api, project_id=project, ontology_id=onto["id"], target_column="height")
    assert reply.status == 400 and reply.json["field"] == "target_column"


def test_storage_config_of_another_project_is_400(api, project, flowers, s3):
    onto, _ = flowers
    s3.put_object(Bucket=BUCKET, Key="proj-other/a.csv", Body=b"x1\n1\n")
    foreign = api.post("/api/storage-configs", {"project_id": "proj-other", "name": "theirs",
                                                "uri": f"s3://{BUCKET}/proj-other/", "format": "csv"}).json
    reply = recommend(api, project_id=project, ontology_id=onto["id"], storage_ids=[foreign["id"]])
    assert reply.status == 400 and reply.json["field"] == "storage_ids"


def test_unknown_ontology_or_one_of_another_project_is_404(api, project, ontology):
    reply = recommend(api, project_id=project, ontology_id="onto-does-not-exist")
    assert reply.status == 404 and reply.json["field"] == "ontology_id"
    reply = recommend(api, project_id="proj-someone-else", ontology_id=ontology["id"])
    assert reply.status == 404 and reply.json["field"] == "ontology_id"


def test_no_data_falls_back_on_the_ontology_and_says_so(api, project, ontology):
    reply = recommend(api, project_id=project, ontology_id=ontology["id"])
    assert reply.status == 200, reply
    body = reply.json
    assert body["data_analysis"]["status"] == "no_data" and body["data_analysis"]["storage_configs"] == []
    assert body["score_basis"] == "base_rate" and body["task"] == "unknown"
    assert "falls back on the ontology" in body["reasoning"] and "no target" in body["reasoning"].lower()
    assert set(body["all_scores"]) == TYPES and body["score"] == max(body["all_scores"].values())


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"\x00\x01\x02PK\x03\x04" * 100, "binary"),
        (b"x1,x2,colour,label\n1,2\n3,4,red,a,extra\n\n", "different number of fields"),
        (b"x1,x2,colour,label\n" + bytes(range(128, 256)) * 20, "not valid UTF-8"),
    ],
    ids=["binary", "ragged", "not-utf8"],
)
def test_broken_data_is_200_with_the_problem_reported(api, project, s3, content, needle):
    onto = api.post("/api/ontologies", {"project_id": project, "name": "F", "content": CLASSIFY_TTL}).json
    s3.put_object(Bucket=BUCKET, Key=f"{project}/broken/data.csv", Body=content)
    api.post("/api/storage-configs", {"project_id": project, "name": "broken", "ontology_id": onto["id"],
                                      "uri": f"s3://{BUCKET}/{project}/broken/", "format": "csv"})
    reply = recommend(api, project_id=project, ontology_id=onto["id"])
    assert reply.status == 200, reply
    data = reply.json["data_analysis"]
    assert any(needle in p for p in data["problems"]), data["problems"]
    assert data["status"] == "unreadable" and reply.json["score_basis"] == "base_rate"
    assert "falls back on the ontology" in reply.json["reasoning"]


def test_a_few_bad_rows_are_skipped_and_counted(api, project, flowers, s3):
    onto, _ = flowers
    s3.put_object(Bucket=BUCKET, Key=f"{project}/flowers/part-1.csv",
                  Body=b"x1,x2,colour,label\n0.5,0.5,red,a\n1,2,3,4,5,6\n-0.5,0.5,blue,b\n")
    data = recommend(api, project_id=project, ontology_id=onto["id"]).json["data_analysis"]
    assert data["status"] == "sampled" and data["rows_sampled"] == 302
    assert data["storage_configs"][0]["rows_rejected"] == 1
    assert any("different number of fields" in p for p in data["problems"])


def test_last_recommendation_marks_models_of_that_type(api, project, flowers):
    onto, _ = flowers
    body = recommend(api, project_id=project, ontology_id=onto["id"]).json
    pick = body["recommended_type"]
    base = {"project_id": project, "ontology_id": onto["id"], "name": "m"}
    model = api.post("/api/ml-models", {**base, "type": pick}).json
    assert model["is_recommended"] is True and model["recommendation_score"] == body["score"]
    other = next(t for t in sorted(TYPES) if t != pick)
    model = api.post("/api/ml-models", {**base, "type": other}).json
    assert model["is_recommended"] is False and model["recommendation_score"] is None
