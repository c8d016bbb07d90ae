"""Ontology routes: Turtle that must parse, a parsed summary on GET, guarded deletion."""
from __future__ import annotations

from samples import SENSOR_TTL


def test_create_and_get_returns_content_and_summary(api, ontology, project):
    reply = api.get(f"/api/ontologies/{ontology['id']}")
    assert reply.status == 200
    body = reply.json
    assert body["content"] == SENSOR_TTL and body["project_id"] == project
    summary = body["summary"]
    assert [c["name"] for c in summary["classes"]] == ["Reading", "Site"]
    assert {c["label"] for c in summary["classes"]} == {"Sensor reading", "Site"}
    props = {p["name"]: p for p in summary["datatype_properties"]}
    assert props["temperature"]["range"] == "double" and props["temperature"]["kind"] == "numeric"
    assert props["site_type"]["range"] == "string" and props["site_type"]["kind"] == "string"
    assert props["pressure"]["domains"] == ["Reading"]
    assert summary["object_properties"] == [
        {"name": "atSite", "uri": "http://example.org/sensors#atSite", "domains": ["Reading"], "ranges": ["Site"]}
    ]


def test_broken_turtle_names_the_line(api, project):
    content = "@prefix ex: <http://e/> .\nex:a a ex:B .\nex:c ex:d\nex:e ex:f ."
    reply = api.post("/api/ontologies", {"project_id": project, "name": "bad", "content": content})
    assert reply.status == 400
    assert reply.json["field"] == "content" and reply.json["line"] == 4
    assert "line 4" in reply.json["message"]


def test_list_by_project(api, ontology, project):
    reply = api.get(f"/api/ontologies?project_id={project}")
    assert [o["id"] for o in reply.json["ontologies"]] == [ontology["id"]]
    assert api.get("/api/ontologies?project_id=nobody").json["ontologies"] == []
    assert api.get("/api/ontologies").status == 400


def test_update_validates_new_content(api, ontology):
    path = f"/api/ontologies/{ontology['id']}"
    assert api.put(path, {"content": "this is not turtle"}).status == 400
    reply = api.put(path, {"name": "Renamed"})
    assert reply.status == 200 and reply.json["name"] == "Renamed" and reply.json["content"] == SENSOR_TTL


def test_delete_is_409_while_a_model_references_it(api, ontology, make_model):
    model = make_model()
    path = f"/api/ontologies/{ontology['id']}"
    reply = api.delete(path)
    assert reply.status == 409 and reply.json["models"] == 1
    assert api.delete(f"/api/ml-models/{model['id']}").status == 204
    assert api.delete(path).status == 204
    assert api.get(path).status == 404


def test_model_with_ontology_of_another_project_is_refused(api, ontology):
    reply = api.post("/api/ml-models", {"project_id": "proj-other", "ontology_id": ontology["id"], "name": "x",
                                        "type": "regression"})
    assert reply.status == 400 and reply.json["field"] == "ontology_id"
