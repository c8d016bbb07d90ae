"""Monitoring on the real local stack: a model trained on one CSV, then evaluated (a local trainer process
running `trainer.evaluate`) on a held-out sample (stays trained), on a shifted copy (degraded, the reason
naming the metric and the feature) and on clean data again (trained)."""
from __future__ import annotations

import uuid

import numpy as np
import pytest
from stack_samples import wait_for

pytestmark = pytest.mark.integration


def readings(rows: int, seed: int):
    import pandas as pd

    rng = np.random.default_rng(seed)
    temperature = rng.normal(20, 5, rows).round(3)
    humidity = rng.uniform(10, 90, rows).round(3)
    site = rng.choice(["north", "south", "east"], rows)
    label = np.where(temperature + (site == "north") * 4 + rng.normal(0, 1, rows) > 21, "warm", "cold")
    return pd.DataFrame({"temperature": temperature, "humidity": humidity, "site": site, "label": label})


def test_evaluations_move_the_model_between_trained_and_degraded(stack):
    from trainer.ontology import ontology_from_frame

    http, s3 = stack.http, stack.s3()
    project_id = f"proj-{uuid.uuid4().hex[:8]}"
    bucket = stack.env["DATA_BUCKETS"].split(",")[0]
    data = readings(6000, seed=11)
    train, held_out = data.iloc[:4000], data.iloc[4000:]
    shifted = held_out.copy()
    shifted["temperature"] = shifted["temperature"] + 2 * data["temperature"].std()
    flip = np.random.default_rng(5).random(len(shifted)) < 0.3
    shifted.loc[flip, "label"] = np.where(shifted.loc[flip, "label"] == "warm", "cold", "warm")
    files = {"train": train, "held_out": held_out, "shifted": shifted}
    for name, frame in files.items():
        s3.put_object(Bucket=bucket, Key=f"{project_id}/{name}/part-0.csv", Body=frame.to_csv(index=False).encode())
    status, onto = http.post("/api/ontologies", {"project_id": project_id, "name": "Readings",
                                                 "content": ontology_from_frame(train, "label", "Reading")})
    assert status == 201, onto
    storage = {}
    for name in files:
        status, config = http.post("/api/storage-configs", {
            "project_id": project_id, "name": name, "ontology_id": onto["id"],
            "uri": f"s3://{bucket}/{project_id}/{name}/", "format": "csv"})
        assert status == 201, config
        storage[name] = config["id"]
    status, model = http.post("/api/ml-models", {
        "project_id": project_id, "ontology_id": onto["id"], "name": "monitored", "type": "random_forest",
        "training_config": {"random_seed": 3, "max_iterations": 50}})
    assert status == 201, model
    assert http.post("/api/ml-models/train", {"model_id": model["id"], "storage_ids": [storage["train"]]})[0] == 202
    trained = http.wait_for_status(model["id"], ("trained", "failed"))
    assert trained["status"] == "trained", trained["metadata"]

    def evaluate(name: str) -> dict:
        status, job = http.post(f"/api/ml-models/{model['id']}/evaluations", {"storage_ids": [storage[name]]})
        assert status == 202, job
        url = f"/api/ml-models/{model['id']}/evaluations/{job['id']}"
        done = wait_for(lambda: (j := http.get(url)[1])["status"] in ("succeeded", "failed") and j, timeout=300)
        assert done["status"] == "succeeded", done["failure_reason"]
        return done

    clean = evaluate("held_out")
    assert clean["verdict"] == "within_bounds" and clean["primary_metric"] == "accuracy"
    assert abs(clean["drop"]) < 0.03, clean
    assert max(clean["psi"].values()) < 0.1, clean["psi"]
    assert http.get(f"/api/ml-models/{model['id']}")[1]["status"] == "trained"

    drifted = evaluate("shifted")
    assert drifted["verdict"] == "degraded" and drifted["drop"] > 0.05, drifted
    assert drifted["psi"]["temperature"] > 0.2 and "temperature" in drifted["drifted_features"]
    _, degraded = http.get(f"/api/ml-models/{model['id']}")
    assert degraded["status"] == "degraded"
    reason = degraded["metadata"]["degraded_reason"]["reason"]
    assert "accuracy" in reason and "temperature" in reason, reason

    again = evaluate("held_out")
    assert again["verdict"] == "within_bounds"
    _, restored = http.get(f"/api/ml-models/{model['id']}")
    assert restored["status"] == "trained" and "degraded_reason" not in restored["metadata"]
