"""Cancelling a training run over the HTTP API, with a fake launcher: the model goes back to what it was
before the run, the job is told to stop, and nothing the run reports afterwards is accepted."""
from __future__ import annotations

from runs import own_artifact

COMPLETE = {"performance_metrics": {"accuracy": 0.9}, "training_metrics": {"epoch": 3}}


def train(api, launcher, model_id):
    reply = api.post("/api/ml-models/train", {"model_id": model_id})
    assert reply.status == 202, reply
    return launcher.jobs[-1]


def callback(api, job, kind: str, body: dict):
    headers = {"Authorization": f"Bearer {job.callback_token}", "X-Training-Run-Id": job.run_id}
    return api.post(f"/api/ml-models/{job.model_id}/training/{kind}", body, headers=headers)


def cancel(api, model_id, **kw):
    return api.post(f"/api/ml-models/{model_id}/training/cancel", **kw)


def run_of(api, job) -> dict:
    return api.get(f"/api/ml-models/{job.model_id}/runs/{job.run_id}").json


def test_cancel_puts_a_draft_model_back_and_stops_its_job(api, launcher, make_model):
    model = make_model(type="decision_tree")
    job = train(api, launcher, model["id"])

    reply = cancel(api, model["id"])

    assert reply.status == 202, reply
    assert (reply.json["status"], reply.json["training_task_id"], reply.json["version"]) == ("draft", "", 0)
    assert launcher.cancels == [(f"train-{job.run_id}", 30)]
    run = run_of(api, job)
    assert run["status"] == "cancelled"
    assert [h["status"] for h in run["status_history"]][-2:] == ["cancelling", "cancelled"]
    assert api.get(f"/api/ml-models/{model['id']}").json == reply.json


def test_a_cancelled_retrain_leaves_the_trained_version_current(api, launcher, make_model):
    model = make_model(type="decision_tree")
    first = train(api, launcher, model["id"])
    assert callback(api, first, "complete", {**COMPLETE, "model_artifact_path": own_artifact(api, first)}).status \
        == 200
    trained = api.get(f"/api/ml-models/{model['id']}").json
    assert (trained["status"], trained["version"]) == ("trained", 1)
    second = train(api, launcher, model["id"])

    reply = cancel(api, model["id"], body={})

    assert reply.status == 202, reply
    after = reply.json
    assert (after["status"], after["version"], after["model_artifact_path"]) == (
        "trained", 1, trained["model_artifact_path"])
    assert after["performance_metrics"] == trained["performance_metrics"]
    assert run_of(api, second)["status"] == "cancelled"


def test_cancel_twice_or_of_a_model_not_training_is_a_conflict_naming_the_status(api, launcher, make_model):
    model = make_model(type="decision_tree")
    reply = cancel(api, model["id"])
    assert reply.status == 409 and reply.json["current_status"] == "draft" and reply.json["field"] == "status"
    train(api, launcher, model["id"])
    assert cancel(api, model["id"]).status == 202

    again = cancel(api, model["id"])

    assert again.status == 409 and again.json["current_status"] == "draft"
    assert len(launcher.cancels) == 1


def test_a_cancel_with_a_body_of_fields_is_refused(api, launcher, make_model):
    model = make_model(type="decision_tree")
    train(api, launcher, model["id"])
    reply = cancel(api, model["id"], body={"force": True})
    assert reply.status == 400 and reply.json["field"] == "force"
    assert api.get(f"/api/ml-models/{model['id']}").json["status"] == "training"


def test_late_callbacks_of_a_cancelled_run_are_refused_and_promote_nothing(api, launcher, make_model):
    model = make_model(type="decision_tree")
    job = train(api, launcher, model["id"])
    artifact = own_artifact(api, job)  # the trainer published before it noticed the cancel
    before = cancel(api, model["id"]).json

    replies = {kind: callback(api, job, kind, body) for kind, body in (
        ("complete", {**COMPLETE, "model_artifact_path": artifact}), ("fail", {"reason": "cancelled"}),
        ("progress", {"epoch": 4}), ("credentials", {}))}

    assert {kind: r.status for kind, r in replies.items()} == dict.fromkeys(replies, 409), replies
    after = api.get(f"/api/ml-models/{model['id']}").json
    assert after == before and after["model_artifact_path"] == "" and after["version"] == 0
    assert run_of(api, job)["status"] == "cancelled"


def test_a_superseded_runs_complete_is_refused(api, launcher, make_model):
    model = make_model(type="decision_tree")
    first = train(api, launcher, model["id"])
    artifact = own_artifact(api, first)
    cancel(api, model["id"])
    second = train(api, launcher, model["id"])

    reply = callback(api, first, "complete", {**COMPLETE, "model_artifact_path": artifact})

    assert reply.status == 409
    current = api.get(f"/api/ml-models/{model['id']}").json
    assert (current["status"], current["training_task_id"], current["version"]) == ("training", second.run_id, 0)


def test_a_launcher_that_cannot_stop_the_job_still_takes_the_model_out_of_training(api, launcher, make_model):
    from chalicelib.errors import UpstreamUnavailable

    model = make_model(type="decision_tree")
    job = train(api, launcher, model["id"])
    launcher.cancel_refuse_with = UpstreamUnavailable("the cluster cannot be reached")

    reply = cancel(api, model["id"])

    assert reply.status == 202 and reply.json["status"] == "draft"
    assert run_of(api, job)["status"] == "cancelling"  # the reconciler ends it once the job is gone
    assert callback(api, job, "progress", {"epoch": 1}).status == 409


def test_a_viewer_may_not_cancel(api, launcher, make_model, issuer, project):
    model = make_model(type="decision_tree")
    train(api, launcher, model["id"])

    reply = cancel(api, model["id"], headers={"Authorization": f"Bearer {issuer.token({project: 'viewer'})}"})

    assert reply.status == 403
    assert api.get(f"/api/ml-models/{model['id']}").json["status"] == "training" and launcher.cancels == []
