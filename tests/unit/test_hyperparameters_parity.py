"""The API and the trainer image each keep a copy of the training_config schema
(chalicelib/hyperparameters.py, trainer/hyperparameters.py); these tests hold the copies equal,
feed both sides the same configs and check that the schema names what the estimators accept."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from chalicelib import hyperparameters as api
from chalicelib.errors import InvalidInput
from chalicelib.services import validation as v
from trainer import hyperparameters as trainer
from trainer.errors import TrainingFailed
from trainer.spec import MODEL_TYPES as SPEC_MODEL_TYPES
from trainer.spec import TrainingConfig

REPO = Path(__file__).resolve().parents[2]


def without_docstring(path: Path) -> str:
    tree = ast.parse(path.read_text())
    first = tree.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        tree.body = tree.body[1:]
    return ast.dump(tree)


def test_the_two_copies_are_the_same_code():
    """Not just the same tables: the same checks, so both sides accept and refuse exactly alike."""
    assert without_docstring(REPO / "chalicelib" / "hyperparameters.py") == without_docstring(
        REPO / "trainer" / "hyperparameters.py")


@pytest.mark.parametrize("name", ["MODEL_TYPES", "TRAINING_CONFIG", "HYPERPARAMETERS", "RESERVED", "MAX_ITERATIONS",
                                  "MAX_TREES", "MAX_HIDDEN_LAYERS", "MAX_LAYER_WIDTH", "MAX_TREE_DEPTH"])
def test_both_sides_agree_on(name):
    assert getattr(api, name) == getattr(trainer, name)


def test_model_types_are_the_services_and_the_specs():
    assert api.MODEL_TYPES == v.MODEL_TYPES == SPEC_MODEL_TYPES == tuple(api.HYPERPARAMETERS)


# (config, model type, the field at fault or None when valid)
CONFIGS = [
    ({"train_test_split": 0.8, "random_seed": 42, "learning_rate": 0.001, "batch_size": 32}, "neural_network", None),
    ({"max_iterations": 10_000, "early_stopping_rounds": 1000, "target_column": "y"}, "neural_network", None),
    ({"max_iterations": 10_001}, "neural_network", "training_config.max_iterations"),
    ({"max_iterations": 1000}, "random_forest", None),
    ({"max_iterations": 1001}, "random_forest", "training_config.max_iterations"),
    ({"max_iterations": 5000}, "regression", None),
    ({"batch_size": 65_537}, "neural_network", "training_config.batch_size"),
    ({"learning_rate": 11}, "neural_network", "training_config.learning_rate"),
    ({"learning_rate": float("nan")}, "neural_network", "training_config.learning_rate"),
    ({"random_seed": 2**32}, "decision_tree", "training_config.random_seed"),
    ({"random_seed": True}, "decision_tree", "training_config.random_seed"),
    ({"batch_size": 32.0}, "neural_network", "training_config.batch_size"),
    ({"target_column": "x" * 257}, "decision_tree", "training_config.target_column"),
    ({"epochs": 3}, "neural_network", "training_config.epochs"),
    ({"hyperparameters": {"hidden_layers": [1024] * 8, "dropout": 0.5, "activation": "gelu"}}, "neural_network", None),
    ({"hyperparameters": {"hidden_layers": [1025]}}, "neural_network", "training_config.hyperparameters.hidden_layers"),
    ({"hyperparameters": {"hidden_layers": [8] * 9}}, "neural_network",
     "training_config.hyperparameters.hidden_layers"),
    ({"hyperparameters": {"hidden_layers": []}}, "neural_network", "training_config.hyperparameters.hidden_layers"),
    ({"hyperparameters": {"dropout": 1}}, "neural_network", "training_config.hyperparameters.dropout"),
    ({"hyperparameters": {"max_depth": 5}}, "neural_network", "training_config.hyperparameters.max_depth"),
    ({"hyperparameters": {"max_depth": 100, "criterion": "entropy"}}, "decision_tree", None),
    ({"hyperparameters": {"max_depth": 101}}, "decision_tree", "training_config.hyperparameters.max_depth"),
    ({"hyperparameters": {"max_depth": None, "max_features": "sqrt"}}, "random_forest", None),
    ({"hyperparameters": {"n_estimators": 1000}}, "random_forest", None),
    ({"hyperparameters": {"n_estimators": 1001}}, "random_forest", "training_config.hyperparameters.n_estimators"),
    ({"hyperparameters": {"n_estimators": 10}}, "decision_tree", "training_config.hyperparameters.n_estimators"),
    ({"hyperparameters": {"min_samples_split": 1}}, "decision_tree",
     "training_config.hyperparameters.min_samples_split"),
    ({"hyperparameters": {"min_samples_split": 0.5}}, "decision_tree", None),
    ({"hyperparameters": {"random_state": 1}}, "random_forest", "training_config.hyperparameters.random_state"),
    ({"hyperparameters": {"n_jobs": 64}}, "random_forest", "training_config.hyperparameters.n_jobs"),
    ({"hyperparameters": {"max_iter": 10**9}}, "regression", "training_config.hyperparameters.max_iter"),
    ({"hyperparameters": {"C": 0.5, "alpha": 2.0}}, "regression", None),  # the API does not know the task
    ({"hyperparameters": {"C": 0}}, "regression", "training_config.hyperparameters.C"),
    ({"hyperparameters": 3}, "regression", "training_config.hyperparameters"),
]


@pytest.mark.parametrize(("config", "model_type", "field"), CONFIGS)
def test_the_api_and_the_trainer_refuse_the_same_configs(config, model_type, field):
    assert api.config_problem(config, model_type) == trainer.config_problem(config, model_type)
    try:
        v.training_config(config, with_defaults=False, model_type=model_type)
        api_field = None
    except InvalidInput as exc:
        api_field = exc.field
        message = exc.message
    try:
        TrainingConfig.from_dict(config, model_type)
        trainer_reason = None
    except TrainingFailed as exc:
        trainer_reason = exc.reason
    assert api_field == field
    assert (trainer_reason is None) == (field is None)
    if field is not None:
        key = field.rsplit(".", 1)[-1]
        assert key in message and key in trainer_reason
        if "unknown training_config key" not in message:  # the trainer also knows its own two keys
            assert message == trainer_reason


def test_trainer_only_keys_are_refused_by_the_api_and_bounded_in_the_trainer():
    assert {k for k, s in trainer.TRAINING_CONFIG.items() if s.get("api") is False} == {"validation_split",
                                                                                         "synthetic_rows"}
    with pytest.raises(InvalidInput) as info:
        v.training_config({"synthetic_rows": 100}, with_defaults=False)
    assert info.value.field == "training_config.synthetic_rows"
    assert TrainingConfig.from_dict({"synthetic_rows": 100, "validation_split": 0.2}).synthetic_rows == 100
    with pytest.raises(TrainingFailed, match="synthetic_rows must be an integer between 50 and 100000"):
        TrainingConfig.from_dict({"synthetic_rows": 10**7})


def test_the_openapi_schema_states_the_same_keys_and_bounds():
    spec = yaml.safe_load((REPO / "docs" / "openapi.yaml").read_text())
    properties = spec["components"]["schemas"]["TrainingConfig"]["properties"]
    assert set(properties) == set(v.TRAINING_CONFIG_KEYS)
    names = {"minimum": "minimum", "maximum": "maximum", "exclusive_minimum": "exclusiveMinimum",
             "exclusive_maximum": "exclusiveMaximum", "max_length": "maxLength"}
    for key in v.TRAINING_CONFIG_KEYS:
        ours = {names[k]: value for k, value in api.TRAINING_CONFIG[key].items() if k in names}
        theirs = {k: value for k, value in properties[key].items() if k in names.values()}
        assert theirs == ours, key


# One value the schema accepts per hyperparameter, for the sklearn estimators' own check.
SAMPLES = {"criterion": None, "max_depth": 3, "min_samples_split": 4, "min_samples_leaf": 0.1,
           "min_weight_fraction_leaf": 0.1, "max_features": "sqrt", "max_leaf_nodes": 8, "min_impurity_decrease": 0.0,
           "ccp_alpha": 0.0, "splitter": "random", "class_weight": "balanced", "n_estimators": 5, "bootstrap": True,
           "oob_score": False, "max_samples": 0.5, "alpha": 0.5, "C": 2.0, "l1_ratio": 0.0, "solver": "lbfgs",
           "tol": 1e-3, "fit_intercept": False, "positive": True}
CRITERIA = {"classification": "entropy", "regression": "squared_error"}


@pytest.mark.parametrize("model_type", ["decision_tree", "random_forest", "regression"])
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_the_schema_names_parameters_the_estimator_has_and_accepts(model_type, task):
    from trainer.models import sklearn_estimator

    table = trainer.HYPERPARAMETERS[model_type]
    ours = {name: SAMPLES[name] if name != "criterion" else CRITERIA[task] for name, spec in table.items()
            if task in spec.get("tasks", (task,))}
    estimator = sklearn_estimator(model_type, task, TrainingConfig.from_dict({"hyperparameters": ours}, model_type))
    assert estimator.get_params()  # built: every name is one of its parameters, every value passed its checks
    params = set(estimator.get_params(deep=False))
    assert set(trainer.RESERVED) & params, "reserved names are real parameters the trainer sets"
    for name in set(table) - set(ours):  # another task's parameter: the trainer names the task
        with pytest.raises(TrainingFailed, match=f"unknown hyperparameter '{name}' for {model_type} with a {task}"):
            sklearn_estimator(model_type, task, TrainingConfig.from_dict({"hyperparameters": {name: SAMPLES[name]}}))
