"""Estimators per model type and task, with their hyperparameters checked, and how each is fitted.

Every fit receives the fit split and the validation split and returns a fitted model
plus its training metrics (losses on both splits and a learning curve).
"""
from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from trainer.errors import TrainingFailed
from trainer.fitted import SklearnModel, TorchModel
from trainer.hyperparameters import RESERVED, hyperparameter_problem
from trainer.metrics import log_loss, mean_squared_error
from trainer.nn import fit_mlp, mlp_params
from trainer.ontology import Column
from trainer.spec import TrainingConfig
from trainer.stream_preprocess import preprocessor_of_frame

EpochHook = Callable[[int, float, float], None]
FOREST_STAGES = 10
TRAINING_LOSS_ROWS = 20_000


@dataclass
class FitOutcome:
    model: SklearnModel | TorchModel
    training_metrics: dict
    config_usage: dict[str, str]
    warnings: list[str] = field(default_factory=list)


def default_jobs() -> int:
    """Worker threads: the CPUs this process may run on, at most 4."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return max(1, min(4, available))


def config_usage(model_type: str, config: TrainingConfig) -> dict[str, str]:
    """How each training_config key is honoured by this model type (recorded in the manifest)."""
    na = f"not applicable to {model_type}"
    hyper = config.hyperparameters
    usage = {
        "train_test_split": "train fraction of the held-out split",
        "random_seed": "seeds the splits, the estimator and permutation importance",
        "validation_split": "fraction of the train split held out for validation loss",
        "target_column": "target" if config.target_column else "unset: property 'label' or 'target'",
        "hyperparameters": "passed to the estimator after validation",
        "learning_rate": na,
        "batch_size": na,
        "max_iterations": na,
        "early_stopping_rounds": na,
        "tuning": "unset: no hyperparameter search",
    }
    if config.tuning:
        tuning = config.tuning
        usage["tuning"] = (
            f"Optuna TPE search (seeded from random_seed) of {tuning.get('metric') or 'the default metric'} by "
            f"3-fold cross-validation of the training split, at most {tuning['budget_seconds']} s for the search "
            "and the final fit"
            + (f", at most {tuning['max_trials']} trials" if tuning.get("max_trials") else "")
            + "; the best parameters (training_metrics.tuning.best_params) are fitted as hyperparameters"
        )
        usage["hyperparameters"] = ("the user's (fixed, not searched) and the search's best, passed to the "
                                    "estimator after validation")
    if model_type == "random_forest":
        usage["max_iterations"] = (
            "overridden by hyperparameters.n_estimators" if "n_estimators" in hyper else "n_estimators (default 100)"
        )
        usage["early_stopping_rounds"] = (
            f"stop growing after this many of {FOREST_STAGES} stages without validation-loss improvement"
        )
    elif model_type == "regression":
        usage["max_iterations"] = "max_iter of the solver (Ridge: only for iterative solvers)"
    elif model_type == "neural_network":
        usage["learning_rate"] = "Adam learning rate (default 0.001)"
        usage["batch_size"] = "mini-batch size (default 128)"
        usage["max_iterations"] = "maximum epochs (default 100)"
        usage["early_stopping_rounds"] = "patience in epochs on validation loss (default 10)"
    return usage


def sklearn_estimator(model_type: str, task: str, config: TrainingConfig, n_jobs: int | None = None):
    """The estimator with defaults from the config and validated hyperparameters on top."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    classify = task == "classification"
    seed = config.random_seed
    if model_type == "decision_tree":
        estimator = (DecisionTreeClassifier if classify else DecisionTreeRegressor)(random_state=seed)
    elif model_type == "random_forest":
        estimator = (RandomForestClassifier if classify else RandomForestRegressor)(
            n_estimators=config.max_iterations or 100, random_state=seed, n_jobs=n_jobs or default_jobs()
        )
    elif classify:
        estimator = LogisticRegression(max_iter=config.max_iterations or 1000, random_state=seed)
    else:
        estimator = Ridge(alpha=1.0, max_iter=config.max_iterations, random_state=seed)
    return with_hyperparameters(estimator, model_type, config.hyperparameters, task)


def with_hyperparameters(estimator, model_type: str, hyperparameters: dict, task: str | None = None):
    """The estimator with `hyperparameters` set: the schema's checks (`trainer.hyperparameters`, the same
    the API makes) for this task, then scikit-learn's own."""
    problem = hyperparameter_problem(model_type, hyperparameters, task)
    if problem:
        raise TrainingFailed(problem[1])
    valid = estimator.get_params(deep=False)
    for name in hyperparameters:
        if name not in valid:  # the schema names a parameter this estimator does not have: a schema bug
            raise TrainingFailed(
                f"unknown hyperparameter {name!r} for {model_type} ({type(estimator).__name__}; "
                f"valid: {', '.join(sorted(set(valid) - set(RESERVED)))})"
            )
    estimator.set_params(**hyperparameters)
    # scikit-learn's own declarative checks, before any data is touched. `_validate_params` is private API
    # (stable since 1.2); without it the same checks run at fit time and are reported from there.
    validate = getattr(estimator, "_validate_params", None)
    if validate is not None:
        try:
            validate()
        except (ValueError, TypeError) as exc:  # InvalidParameterError subclasses both
            raise TrainingFailed(f"invalid hyperparameter for {model_type}: {exc}") from None
    return estimator


def fit_model(
    model_type: str,
    task: str,
    features: list[Column],
    split: dict,
    classes: list | None,
    config: TrainingConfig,
    on_epoch: EpochHook | None = None,
) -> FitOutcome:
    """Fit `model_type` on split["fit"] and measure it on split["validation"] (each a (frame, y) pair; the
    network's fit split may also come prepared, as a `NetworkInput`)."""
    if model_type == "neural_network":
        outcome = _fit_network(task, features, split, classes, config, on_epoch)
    else:
        outcome = _fit_sklearn(model_type, task, features, split, classes, config, on_epoch)
    outcome.config_usage = config_usage(model_type, config)
    return outcome


def _loss(task: str, y: np.ndarray, predict_proba, predict) -> float:
    if task == "classification":
        return log_loss(y, predict_proba())
    return mean_squared_error(y, predict())


def _fit_sklearn(model_type, task, features, split, classes, config, on_epoch) -> FitOutcome:
    from sklearn.pipeline import Pipeline

    estimator = sklearn_estimator(model_type, task, config)
    (fit_frame, y_fit), (val_frame, y_val) = split["fit"], split["validation"]
    caught = []
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        preprocessor, x_fit = preprocessor_of_frame(features, fit_frame, scale=model_type == "regression")
        x_val = preprocessor.transform(val_frame)
        try:
            if model_type == "random_forest" and (config.diagnostics != "minimal" or config.early_stopping_rounds):
                curve, stopped = _grow_forest(estimator, task, x_fit, y_fit, x_val, y_val, classes, config, on_epoch)
            else:
                estimator.fit(x_fit, y_fit)
                curve, stopped = None, False
        except (ValueError, TypeError) as exc:
            raise TrainingFailed(f"fitting {model_type} failed: {exc}") from None
        caught = sorted({f"{r.category.__name__}: {r.message}" for r in records})
    model = SklearnModel(Pipeline([*preprocessor.steps, ("model", estimator)]), task, classes)
    x_fit, y_fit = _loss_sample(x_fit, y_fit, config.random_seed)
    train_loss = _loss(task, y_fit, lambda: _proba(estimator, x_fit, classes), lambda: estimator.predict(x_fit))
    val_loss = _loss(task, y_val, lambda: _proba(estimator, x_val, classes), lambda: estimator.predict(x_val))
    if model_type == "random_forest":
        epoch = len(estimator.estimators_)
    elif model_type == "regression" and hasattr(estimator, "n_iter_") and estimator.n_iter_ is not None:
        epoch = int(np.max(estimator.n_iter_))
    else:
        epoch = 1
    if curve is None:
        curve = [{"epoch": epoch, "training_loss": train_loss, "validation_loss": val_loss}]
        if on_epoch is not None:
            on_epoch(epoch, train_loss, val_loss)
    metrics = {
        "epoch": epoch,
        "training_loss": train_loss,
        "validation_loss": val_loss,
        "loss": "log_loss" if task == "classification" else "mse",
        "learning_curve": curve,
        "epoch_unit": {"random_forest": "trees", "regression": "solver iterations"}.get(model_type, "fit"),
        "stopped_early": stopped,
    }
    return FitOutcome(model=model, training_metrics=metrics, config_usage={}, warnings=caught)


def _loss_sample(x, y, seed: int):
    """At most TRAINING_LOSS_ROWS rows of the fit split: training loss is a diagnostic, not worth a full pass."""
    if len(y) <= TRAINING_LOSS_ROWS:
        return x, y
    rows = np.sort(np.random.default_rng(seed).choice(len(y), TRAINING_LOSS_ROWS, replace=False))
    return x[rows], y[rows]


def _proba(estimator, x, classes) -> np.ndarray:
    from trainer.fitted import _full_proba

    return _full_proba(estimator.predict_proba(x), estimator.classes_, len(classes))


def _grow_forest(estimator, task, x_fit, y_fit, x_val, y_val, classes, config, on_epoch):
    """Grow the forest in stages, recording losses; optionally stop when validation loss stalls."""
    total = estimator.n_estimators
    step = max(1, math.ceil(total / FOREST_STAGES))
    estimator.set_params(warm_start=True)
    x_loss, y_loss = _loss_sample(x_fit, y_fit, config.random_seed)
    curve, best_loss, best_trees, stale, stopped = [], math.inf, 0, 0, False
    for trees in range(step, total + step, step):
        trees = min(trees, total)
        estimator.set_params(n_estimators=trees)
        estimator.fit(x_fit, y_fit)
        train_loss = _loss(task, y_loss, lambda: _proba(estimator, x_loss, classes), lambda: estimator.predict(x_loss))
        val_loss = _loss(task, y_val, lambda: _proba(estimator, x_val, classes), lambda: estimator.predict(x_val))
        curve.append({"epoch": trees, "training_loss": train_loss, "validation_loss": val_loss})
        if on_epoch is not None:
            on_epoch(trees, train_loss, val_loss)
        if val_loss < best_loss - 1e-12:
            best_loss, best_trees, stale = val_loss, trees, 0
        else:
            stale += 1
            if config.early_stopping_rounds and stale >= config.early_stopping_rounds:
                stopped = True
                break
    if stopped and best_trees < len(estimator.estimators_):
        estimator.estimators_ = estimator.estimators_[:best_trees]
        estimator.set_params(n_estimators=best_trees)
    estimator.set_params(warm_start=False)
    return curve, stopped


@dataclass
class NetworkInput:
    """The network's fit split ready to train: a fitted preprocessor and the epochs (`trainer.nn.Batches`)."""

    preprocessor: object
    batches: object


def network_input_of(fit_frame: pd.DataFrame, y_fit: np.ndarray, features: list[Column], seed: int) -> NetworkInput:
    """A fit split held in memory as the network's input, prepared as any source's is (`pipeline.network_input`)."""
    from trainer.sources import FrameRows, network_input

    fit_frame = fit_frame.reset_index(drop=True)
    return network_input(FrameRows(fit_frame, len(fit_frame)), np.arange(len(fit_frame)), y_fit, features, seed)


def _fit_network(task, features, split, classes, config, on_epoch) -> FitOutcome:
    from trainer.sources import design

    params = mlp_params(
        config.hyperparameters,
        epochs=config.max_iterations,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        patience=config.early_stopping_rounds,
        seed=config.random_seed,
    )
    fit, (val_frame, y_val) = split["fit"], split["validation"]
    if not isinstance(fit, NetworkInput):
        fit = network_input_of(*fit, features, config.random_seed)
    x_val = design(fit.preprocessor, val_frame)
    n_outputs = len(classes) if task == "classification" else 1
    fitted = fit_mlp(fit.batches, x_val, y_val, task, n_outputs, params, on_epoch)
    best = fitted.history[fitted.best_epoch - 1]
    metrics = {
        "epoch": fitted.best_epoch,
        "epochs_run": len(fitted.history),
        "training_loss": best["training_loss"],
        "validation_loss": best["validation_loss"],
        "loss": "log_loss" if task == "classification" else "mse",
        "learning_curve": fitted.history,
        "epoch_unit": "epochs",
        "stopped_early": fitted.stopped_early,
    }
    model = TorchModel(fit.preprocessor, fitted.network, fitted.arch, classes)
    return FitOutcome(model=model, training_metrics=metrics, config_usage={})
