"""Evaluations through the whole app (the launcher faked; the job's report written as trainer.evaluate does),
the verdict on the model's status, and the monitoring schedule driven by a scheduled event and a fake clock."""
from __future__ import annotations

import json
import threading

import boto3
import pytest
from conftest import SettableClock, install_graph
from fakes.collaborators import CannedPredictor, RecordingNotifier
from fakes.launcher import FakeLauncher
from runs import own_artifact

DATA = "ml-models-data-local"


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock()


@pytest.fixture
def launcher(api, clock) -> FakeLauncher:
    fake = FakeLauncher()
    install_graph(launcher=fake, clock=clock, predictor=CannedPredictor())
    return fake


@pytest.fixture
def storage(api, project, ontology) -> dict:
    boto3.client("s3", region_name="us-east-1").put_object(
        Bucket=DATA, Key=f"{project}/fresh/a.csv", Body=b"temperature,humidity,label\n20,30,true\n")
    reply = api.post("/api/storage-configs", {"project_id": project, "name": "fresh", "ontology_id": ontology["id"],
                                              "uri": f"s3://{DATA}/{project}/fresh/", "format": "csv"})
    assert reply.status == 201, reply
    return reply.json


def trained_model(api, launcher, make_model, **extra) -> dict:
    model = make_model(type="decision_tree", **extra)
    assert api.post("/api/ml-models/train", {"model_id": model["id"]}).status == 202
    job = launcher.jobs[-1]
    reply = api.post(f"/api/ml-models/{model['id']}/training/complete",
                     {"model_artifact_path": own_artifact(api, job), "performance_metrics": {"accuracy": 0.9}},
                     headers={"Authorization": f"Bearer {job.callback_token}", "X-Training-Run-Id": job.run_id})
    assert reply.status == 200, reply
    return api.get(f"/api/ml-models/{model['id']}").json


@pytest.fixture
def trained(api, launcher, make_model) -> dict:
    return trained_model(api, launcher, make_model)


def evaluate(api, launcher, model: dict, storage_id: str, report: dict) -> dict:
    """Start an evaluation, write its report as the job would, and report completion; the evaluation."""
    reply = api.post(f"/api/ml-models/{model['id']}/evaluations", {"storage_ids": [storage_id]})
    assert reply.status == 202, reply
    evaluation, job = reply.json, launcher.jobs[-1]
    write_report(evaluation, report)
    done = api.post(f"/api/ml-models/{model['id']}/evaluations/{evaluation['id']}/complete", {},
                    headers={"Authorization": f"Bearer {job.callback_token}"})
    assert done.status == 200, done
    return api.get(f"/api/ml-models/{model['id']}/evaluations/{evaluation['id']}").json


def write_report(evaluation: dict, report: dict) -> None:
    bucket, _, prefix = evaluation["output_uri"][5:].partition("/")
    body = {"format_version": 1, "evaluation_id": evaluation["id"], "model_id": evaluation["model_id"],
            "version": evaluation["version"], "rows": 100, "labelled_rows": 100, **report}
    boto3.client("s3", region_name="us-east-1").put_object(Bucket=bucket, Key=prefix + "report.json",
                                                           Body=json.dumps(body).encode())


CLEAN = {"metrics": {"accuracy": 0.89}, "baseline_metrics": {"accuracy": 0.9},
         "psi": {"temperature": 0.01, "humidity": 0.02}, "prediction_psi": 0.01,
         "feature_importance": {"temperature": 0.7, "humidity": 0.3}}
SHIFTED = {"metrics": {"accuracy": 0.61}, "baseline_metrics": {"accuracy": 0.9},
           "psi": {"temperature": 1.7, "humidity": 0.03}, "prediction_psi": 0.4,
           "feature_importance": {"temperature": 0.7, "humidity": 0.3}}


def test_an_evaluation_is_a_job_with_a_server_decided_output(api, launcher, trained, storage):
    reply = api.post(f"/api/ml-models/{trained['id']}/evaluations", {"storage_ids": [storage["id"]]})
    assert reply.status == 202, reply
    evaluation = reply.json
    assert evaluation["status"] == "queued" and evaluation["version"] == 1
    assert evaluation["output_uri"].endswith(f"/evaluations/{trained['id']}/{evaluation['id']}/")
    job = launcher.jobs[-1]
    assert job.kind == "evaluate" and job.entry_point == "trainer.evaluate"
    bucket, _, key = job.environment["TRAINER_SPEC_URI"][5:].partition("/")
    spec = json.loads(boto3.client("s3", region_name="us-east-1").get_object(Bucket=bucket, Key=key)["Body"].read())
    assert spec["kind"] == "evaluation" and spec["evaluation_id"] == evaluation["id"]
    assert spec["artifact_uri"] == trained["model_artifact_path"] and spec["output_uri"] == evaluation["output_uri"]


def test_the_verdict_moves_the_model_between_trained_and_degraded(api, launcher, trained, storage):
    clean = evaluate(api, launcher, trained, storage["id"], CLEAN)
    assert clean["status"] == "succeeded" and clean["verdict"] == "within_bounds"
    assert clean["primary_metric"] == "accuracy" and clean["drop"] == pytest.approx(0.01)
    assert api.get(f"/api/ml-models/{trained['id']}").json["status"] == "trained"

    shifted = evaluate(api, launcher, trained, storage["id"], SHIFTED)
    assert shifted["verdict"] == "degraded" and shifted["drifted_features"] == ["temperature"]
    model = api.get(f"/api/ml-models/{trained['id']}").json
    assert model["status"] == "degraded"
    reason = model["metadata"]["degraded_reason"]
    assert reason["evaluation_id"] == shifted["id"] and "accuracy" in reason["reason"]
    assert "temperature" in reason["reason"]

    again = evaluate(api, launcher, trained, storage["id"], CLEAN)
    assert again["verdict"] == "within_bounds"
    model = api.get(f"/api/ml-models/{trained['id']}").json
    assert model["status"] == "trained" and "degraded_reason" not in model["metadata"]


def test_the_model_is_judged_before_the_evaluation_shows_succeeded(api, clock, trained, storage):
    """Whoever sees the evaluation succeeded (a client polling it) already sees its verdict on the model."""
    notifier, fake = RecordingNotifier(), FakeLauncher()
    install_graph(launcher=fake, clock=clock, predictor=CannedPredictor(), notifier=notifier)
    evaluate(api, fake, trained, storage["id"], SHIFTED)
    told = [e for e in notifier.events if e[0] == "status" or (e[0] == "evaluation" and e[3] == "succeeded")]
    assert [e[0] for e in told] == ["status", "evaluation"], told
    assert told[0][2:4] == ("trained", "degraded"), told


def test_without_labels_drift_on_an_important_feature_degrades(api, launcher, trained, storage):
    unlabelled = {**SHIFTED, "metrics": {}, "labelled_rows": 0}
    result = evaluate(api, launcher, trained, storage["id"], unlabelled)
    assert result["drop"] is None and result["verdict"] == "degraded"
    assert api.get(f"/api/ml-models/{trained['id']}").json["status"] == "degraded"
    # Drift on a feature outside the most important ones does not, on its own.
    minor = {"metrics": {}, "baseline_metrics": {"accuracy": 0.9}, "labelled_rows": 0,
             "psi": {f"f{i}": 0.0 for i in range(6)} | {"f9": 3.0},
             "feature_importance": {f"f{i}": 1.0 - i / 10 for i in range(10)}}
    assert evaluate(api, launcher, trained, storage["id"], minor)["verdict"] == "within_bounds"


def test_a_users_degraded_stays_until_a_passing_evaluation(api, launcher, trained, storage):
    assert api.put(f"/api/ml-models/{trained['id']}", {"status": "degraded"}).status == 200
    assert api.get(f"/api/ml-models/{trained['id']}").json["status"] == "degraded"
    evaluate(api, launcher, trained, storage["id"], CLEAN)
    assert api.get(f"/api/ml-models/{trained['id']}").json["status"] == "trained"


def test_monitoring_settings_are_checked_and_kept(api, launcher, make_model, storage, project):
    bad = [{"storage_ids": []}, {"storage_ids": [storage["id"]], "every_minutes": 1},
           {"storage_ids": [storage["id"]], "max_drop": 2}, {"storage_ids": [storage["id"]], "when": "daily"},
           {"storage_ids": ["sc-nope"]}]
    for monitoring in bad:
        reply = api.post("/api/ml-models", {"project_id": project, "ontology_id": storage["ontology_id"],
                                            "name": "m", "type": "decision_tree", "monitoring": monitoring})
        assert reply.status == 400, (monitoring, reply)
    reply = api.post("/api/ml-models", {"project_id": project, "ontology_id": storage["ontology_id"], "name": "m",
                                        "type": "decision_tree", "monitoring": {"storage_ids": [storage["id"]],
                                                                                "when": "daily"}})
    assert reply.json["field"] == "monitoring.when", reply
    model = make_model(type="decision_tree", monitoring={"storage_ids": [storage["id"]], "every_minutes": 30})
    assert model["monitoring"] == {"storage_ids": [storage["id"]], "every_minutes": 30, "max_drop": 0.05,
                                   "max_psi": 0.2}
    assert model["next_evaluation_at"] and "monitor_shard" not in model
    off = api.put(f"/api/ml-models/{model['id']}", {"monitoring": None}).json
    assert off["monitoring"] == {} and off["next_evaluation_at"] is None


def reconcile_and_monitor(api) -> dict:
    client = api.client
    event = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={},
                                            resources=["arn:aws:events:us-east-1:123456789012:rule/monitor"])
    return client.lambda_.invoke("start_due_evaluations", event).payload


def test_the_schedule_starts_exactly_the_due_evaluations_once(api, launcher, clock, make_model, storage):
    clock.now = "2026-12-01T10:00:00.000000Z"
    monitored = {"storage_ids": [storage["id"]], "every_minutes": 60}
    due = trained_model(api, launcher, make_model, monitoring=monitored)
    later = trained_model(api, launcher, make_model, monitoring={**monitored, "every_minutes": 30})
    untrained = make_model(type="decision_tree", monitoring=monitored)
    plain = trained_model(api, launcher, make_model)
    # `later` was set up to be due half an hour from now.
    assert api.put(f"/api/ml-models/{later['id']}", {"monitoring": monitored}).status == 200
    from chalicelib import wiring

    models = wiring.services().repos.models
    models.modify(later["id"], lambda m: m.but(next_evaluation_at="2026-12-01T10:30:00.000000Z"))
    before = len(launcher.jobs)

    clock.now = "2026-12-01T10:01:00.000000Z"
    # Two schedulers fire at the same moment: each due model gets one evaluation.
    results = []
    threads = [threading.Thread(target=lambda: results.append(reconcile_and_monitor(api))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    started = [j for j in launcher.jobs[before:] if j.kind == "evaluate"]
    assert sorted(j.model_id for j in started) == [due["id"]], results
    assert sum(r["evaluations_started"] for r in results) == 1
    assert sum(r["not_started"] for r in results) == 1  # the untrained model: claimed, logged, next turn
    assert models.get(due["id"]).next_evaluation_at == "2026-12-01T11:01:00.000000Z"
    assert models.get(untrained["id"]).next_evaluation_at == "2026-12-01T11:01:00.000000Z"
    assert models.get(plain["id"]).next_evaluation_at is None

    # Nothing more is due until each model's turn.
    clock.now = "2026-12-01T10:29:00.000000Z"
    assert reconcile_and_monitor(api)["evaluations_started"] == 0
    clock.now = "2026-12-01T10:31:00.000000Z"
    assert reconcile_and_monitor(api)["evaluations_started"] == 1
    assert launcher.jobs[-1].model_id == later["id"] and launcher.jobs[-1].kind == "evaluate"
