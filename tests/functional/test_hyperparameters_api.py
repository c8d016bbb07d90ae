"""Hyperparameters are checked by the API against the trainer's own schema (chalicelib/hyperparameters.py,
held equal to trainer/hyperparameters.py): an unknown or out-of-range one is a 400 naming
training_config.<key> at create and at train, before anything is written or launched, instead of a 202
and a run that fails seconds later."""
from __future__ import annotations

import json

import boto3
import pytest
from conftest import install_graph
from fakes.launcher import FakeLauncher

from trainer.spec import parse_spec

# The keys the contract and the README use, all accepted as they are.
EVERY_KEY = {"train_test_split": 0.75, "random_seed": 7, "learning_rate": 0.01, "batch_size": 64,
             "max_iterations": 50, "early_stopping_rounds": 5, "target_column": "label"}


@pytest.fixture
def graph(api):
    return install_graph(launcher=FakeLauncher())


def models_of(api, project) -> list:
    return api.get(f"/api/ml-models?project_id={project}").json["models"]


@pytest.mark.parametrize(("model_type", "config", "field"), [
    ("random_forest", {"hyperparameters": {"max_depthh": 3}}, "training_config.hyperparameters.max_depthh"),
    ("random_forest", {"hyperparameters": {"n_estimators": 100_000}}, "training_config.hyperparameters.n_estimators"),
    ("random_forest", {"max_iterations": 5000}, "training_config.max_iterations"),
    ("decision_tree", {"hyperparameters": {"max_depth": 1000}}, "training_config.hyperparameters.max_depth"),
    ("decision_tree", {"hyperparameters": {"hidden_layers": [8]}}, "training_config.hyperparameters.hidden_layers"),
    ("neural_network", {"hyperparameters": {"hidden_layers": [100_000]}},
     "training_config.hyperparameters.hidden_layers"),
    ("neural_network", {"max_iterations": 10**6}, "training_config.max_iterations"),
    ("neural_network", {"batch_size": 10**6}, "training_config.batch_size"),
    ("neural_network", {"epochs": 10}, "training_config.epochs"),
    ("regression", {"hyperparameters": {"random_state": 3}}, "training_config.hyperparameters.random_state"),
    ("regression", {"hyperparameters": {"max_iter": 10**9}}, "training_config.hyperparameters.max_iter"),
    ("regression", {"synthetic_rows": 10**7}, "training_config.synthetic_rows"),
])
def test_create_refuses_a_bad_hyperparameter_naming_it(api, project, ontology, model_type, config, field):
    reply = api.post("/api/ml-models", {"project_id": project, "ontology_id": ontology["id"], "name": "m",
                                        "type": model_type, "training_config": config})

    assert reply.status == 400, reply
    assert reply.json["code"] == "invalid_input" and reply.json["field"] == field
    assert field.rsplit(".", 1)[-1] in reply.json["message"]
    assert models_of(api, project) == []


def test_the_same_bound_depends_on_the_model_type(make_model):
    assert make_model(type="neural_network", training_config={"max_iterations": 5000})["training_config"][
        "max_iterations"] == 5000
    assert make_model(type="random_forest", training_config={"max_iterations": 1000,
                                                             "hyperparameters": {"n_estimators": 1000}})


@pytest.mark.parametrize(("model_type", "override", "field"), [
    ("neural_network", {"max_iterations": 20_000}, "training_config.max_iterations"),
    ("neural_network", {"hyperparameters": {"hidden_layers": [64, 4096]}},
     "training_config.hyperparameters.hidden_layers"),
    ("neural_network", {"hyperparameters": {"activation": "sigmoid"}}, "training_config.hyperparameters.activation"),
    ("random_forest", {"hyperparameters": {"n_estimators": 5000}}, "training_config.hyperparameters.n_estimators"),
    ("decision_tree", {"hyperparameters": {"dropout": 0.1}}, "training_config.hyperparameters.dropout"),
    ("decision_tree", {"learning_rate": 100}, "training_config.learning_rate"),
    ("regression", {"validation_split": 0.2}, "training_config.validation_split"),
])
def test_train_refuses_a_bad_override_before_anything_starts(api, graph, make_model, model_type, override, field):
    model = make_model(type=model_type, training_config={"train_test_split": 0.8, "random_seed": 1})

    reply = api.post("/api/ml-models/train", {"model_id": model["id"], "training_config": override})

    assert reply.status == 400, reply
    assert reply.json["field"] == field
    assert graph.launcher.jobs == []
    after = api.get(f"/api/ml-models/{model['id']}").json
    assert after["status"] == "draft" and after["training_task_id"] == ""
    assert api.get(f"/api/ml-models/{model['id']}/runs").json["runs"] == []


def test_train_checks_the_merged_config_a_stored_model_gives_the_run(api, graph, make_model):
    """A model stored before the bounds existed: its config, merged with the request's, is what is checked."""
    model = make_model(type="random_forest")
    graph.repos.models.modify(model["id"], lambda m: m.but(training_config={**m.training_config,
                                                                            "max_iterations": 50_000}))

    reply = api.post("/api/ml-models/train", {"model_id": model["id"], "training_config": {"random_seed": 3}})

    assert reply.status == 400 and reply.json["field"] == "training_config.max_iterations"
    assert "the model's training_config" in reply.json["message"]
    assert graph.launcher.jobs == []
    fixed = api.post("/api/ml-models/train", {"model_id": model["id"], "training_config": {"max_iterations": 200}})
    assert fixed.status == 202, fixed


@pytest.mark.parametrize(("model_type", "hyperparameters"), [
    ("decision_tree", {"max_depth": 5, "criterion": "entropy", "min_samples_leaf": 2}),
    ("random_forest", {"n_estimators": 50, "max_depth": 12, "max_features": "sqrt", "bootstrap": False}),
    ("regression", {"C": 0.5, "alpha": 2.0, "solver": "lbfgs"}),
    ("neural_network", {"hidden_layers": [128, 64, 32], "dropout": 0.2, "weight_decay": 0.0001,
                        "activation": "tanh"}),
])
def test_todays_keys_are_accepted_and_the_spec_is_one_the_trainer_accepts(api, graph, make_model, model_type,
                                                                          hyperparameters):
    model = make_model(type=model_type, training_config={**EVERY_KEY, "hyperparameters": hyperparameters})

    reply = api.post("/api/ml-models/train", {"model_id": model["id"], "training_config": {"random_seed": 9}})

    assert reply.status == 202, reply
    (job,) = graph.launcher.jobs
    bucket, key = job.environment["TRAINER_SPEC_URI"][5:].split("/", 1)
    text = boto3.client("s3", region_name="us-east-1").get_object(Bucket=bucket, Key=key)["Body"].read()
    spec = parse_spec(text)  # the trainer's own parsing and schema checks
    assert spec.model_type == model_type and spec.config.hyperparameters == hyperparameters
    assert json.loads(text)["training_config"] == {**EVERY_KEY, "hyperparameters": hyperparameters, "random_seed": 9}


def test_put_does_not_change_training_config(api, make_model):
    model = make_model()

    reply = api.put(f"/api/ml-models/{model['id']}", {"training_config": {"max_iterations": 10**9}})

    assert reply.status == 400 and reply.json["field"] == "training_config"
    assert api.get(f"/api/ml-models/{model['id']}").json["training_config"] == model["training_config"]
