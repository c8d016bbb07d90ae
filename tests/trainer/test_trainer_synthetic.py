"""The synthetic path: a spec without storage trains every model type to clearly better than chance."""
from __future__ import annotations

import pytest
from ontologies import CUSTOMER_TTL
from trainer_helpers import ARTIFACT_BUCKET, CallbackReceiver, make_spec, new_ids, run_many, trainer_env

from trainer.loader import load_model
from trainer.ontology import choose_target, parse_columns
from trainer.pipeline import train_and_evaluate
from trainer.synthetic import synthetic_frame

MODEL_TYPES = ["decision_tree", "random_forest", "regression", "neural_network"]
CHANCE = 1 / 3  # three balanced classes


@pytest.fixture(scope="module")
def synthetic_runs(moto_server, s3):
    cases, envs = {}, {}
    for model_type in MODEL_TYPES:
        receiver = CallbackReceiver()
        model_id, run_id = new_ids()
        config = {"train_test_split": 0.8, "random_seed": 3, "max_iterations": 40, "learning_rate": 0.01}
        spec = make_spec(model_id, run_id, model_type, CUSTOMER_TTL, [], config)
        cases[model_type] = (spec, receiver)
        envs[model_type] = trainer_env(moto_server, receiver, spec)
    try:
        done = run_many(envs)
        yield {key: (done[key], *cases[key]) for key in cases}
    finally:
        for _, receiver in cases.values():
            receiver.stop()


@pytest.mark.integration
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_synthetic_run_beats_chance_and_says_synthetic(model_type, synthetic_runs, s3):
    done, spec, receiver = synthetic_runs[model_type]
    assert done.returncode == 0, done.stderr[-3000:]
    [complete] = receiver.delivered("complete")
    performance = complete["body"]["performance_metrics"]
    assert performance["accuracy"] > CHANCE + 0.25
    assert performance["f1_score"] > CHANCE + 0.2

    manifest = load_model(f"s3://{ARTIFACT_BUCKET}/models/{spec['model_id']}/v1/", s3).manifest
    assert manifest["data"]["synthetic"] is True and manifest["data"]["objects"] == []
    assert manifest["target"] == {"name": "label", "type": "string", "classes": ["class_a", "class_b", "class_c"]}
    assert set(manifest["excluded_columns"]) == {"customer_id", "description"}
    schema = {entry["name"]: entry for entry in manifest["input_schema"]}
    assert set(schema) == {"age", "income", "plan", "is_active", "signup_date", "spend"}
    assert schema["signup_date"]["type"] == "datetime" and schema["is_active"]["type"] == "boolean"
    assert schema["plan"]["categories"] == ["plan_a", "plan_b", "plan_c", "plan_d", "plan_e"]


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_synthetic_regression_beats_the_mean(model_type):
    columns = parse_columns(CUSTOMER_TTL)
    frame = synthetic_frame(columns, choose_target(columns, "spend"), rows=1500, seed=5)
    config = {"train_test_split": 0.8, "random_seed": 5, "target_column": "spend", "max_iterations": 40}

    result = train_and_evaluate(frame, CUSTOMER_TTL, model_type, config)

    assert result.task == "regression"
    assert result.performance_metrics["r2"] > 0.5  # predicting the mean scores 0


def test_synthetic_data_is_seeded():
    columns = parse_columns(CUSTOMER_TTL)
    target = choose_target(columns, None)
    first = synthetic_frame(columns, target, rows=300, seed=9)
    assert first.equals(synthetic_frame(columns, target, rows=300, seed=9))
    assert not first.equals(synthetic_frame(columns, target, rows=300, seed=10))
