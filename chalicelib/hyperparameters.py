"""The training_config schema, API side: every key and hyperparameter, its type, range and bounds.

The trainer refuses what this refuses, from its own copy (`trainer/hyperparameters.py`; the
Lambda package holds no trainer, the trainer image no chalicelib), so a bad value is a 400 at
POST /api/ml-models/train instead of a run that fails seconds later.
`tests/unit/test_hyperparameters_parity.py` holds the two copies equal. Standard library only.

A parameter is a plain dict:
  type: integer | number | float (a JSON number with a fraction part, like 0.5 or 1.0) | boolean |
        string | integer_list | object, or any_of: [spec, ...] when several forms are allowed;
  minimum / maximum / exclusive_minimum / exclusive_maximum (numbers, list items),
  choices (strings), max_length (strings), min_items / max_items (lists), nullable (null allowed);
  properties / required (a top-level object key: the spec of each sub-key, and the sub-keys it must have;
  an unknown one is refused naming training_config.<key>.<sub-key>);
  model_types: the model types that use it (others accept it and record it as not applicable);
  maximum_for: a lower maximum for some model types; api: False for keys only the trainer accepts;
  tasks: the task(s) whose estimator has this hyperparameter (the API does not know the task; the
  trainer checks it against the estimator).
The maxima bound what one run may cost (trees, epochs, layer sizes); the rest mirror the libraries.
"""
from __future__ import annotations

import math
from typing import Any

MODEL_TYPES = ("decision_tree", "random_forest", "regression", "neural_network")
TREE_TYPES = ("decision_tree", "random_forest")
ITERATIVE_TYPES = ("random_forest", "regression", "neural_network")

MAX_ITERATIONS = 10_000
MAX_TREES = 1_000
MAX_EPOCHS_WITHOUT_IMPROVEMENT = 1_000
MAX_BATCH_SIZE = 65_536
MAX_TREE_DEPTH = 100
MAX_LEAF_NODES = 100_000
MAX_HIDDEN_LAYERS = 8
MAX_LAYER_WIDTH = 1_024
MAX_SYNTHETIC_ROWS = 100_000
MAX_SAMPLES = 10_000_000
# training_config.tuning (trainer/tuning.py): the search's wall-time budget and trial count, and the metrics it
# may optimise (the ones the trainer reports; which fit a task is checked at train time, where the task is known).
MIN_TUNING_SECONDS = 5
MAX_TUNING_SECONDS = 86_400
MAX_TUNING_TRIALS = 1_000
TUNING_METRICS = ("accuracy", "f1_score", "f1_macro", "f1_weighted", "precision", "recall", "log_loss", "roc_auc",
                  "r2", "rmse", "mae")

DIAGNOSTICS = ("full", "minimal")

TRAINING_CONFIG: dict[str, dict[str, Any]] = {
    "train_test_split": {"type": "number", "exclusive_minimum": 0, "exclusive_maximum": 1,
                         "description": "share of rows used for training (default 0.8)"},
    "random_seed": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1,
                    "description": "seeds every random number generator (default 42)"},
    "learning_rate": {"type": "number", "exclusive_minimum": 0, "maximum": 10, "model_types": ("neural_network",),
                      "description": "Adam learning rate (default 0.001)"},
    "batch_size": {"type": "integer", "minimum": 1, "maximum": MAX_BATCH_SIZE, "model_types": ("neural_network",),
                   "description": "mini-batch size (default 128)"},
    "max_iterations": {"type": "integer", "minimum": 1, "maximum": MAX_ITERATIONS, "model_types": ITERATIVE_TYPES,
                       "maximum_for": {"random_forest": MAX_TREES},
                       "description": "trees of a forest (default 100), solver iterations, network epochs "
                                      "(default 100)"},
    "early_stopping_rounds": {"type": "integer", "minimum": 1, "maximum": MAX_EPOCHS_WITHOUT_IMPROVEMENT,
                              "model_types": ("random_forest", "neural_network"),
                              "description": "stages (forest) or epochs (network) without validation-loss "
                                             "improvement before stopping"},
    "target_column": {"type": "string", "max_length": 256, "description": "the column to predict"},
    "hyperparameters": {"type": "object", "description": "model-type-specific settings (HYPERPARAMETERS)"},
    "tuning": {"type": "object", "nullable": True, "required": ("budget_seconds",),
               "properties": {
                   "budget_seconds": {"type": "integer", "minimum": MIN_TUNING_SECONDS, "maximum": MAX_TUNING_SECONDS,
                                      "description": "wall-time bound on the search plus the final fit"},
                   "max_trials": {"type": "integer", "minimum": 1, "maximum": MAX_TUNING_TRIALS, "nullable": True,
                                  "description": "at most this many trials (default: until the budget is spent)"},
                   "metric": {"type": "string", "choices": TUNING_METRICS, "nullable": True,
                              "description": "cross-validated score to optimise (default accuracy or r2)"},
               },
               "description": "hyperparameter search with Optuna on the training split (trainer/tuning.py)"},
    "diagnostics": {"type": "string", "choices": DIAGNOSTICS,
                    "description": "full (default): permutation importance of every input column and the forest "
                                   "grown in stages for its learning curve; minimal: neither, for a faster run "
                                   "(feature_importance null; a forest without early_stopping_rounds fitted in "
                                   "one go)"},
    "validation_split": {"type": "number", "exclusive_minimum": 0, "exclusive_maximum": 1, "api": False,
                         "description": "share of the train split held out for validation loss (default 0.1)"},
    "synthetic_rows": {"type": "integer", "minimum": 50, "maximum": MAX_SYNTHETIC_ROWS, "api": False,
                       "description": "rows generated when the run has no storage (default 2000)"},
}

_FRACTION_OF_ROWS = {"type": "float", "exclusive_minimum": 0, "maximum": 1}
_TREE = {
    "criterion": {"type": "string",
                  "choices": ("gini", "entropy", "log_loss", "squared_error", "friedman_mse", "absolute_error",
                              "poisson"),
                  "description": "gini, entropy, log_loss for classification; squared_error, friedman_mse, "
                                 "absolute_error, poisson for regression"},
    "max_depth": {"type": "integer", "minimum": 1, "maximum": MAX_TREE_DEPTH, "nullable": True},
    "min_samples_split": {"any_of": ({"type": "integer", "minimum": 2, "maximum": MAX_SAMPLES}, _FRACTION_OF_ROWS)},
    "min_samples_leaf": {"any_of": ({"type": "integer", "minimum": 1, "maximum": MAX_SAMPLES},
                                    {"type": "float", "exclusive_minimum": 0, "exclusive_maximum": 1})},
    "min_weight_fraction_leaf": {"type": "number", "minimum": 0, "maximum": 0.5},
    "max_features": {"any_of": ({"type": "integer", "minimum": 1, "maximum": MAX_SAMPLES}, _FRACTION_OF_ROWS,
                                {"type": "string", "choices": ("sqrt", "log2")}), "nullable": True},
    "max_leaf_nodes": {"type": "integer", "minimum": 2, "maximum": MAX_LEAF_NODES, "nullable": True},
    "min_impurity_decrease": {"type": "number", "minimum": 0},
    "ccp_alpha": {"type": "number", "minimum": 0},
}
HYPERPARAMETERS: dict[str, dict[str, dict[str, Any]]] = {
    "decision_tree": {
        **_TREE,
        "splitter": {"type": "string", "choices": ("best", "random")},
        "class_weight": {"type": "string", "choices": ("balanced",), "nullable": True, "tasks": ("classification",)},
    },
    "random_forest": {
        **_TREE,
        "n_estimators": {"type": "integer", "minimum": 1, "maximum": MAX_TREES,
                         "description": "trees; wins over training_config.max_iterations"},
        "bootstrap": {"type": "boolean"},
        "oob_score": {"type": "boolean"},
        "max_samples": {"any_of": ({"type": "integer", "minimum": 1, "maximum": MAX_SAMPLES}, _FRACTION_OF_ROWS),
                        "nullable": True},
        "class_weight": {"type": "string", "choices": ("balanced", "balanced_subsample"), "nullable": True,
                         "tasks": ("classification",)},
    },
    "regression": {
        "alpha": {"type": "number", "minimum": 0, "tasks": ("regression",), "description": "Ridge regularisation"},
        "C": {"type": "number", "exclusive_minimum": 0, "tasks": ("classification",),
              "description": "inverse regularisation of LogisticRegression"},
        "l1_ratio": {"type": "number", "minimum": 0, "maximum": 1, "nullable": True, "tasks": ("classification",)},
        "solver": {"type": "string",
                   "choices": ("auto", "svd", "cholesky", "lsqr", "sparse_cg", "sag", "saga", "lbfgs", "liblinear",
                               "newton-cg", "newton-cholesky"),
                   "description": "Ridge: auto, svd, cholesky, lsqr, sparse_cg, sag, saga, lbfgs; "
                                  "LogisticRegression: lbfgs, liblinear, newton-cg, newton-cholesky, sag, saga"},
        "tol": {"type": "number", "exclusive_minimum": 0},
        "fit_intercept": {"type": "boolean"},
        "positive": {"type": "boolean", "tasks": ("regression",)},
        "class_weight": {"type": "string", "choices": ("balanced",), "nullable": True, "tasks": ("classification",)},
    },
    "neural_network": {
        "hidden_layers": {"type": "integer_list", "min_items": 1, "max_items": MAX_HIDDEN_LAYERS, "minimum": 1,
                          "maximum": MAX_LAYER_WIDTH, "description": "units per hidden layer (default [64, 32])"},
        "dropout": {"type": "number", "minimum": 0, "exclusive_maximum": 1, "description": "default 0.0"},
        "weight_decay": {"type": "number", "minimum": 0, "maximum": 1, "description": "default 0.0"},
        "activation": {"type": "string", "choices": ("relu", "tanh", "gelu"), "description": "default relu"},
    },
}
# Estimator parameters the trainer sets itself: refused, with where to set them instead.
RESERVED = {
    "random_state": "set it with training_config.random_seed",
    "warm_start": "the trainer grows forests in stages itself",
    "n_jobs": "the trainer sets it from the CPUs it may use",
    "max_iter": "set it with training_config.max_iterations",
}


def config_problem(config: Any, model_type: str | None = None, *, api: bool = True) -> tuple[str, str] | None:
    """The first thing wrong with a training_config, as (field, message); None when it is valid.

    `api`: keys only the trainer accepts (api: False) are unknown. With `model_type`, the
    hyperparameters are checked too, and per-type maxima apply.
    """
    if not isinstance(config, dict):
        return "training_config", "training_config must be a JSON object"
    known = sorted(k for k, spec in TRAINING_CONFIG.items() if not api or spec.get("api", True))
    unknown = sorted(k for k in config if k not in known)
    if unknown:
        return (f"training_config.{unknown[0]}",
                f"unknown training_config key(s): {', '.join(unknown)}; known: {', '.join(known)}")
    for key in known:
        problem = _key_problem(key, config[key], model_type) if key in config else None
        if problem:
            return problem
    hyperparameters = config.get("hyperparameters")
    if model_type is not None and hyperparameters is not None:
        return hyperparameter_problem(model_type, hyperparameters)
    return None


def _key_problem(key: str, value: Any, model_type: str | None) -> tuple[str, str] | None:
    spec = TRAINING_CONFIG[key]
    maximum = spec.get("maximum_for", {}).get(model_type)
    if maximum is not None:
        spec = {**spec, "maximum": maximum}
    field = f"training_config.{key}"
    wrong = value_problem(spec, value)
    if wrong:
        suffix = f" for {model_type}" if maximum is not None else ""
        return field, f"{field} must be {wrong}{suffix}, got {_shown(value)}"
    if key == "target_column" and not value.strip():
        return field, f"{field} must be a non-empty column name"
    if "properties" in spec and value is not None:
        return object_problem(field, spec, value)
    return None


def hyperparameter_problem(model_type: str, hyperparameters: Any, task: str | None = None) -> tuple[str, str] | None:
    """The first unknown, reserved or out-of-range hyperparameter of `model_type`, as (field, message)."""
    if not isinstance(hyperparameters, dict):
        return "training_config.hyperparameters", "training_config.hyperparameters must be a JSON object"
    table = HYPERPARAMETERS[model_type]
    for name in sorted(hyperparameters):
        field = f"training_config.hyperparameters.{name}"
        if name in RESERVED:
            return field, f"hyperparameter {name!r} is not allowed for {model_type}: {RESERVED[name]}"
        spec = table.get(name)
        if spec is None or (task is not None and task not in spec.get("tasks", (task,))):
            valid = sorted(n for n, s in table.items() if task is None or task in s.get("tasks", (task,)))
            where = f" with a {task} target" if spec is not None else ""
            return field, f"unknown hyperparameter {name!r} for {model_type}{where}; valid: {', '.join(valid)}"
        wrong = value_problem(spec, hyperparameters[name])
        if wrong:
            return field, (f"invalid hyperparameter {name!r} for {model_type}: {field} must be {wrong}, "
                           f"got {_shown(hyperparameters[name])}")
    return None


def object_problem(field: str, spec: dict[str, Any], value: dict[str, Any]) -> tuple[str, str] | None:
    """The first unknown, missing or invalid sub-key of an object with `properties` (and `required`),
    as (field, message) naming `<field>.<key>`."""
    properties = spec["properties"]
    unknown = sorted(k for k in value if k not in properties)
    if unknown:
        return (f"{field}.{unknown[0]}", f"unknown key(s) {', '.join(f'{field}.{k}' for k in unknown)}; "
                                         f"{field} knows: {', '.join(properties)}")
    for name in spec.get("required", ()):
        if name not in value:
            return f"{field}.{name}", f"{field}.{name} is required when {field} is given"
    for name, sub in properties.items():
        wrong = value_problem(sub, value[name]) if name in value else None
        if wrong:
            return f"{field}.{name}", f"{field}.{name} must be {wrong}, got {_shown(value[name])}"
    return None


def value_problem(spec: dict[str, Any], value: Any) -> str | None:
    """What `value` should be ("an integer between 1 and 100") if it does not fit `spec`, else None."""
    if value is None:
        return None if spec.get("nullable") else describe(spec)
    forms = spec.get("any_of", (spec,))
    if any(_fits(form, value) for form in forms):
        return None
    return describe(spec)


def describe(spec: dict[str, Any]) -> str:
    """The allowed values of `spec` in words."""
    forms = spec.get("any_of", (spec,))
    text = " or ".join(_describe_one(form) for form in forms)
    return f"{text} or null" if spec.get("nullable") else text


def _fits(spec: dict[str, Any], value: Any) -> bool:
    kind = spec["type"]
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "string":
        return (isinstance(value, str) and len(value) <= spec.get("max_length", math.inf)
                and ("choices" not in spec or value in spec["choices"]))
    if kind == "integer_list":
        return (isinstance(value, list) and spec.get("min_items", 0) <= len(value) <= spec.get("max_items", math.inf)
                and all(_in_range(spec, item, "integer") for item in value))
    return _in_range(spec, value, kind)


def _in_range(spec: dict[str, Any], value: Any, kind: str) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if (kind == "integer" and not isinstance(value, int)) or (kind == "float" and not isinstance(value, float)):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return (value >= spec.get("minimum", -math.inf) and value <= spec.get("maximum", math.inf)
            and value > spec.get("exclusive_minimum", -math.inf) and value < spec.get("exclusive_maximum", math.inf))


def _describe_one(spec: dict[str, Any]) -> str:
    kind = spec["type"]
    if kind == "boolean":
        return "true or false"
    if kind == "object":
        return "a JSON object"
    if kind == "string":
        if "choices" in spec:
            return f"one of {', '.join(spec['choices'])}"
        return f"a string of at most {spec['max_length']} characters" if "max_length" in spec else "a string"
    noun = {"integer": "an integer", "float": "a fraction (a number with a decimal point)",
            "number": "a number", "integer_list": "a list of integers"}[kind]
    bounds = _bounds(spec)
    if kind == "integer_list":
        return f"a list of {spec['min_items']} to {spec['max_items']} integers{bounds}"
    return noun + bounds


def _bounds(spec: dict[str, Any]) -> str:
    low = next(((name, sign) for name, sign in (("minimum", ">="), ("exclusive_minimum", ">")) if name in spec), None)
    high = next(((name, sign) for name, sign in (("maximum", "<="), ("exclusive_maximum", "<")) if name in spec), None)
    if low and high and low[1] == ">" and high[1] == "<":
        return f" strictly between {_number(spec[low[0]])} and {_number(spec[high[0]])}"
    if low and high and low[1] == ">=" and high[1] == "<=":
        return f" between {_number(spec[low[0]])} and {_number(spec[high[0]])}"
    parts = [f"{bound[1]} {_number(spec[bound[0]])}" for bound in (low, high) if bound]
    return (" " + " and ".join(parts)) if parts else ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
