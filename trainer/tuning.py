"""Hyperparameter search (`training_config.tuning`) with Optuna, on the training split only.

    training_config.tuning = {"budget_seconds": 60, "max_trials": 50, "metric": "f1_macro"}

`tune` is what `trainer.pipeline.train_and_evaluate` calls, before the normal fit, with the training
split (the fit and validation rows; the test rows are never passed in). It returns the training_config
with the best parameters merged in, which the pipeline then fits the normal way and evaluates on the
test split, once; and the search's report, which becomes `training_metrics["tuning"]` (and so the
manifest's, and, thinned by `record_tuning`, the model record's).

How a trial is scored: FOLDS-fold cross-validation of the training split (stratified for
classification when every class has FOLDS rows, else plain k-fold; shuffled, seeded from random_seed;
the same folds for every trial), repeated REPEATS times with other shuffles when the training split
has fewer than REPEATED_BELOW_ROWS rows (on small data one 3-fold split alone decides by noise). In
each fold the model is fitted by the trainer's own code (`trainer.models.fit_model`, the same a user's
hyperparameters go to), on the fold's training part split into fit and validation rows exactly as a
normal run splits its training split (validation_split, for early stopping and losses), and scored
with `metric` on the fold's held-out part. The score of a trial is the mean over folds.

Search: Optuna's TPE sampler seeded from random_seed; trial 0 is the model type's defaults
(`study.enqueue_trial`), so the best cross-validated score is never below the defaults'. Ties go to
the earlier trial. The network's trials report their validation loss after every epoch (sign-flipped
when the metric is maximised; step = fold x the epoch cap + epoch) to a MedianPruner (5 startup
trials, 5 warm-up epochs), which stops trials that are worse than the median at the same epoch.

Which trial is fitted (the one-standard-error rule against the defaults): the trial with the best mean
score replaces the defaults only if its gain over them, the mean of the per-fold differences, is larger
than the standard error of those differences (their standard deviation / sqrt(folds)). Otherwise the
defaults are fitted: a gain inside the noise between folds is the search fitting the folds, and on
unseen data it is as likely a loss. `best_*` in the report is the fitted trial; `selection` says what
the search's top trial was, its gain, the standard error and whether the defaults were kept.

Budget (`budget_seconds`, MIN_TUNING_SECONDS..MAX_TUNING_SECONDS) bounds the search plus the final fit:
FINAL_FIT_FACTOR x the mean fold-fit time of the best trial (or of the current one, if slower) is
kept for the final fit. No trial starts when the elapsed time plus the mean time of the completed
trials plus that reserve would pass the budget; inside a trial the clock is checked between folds and
between forest stages and network epochs, and a trial that would pass it is stopped (state "pruned",
pruned_by "budget") and ends the search. So the search overruns by at most one fold (one stage or
epoch for forests and networks) of one trial. The evaluation after the final fit (test metrics,
permutation importance, the drift reference) is not part of the budget. If not one trial completes
(the defaults alone do not fit in the budget, or every trial fails), the run fails saying so.
`max_trials` (1..MAX_TUNING_TRIALS, default MAX_TUNING_TRIALS) bounds the trial count.

Reproducible: with `max_trials` and `random_seed` fixed and a budget that is not reached, two runs
give the same trials (parameters, scores, states) and the same best parameters.

Metrics (`metric`, default accuracy or r2) and their direction:

    | metric      | task                     | direction | what                                           |
    |-------------|--------------------------|-----------|------------------------------------------------|
    | accuracy    | classification           | maximize  | share of rows predicted right                  |
    | f1_score    | classification           | maximize  | binary: of classes[1]; else macro (as reported)|
    | f1_macro    | classification           | maximize  | unweighted mean of the classes' F1             |
    | f1_weighted | classification           | maximize  | support-weighted mean of the classes' F1       |
    | precision   | classification           | maximize  | binary: of classes[1]; else macro              |
    | recall      | classification           | maximize  | binary: of classes[1]; else macro              |
    | log_loss    | classification           | minimize  | mean negative log-likelihood                   |
    | roc_auc     | binary classification    | maximize  | area under the ROC curve of classes[1]         |
    | r2          | regression               | maximize  | coefficient of determination                   |
    | rmse        | regression               | minimize  | root mean squared error                        |
    | mae         | regression               | minimize  | mean absolute error                            |

Search space per model type. Every name is one a user may set (`trainer.hyperparameters`:
HYPERPARAMETERS, or training_config's learning_rate and batch_size), within its schema maximum; a
name the user set in training_config is fixed to the user's value and not searched (for the forest,
training_config.max_iterations fixes n_estimators):

    | model type     | task           | name             | range                                          | trial 0 |
    |----------------|----------------|------------------|------------------------------------------------|---------|
    | decision_tree  | both           | max_depth        | null (unlimited), 1, 2, 3, 4, 5, 6, 8, 10, 12, | null    |
    |                |                |                  | 16, 20, 24, 32 (categorical)                   |         |
    | decision_tree  | both           | min_samples_leaf | integer 1..64, log                             | 1       |
    | decision_tree  | classification | criterion        | gini, entropy                                  | gini    |
    | random_forest  | both           | n_estimators     | integer 10..300, log (MAX_TREES is 1000)       | 100     |
    | random_forest  | both           | max_depth        | as decision_tree                               | null    |
    | random_forest  | both           | min_samples_leaf | integer 1..32, log                             | 1       |
    | random_forest  | both           | max_features     | sqrt, log2, 0.33, 0.5, 1.0                     | sqrt *  |
    | regression     | classification | C                | 1e-3..1e3, log (LogisticRegression)            | 1.0     |
    | regression     | classification | penalty          | l2 (solver lbfgs) or elastic net: solver saga  | l2      |
    |                |                |                  | and l1_ratio 0..1 (sets solver and l1_ratio)   |         |
    | regression     | regression     | alpha            | 1e-4..1e3, log (Ridge)                         | 1.0     |
    | neural_network | both           | learning_rate    | 1e-4..1e-1, log (training_config key)          | 0.001   |
    | neural_network | both           | batch_size       | 32, 64, 128, 256 (training_config key)         | 128     |
    | neural_network | both           | hidden_layers    | 1..3 layers of 8..256 units each, log          | [64, 32]|
    | neural_network | both           | dropout          | 0..0.5                                         | 0.0     |
    | neural_network | both           | weight_decay     | 0, 1e-5, 1e-4, 1e-3, 1e-2                      | 0.0     |
    | neural_network | both           | activation       | relu, tanh, gelu                               | relu    |

(* sqrt for classification, 1.0 for regression: scikit-learn's defaults.) The regression criterion is
not searched (absolute_error is slow, poisson needs a non-negative target, friedman_mse is squared_error
for a single tree), nor the network's epochs (training_config.max_iterations, default 100, with early
stopping on the validation loss).

Optuna is imported only here, and only when a run asks for tuning; its log is set to warnings.
"""
from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from trainer.errors import TrainingFailed
from trainer.hyperparameters import MAX_TREE_DEPTH, MAX_TREES, MAX_TUNING_TRIALS, TUNING_METRICS
from trainer.models import fit_model
from trainer.nn import DEFAULT_EPOCHS
from trainer.ontology import Column
from trainer.spec import TrainingConfig

FOLDS = 3
# Below this many training rows the FOLDS-fold split is repeated REPEATS times (other shuffles).
REPEATED_BELOW_ROWS = 2000
REPEATS = 2
# The final fit is kept this many times the mean fold-fit time (it fits on ~1.5x a fold's rows).
FINAL_FIT_FACTOR = 2.0
PRUNER_STARTUP_TRIALS = 5
# A search whose first this-many trials all failed (the defaults among them) gives up: the data, not the
# parameters, is the problem.
MAX_LEADING_FAILURES = 10
PRUNER_WARMUP_EPOCHS = 5
# Trials kept on the model record (the manifest keeps every trial).
RECORD_TRIALS = 100

# name -> (task, direction); roc_auc needs a binary target.
METRICS: dict[str, tuple[str, str]] = {
    "accuracy": ("classification", "maximize"),
    "f1_score": ("classification", "maximize"),
    "f1_macro": ("classification", "maximize"),
    "f1_weighted": ("classification", "maximize"),
    "precision": ("classification", "maximize"),
    "recall": ("classification", "maximize"),
    "log_loss": ("classification", "minimize"),
    "roc_auc": ("classification", "maximize"),
    "r2": ("regression", "maximize"),
    "rmse": ("regression", "minimize"),
    "mae": ("regression", "minimize"),
}
assert tuple(METRICS) == TUNING_METRICS  # the schema's choices (both copies of hyperparameters.py)
DEFAULT_METRIC = {"classification": "accuracy", "regression": "r2"}

DEPTHS = (None, 1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32)
MAX_FEATURES = ("sqrt", "log2", 0.33, 0.5, 1.0)
BATCH_SIZES = (32, 64, 128, 256)
WEIGHT_DECAYS = (0.0, 1e-5, 1e-4, 1e-3, 1e-2)
ACTIVATIONS = ("relu", "tanh", "gelu")
MAX_LAYERS, MIN_UNITS, MAX_UNITS = 3, 8, 256
assert max(d for d in DEPTHS if d) <= MAX_TREE_DEPTH and 300 <= MAX_TREES
# training_config keys the search may set (the rest of what it sets are hyperparameters).
CONFIG_KEYS = ("learning_rate", "batch_size")

# payload -> None; payload: trial, trials_done, max_trials, budget_seconds, state, score, best_score, metric,
# elapsed_seconds (what the progress callback's `tuning` object holds).
TrialHook = Callable[[dict], None]


@dataclass(frozen=True)
class Settings:
    budget_seconds: int
    max_trials: int | None
    metric: str
    direction: str


@dataclass
class TuningOutcome:
    config: TrainingConfig  # the run's config with the best parameters merged in
    best_params: dict
    report: dict  # training_metrics["tuning"]


class _OverBudget(Exception):
    """A trial stopped because finishing it would pass the budget."""


def settings_for(config: TrainingConfig, task: str, n_classes: int) -> Settings:
    """The run's tuning settings; a metric that does not fit the task fails here, naming the allowed ones."""
    raw = config.tuning or {}
    metric = raw.get("metric") or DEFAULT_METRIC[task]
    allowed = [name for name, (kind, _) in METRICS.items()
               if kind == task and (name != "roc_auc" or n_classes == 2)]
    if metric not in METRICS or METRICS[metric][0] != task:
        raise TrainingFailed(f"tuning.metric {metric!r} is not a {task} metric; use one of {', '.join(allowed)}")
    if metric == "roc_auc" and n_classes != 2:
        raise TrainingFailed(f"tuning.metric 'roc_auc' needs a binary target (this one has {n_classes} classes); "
                             f"use one of {', '.join(allowed)}")
    return Settings(budget_seconds=int(raw["budget_seconds"]), max_trials=raw.get("max_trials"), metric=metric,
                    direction=METRICS[metric][1])


# --- the search space ----------------------------------------------------------------------------------------------

def fixed_names(model_type: str, config: TrainingConfig) -> set[str]:
    """Dimensions the user fixed: their hyperparameters, and the training_config keys the search would set."""
    fixed = set(config.hyperparameters)
    fixed |= {key for key in CONFIG_KEYS if getattr(config, key) is not None}
    if model_type == "random_forest" and config.max_iterations is not None:
        fixed.add("n_estimators")  # the tree count the user asked for
    if "solver" in fixed or "l1_ratio" in fixed:
        fixed.add("penalty")
    return fixed


def suggest(trial, model_type: str, task: str, fixed: set[str]) -> dict:
    """One trial's parameters, as the names the trainer accepts (hyperparameters, or CONFIG_KEYS)."""
    params: dict[str, Any] = {}
    _SUGGEST[model_type](trial, task, params, lambda name: name not in fixed)
    return params


def _suggest_tree(trial, task: str, params: dict, free, forest: bool = False) -> None:
    if forest and free("n_estimators"):
        params["n_estimators"] = trial.suggest_int("n_estimators", 10, 300, log=True)
    if free("max_depth"):
        params["max_depth"] = trial.suggest_categorical("max_depth", DEPTHS)
    if free("min_samples_leaf"):
        params["min_samples_leaf"] = trial.suggest_int("min_samples_leaf", 1, 32 if forest else 64, log=True)
    if forest and free("max_features"):
        params["max_features"] = trial.suggest_categorical("max_features", MAX_FEATURES)
    if not forest and task == "classification" and free("criterion"):
        params["criterion"] = trial.suggest_categorical("criterion", ("gini", "entropy"))


def _suggest_forest(trial, task: str, params: dict, free) -> None:
    _suggest_tree(trial, task, params, free, forest=True)


def _suggest_linear(trial, task: str, params: dict, free) -> None:
    if task == "regression":
        if free("alpha"):
            params["alpha"] = trial.suggest_float("alpha", 1e-4, 1e3, log=True)
        return
    if free("C"):
        params["C"] = trial.suggest_float("C", 1e-3, 1e3, log=True)
    if free("penalty") and trial.suggest_categorical("penalty", ("l2", "elasticnet")) == "elasticnet":
        params["solver"] = "saga"
        params["l1_ratio"] = trial.suggest_float("l1_ratio", 0.0, 1.0)


def _suggest_network(trial, task: str, params: dict, free) -> None:
    if free("learning_rate"):
        params["learning_rate"] = trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True)
    if free("batch_size"):
        params["batch_size"] = trial.suggest_categorical("batch_size", BATCH_SIZES)
    if free("hidden_layers"):
        layers = trial.suggest_int("n_layers", 1, MAX_LAYERS)
        params["hidden_layers"] = [trial.suggest_int(f"units_l{i}", MIN_UNITS, MAX_UNITS, log=True)
                                   for i in range(layers)]
    if free("dropout"):
        params["dropout"] = trial.suggest_float("dropout", 0.0, 0.5)
    if free("weight_decay"):
        params["weight_decay"] = trial.suggest_categorical("weight_decay", WEIGHT_DECAYS)
    if free("activation"):
        params["activation"] = trial.suggest_categorical("activation", ACTIVATIONS)


_SUGGEST = {"decision_tree": _suggest_tree, "random_forest": _suggest_forest, "regression": _suggest_linear,
            "neural_network": _suggest_network}


def default_trial(model_type: str, task: str, fixed: set[str]) -> dict:
    """Optuna's values (the names `suggest` asks for) that make the model type's defaults: trial 0."""
    if model_type in ("decision_tree", "random_forest"):
        values = {"n_estimators": 100, "max_depth": None, "min_samples_leaf": 1,
                  "max_features": "sqrt" if task == "classification" else 1.0, "criterion": "gini"}
    elif model_type == "regression":
        values = {"alpha": 1.0, "C": 1.0, "penalty": "l2"}
    else:
        values = {"learning_rate": 1e-3, "batch_size": 128, "n_layers": 2, "units_l0": 64, "units_l1": 32,
                  "dropout": 0.0, "weight_decay": 0.0, "activation": "relu"}
        if "hidden_layers" in fixed:
            fixed = fixed | {"n_layers", "units_l0", "units_l1"}
    return {name: value for name, value in values.items() if name not in fixed}


def with_params(config: TrainingConfig, params: dict) -> TrainingConfig:
    """`config` with a trial's parameters: CONFIG_KEYS on the config, the rest merged into hyperparameters."""
    top = {key: params[key] for key in CONFIG_KEYS if key in params}
    hyper = {key: value for key, value in params.items() if key not in CONFIG_KEYS}
    return replace(config, **top, hyperparameters={**config.hyperparameters, **hyper})


# --- scoring -------------------------------------------------------------------------------------------------------

def score(metric: str, model, frame: pd.DataFrame, y: np.ndarray, classes: list | None) -> float:
    """`metric` of `model` on (frame, y), computed as the run's test metrics are (`trainer.metrics`); NaN when
    it is undefined there (r2 of a constant, AUC of one class)."""
    from trainer.metrics import classification_metrics, regression_metrics

    if METRICS[metric][0] == "regression":
        return float(regression_metrics(y, model.predict_encoded(frame)).get(metric, math.nan))
    predicted = model.predict_encoded(frame)
    if metric in ("f1_macro", "f1_weighted"):  # not among the reported metrics: the classes' F1, averaged
        from sklearn.metrics import f1_score

        return float(f1_score(y, predicted, labels=list(range(len(classes))), zero_division=0,
                              average=metric.removeprefix("f1_")))
    return float(classification_metrics(y, predicted, model.predict_proba(frame), classes).get(metric, math.nan))


def repeats_for(rows: int) -> int:
    """How many times the FOLDS-fold split is made (REPEATS below REPEATED_BELOW_ROWS training rows)."""
    return REPEATS if rows < REPEATED_BELOW_ROWS else 1


def folds(y: np.ndarray, task: str, config: TrainingConfig) -> list[dict[str, np.ndarray]]:
    """Positions (into the training split) of each fold's fit, validation and held-out rows; seeded. With
    repeats, repeat r shuffles with random_seed + r."""
    from sklearn.model_selection import KFold, StratifiedKFold

    from trainer.pipeline import _split

    positions = np.arange(len(y))
    if len(y) < 2 * FOLDS:
        raise TrainingFailed(f"tuning needs at least {2 * FOLDS} training rows for {FOLDS}-fold cross-validation, "
                             f"got {len(y)}")
    stratified = task == "classification" and np.unique(y, return_counts=True)[1].min() >= FOLDS
    out = []
    for repeat in range(repeats_for(len(y))):
        splitter = (StratifiedKFold if stratified else KFold)(n_splits=FOLDS, shuffle=True,
                                                              random_state=config.random_seed + repeat)
        for train, held_out in splitter.split(positions, y if stratified else None):
            fit, validation = _split(train, y[train], task, 1.0 - config.validation_split, config.random_seed)
            out.append({"fit": fit, "validation": validation, "held_out": np.sort(held_out)})
    return out


@dataclass(frozen=True)
class Selection:
    """Which completed trial is fitted: the top trial if it beats the defaults by more than one standard error."""

    chosen: dict  # the trial record fitted
    top: dict  # the trial with the best mean score
    gain: float | None  # top − defaults, mean over folds, in the metric's better direction
    standard_error: float | None
    rule: str

    def report(self) -> dict:
        return {"rule": self.rule, "top_trial": self.top["number"], "top_score": self.top["score"],
                "gain_over_defaults": None if self.gain is None else round(self.gain, 6),
                "standard_error": None if self.standard_error is None else round(self.standard_error, 6),
                "kept_defaults": self.chosen["number"] == 0 and self.top["number"] != 0}


def select(trials: list[dict], fold_scores: dict[int, list[float]], top: dict, direction: str) -> Selection:
    """The one-standard-error rule against the defaults (trial 0), on the paired per-fold differences."""
    defaults = next((t for t in trials if t["number"] == 0 and t["state"] == "complete"), None)
    if defaults is None:
        return Selection(top, top, None, None, "the defaults did not complete: the top trial is fitted")
    if top["number"] == 0:
        return Selection(top, top, 0.0, None, "the defaults are the top trial")
    sign = 1.0 if direction == "maximize" else -1.0
    pairs = [(a, b) for a, b in zip(fold_scores[top["number"]], fold_scores[0], strict=True)
             if math.isfinite(a) and math.isfinite(b)]
    differences = np.array([sign * (a - b) for a, b in pairs])
    gain = float(differences.mean()) if len(differences) else 0.0
    error = float(differences.std(ddof=1) / math.sqrt(len(differences))) if len(differences) > 1 else math.inf
    if gain > error:
        return Selection(top, top, gain, error, "the top trial beats the defaults by more than one standard error")
    return Selection(defaults, top, gain, error,
                     "the top trial's gain over the defaults is within one standard error: the defaults are fitted")


# --- the search ----------------------------------------------------------------------------------------------------

def tune(
    model_type: str,
    task: str,
    features: list[Column],
    frame: pd.DataFrame,
    y: np.ndarray,
    classes: list | None,
    config: TrainingConfig,
    on_trial: TrialHook | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> TuningOutcome:
    """Search `model_type`'s hyperparameters on (frame, y), which must be the training split only."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = _Search(model_type, task, features, frame, y, classes, config, clock)
    study = optuna.create_study(
        direction=search.settings.direction,
        sampler=optuna.samplers.TPESampler(seed=config.random_seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS,
                                           n_warmup_steps=PRUNER_WARMUP_EPOCHS),
    )
    study.enqueue_trial(default_trial(model_type, task, search.fixed))
    limit = search.settings.max_trials or MAX_TUNING_TRIALS
    while len(search.trials) < limit and search.stopped_by is None:
        if search.trials and not search.may_start():
            search.stopped_by = "budget"
            break
        search.run(study, study.ask())
        if on_trial is not None:
            on_trial(search.progress())
        if search.best is None and len(search.trials) >= MAX_LEADING_FAILURES:
            break
    wall = clock() - search.started
    if search.best is None:
        raise TrainingFailed(search.no_trial_reason(wall))
    chosen = search.selection()
    best = dict(chosen.chosen["params"])
    return TuningOutcome(config=with_params(config, best), best_params=best,
                         report=search.report(wall, optuna.__version__, chosen))


class _Search:
    """The state of one search: settings, folds, the trials so far and the clock."""

    def __init__(self, model_type, task, features, frame, y, classes, config: TrainingConfig, clock) -> None:
        if model_type == "neural_network":
            import torch  # noqa: F401  (its import is not a fold's fit time: it would inflate every estimate)
        self.clock, self.started = clock, clock()
        self.model_type, self.task, self.features = model_type, task, features
        self.frame, self.y, self.classes, self.config = frame, y, classes, config
        self.settings = settings_for(config, task, len(classes or ()))
        self.fixed = fixed_names(model_type, config)
        self.splits = folds(y, task, config)
        self.trials: list[dict] = []
        self.fold_seconds: dict[int, float] = {}  # completed trial -> its mean fold-fit seconds
        self.fold_scores: dict[int, list[float]] = {}  # completed trial -> its score on each fold
        self.best: dict | None = None
        self.stopped_by: str | None = None
        # The network's intermediate values: its validation loss, signed as the study's direction wants.
        self.sign = 1.0 if self.settings.direction == "minimize" else -1.0
        self.epoch_cap = (config.max_iterations or DEFAULT_EPOCHS) if model_type == "neural_network" else 0

    def elapsed(self) -> float:
        return self.clock() - self.started

    def reserve(self, current: float = 0.0) -> float:
        """Seconds kept for the final fit: FINAL_FIT_FACTOR x the slower of the best trial's and `current`'s
        mean fold fit."""
        kept = self.fold_seconds[self.best["number"]] if self.best is not None else 0.0
        return FINAL_FIT_FACTOR * max(kept, current)

    def may_start(self) -> bool:
        """Whether one more trial (as long as the completed ones took on average) still fits the budget."""
        complete = [t["seconds"] for t in self.trials if t["state"] == "complete"]
        estimate = float(np.mean(complete)) if complete else 0.0
        return self.elapsed() + estimate + self.reserve() <= self.settings.budget_seconds

    def run(self, study, trial) -> None:
        """Run `trial` and tell `study` how it ended; its record joins `trials`."""
        import optuna

        state = optuna.trial.TrialState
        params = suggest(trial, self.model_type, self.task, self.fixed)
        record: dict[str, Any] = {"number": trial.number, "params": params}
        started = self.clock()
        try:
            value, fold_seconds, fold_scores = self.cross_validate(trial, with_params(self.config, params))
        except _OverBudget:
            study.tell(trial, state=state.PRUNED)
            record.update(score=None, state="pruned", pruned_by="budget")
            self.stopped_by = "budget"
        except optuna.TrialPruned:
            study.tell(trial, state=state.PRUNED)
            record.update(score=None, state="pruned", pruned_by="median")
        except (TrainingFailed, ValueError, TypeError, ArithmeticError, RuntimeError) as exc:
            study.tell(trial, state=state.FAIL)
            reason = exc.reason if isinstance(exc, TrainingFailed) else f"{type(exc).__name__}: {exc}"
            record.update(score=None, state="failed", error=reason[:500])
        else:
            study.tell(trial, value)
            record.update(score=value, state="complete")
            self.fold_seconds[trial.number] = fold_seconds
            self.fold_scores[trial.number] = fold_scores
            if self.best is None or _better(value, self.best["score"], self.settings.direction):
                self.best = record
        record["seconds"] = round(self.clock() - started, 3)
        self.trials.append(record)

    def cross_validate(self, trial, config: TrainingConfig) -> tuple[float, float, list[float]]:
        """(mean score over the folds, mean fold-fit seconds, each fold's score); the clock is checked between
        folds and, through the epoch hook, between forest stages and network epochs (_OverBudget)."""
        import optuna

        scores, times = [], []
        for fold, rows in enumerate(self.splits):
            fold_started, steps = self.clock(), 0

            def check(fold_started=fold_started) -> None:
                current = float(np.mean(times)) if times else self.clock() - fold_started
                if self.elapsed() + self.reserve(current) > self.settings.budget_seconds:
                    raise _OverBudget

            def on_epoch(epoch, training_loss, validation_loss, fold=fold, check=check) -> None:
                nonlocal steps
                steps += 1
                check()
                if self.model_type == "neural_network":
                    trial.report(self.sign * float(validation_loss), fold * self.epoch_cap + steps)
                    if trial.should_prune():
                        raise optuna.TrialPruned

            if fold:
                check()
            split = {name: (self.frame.iloc[rows[name]], self.y[rows[name]]) for name in ("fit", "validation")}
            with warnings.catch_warnings(), _torch_seeded(self.model_type, self.config.random_seed):
                warnings.simplefilter("ignore")
                outcome = fit_model(self.model_type, self.task, self.features, split, self.classes, config, on_epoch)
            times.append(self.clock() - fold_started)
            held_out = rows["held_out"]
            scores.append(fold_score(self.settings.metric, outcome.model, self.frame.iloc[held_out],
                                     self.y[held_out], self.classes))
        if all(math.isnan(s) for s in scores):
            raise TrainingFailed(f"{self.settings.metric} is undefined on every fold")
        value = float(np.nanmean(scores))
        if not math.isfinite(value):
            raise TrainingFailed(f"{self.settings.metric} is not finite ({value})")
        return value, float(np.mean(times)), scores

    def progress(self) -> dict:
        """The last trial as the progress callback's `tuning` object."""
        last = self.trials[-1]
        return {"trial": last["number"], "trials_done": len(self.trials), "max_trials": self.settings.max_trials,
                "budget_seconds": self.settings.budget_seconds, "state": last["state"], "score": last["score"],
                "best_score": self.best["score"] if self.best else None, "metric": self.settings.metric,
                "elapsed_seconds": round(self.elapsed(), 3)}

    def selection(self) -> Selection:
        return select(self.trials, self.fold_scores, self.best, self.settings.direction)

    def report(self, wall: float, version: str, selection: Selection) -> dict:
        """training_metrics["tuning"] (the pipeline adds final_fit_seconds)."""
        space = searchable(self.model_type, self.task)
        first = self.trials[0]
        repeats = repeats_for(len(self.y))
        repeated = f", repeated {repeats} times" if repeats > 1 else ""
        return {
            "metric": self.settings.metric,
            "direction": self.settings.direction,
            "folds": FOLDS,
            "repeats": repeats,
            "cv": f"{'stratified ' if self.task == 'classification' else ''}{FOLDS}-fold cross-validation of the "
                  f"training split (shuffled, seeded from random_seed{repeated}); the test split is not used",
            "sampler": f"optuna {version} TPESampler(seed={self.config.random_seed}); trial 0 is the defaults",
            "pruner": ("MedianPruner on the validation loss per epoch" if self.model_type == "neural_network"
                       else "none (trials stop early only at the budget)"),
            "budget_seconds": self.settings.budget_seconds,
            "max_trials": self.settings.max_trials,
            "searched": sorted(space - self.fixed),
            "fixed": sorted(space & self.fixed),
            "trials": self.trials,
            "best_trial": selection.chosen["number"],
            "best_params": dict(selection.chosen["params"]),
            "best_score": selection.chosen["score"],
            "selection": selection.report(),
            "default_score": first["score"] if first["number"] == 0 and first["state"] == "complete" else None,
            "wall_seconds": round(wall, 3),
            "reserved_final_fit_seconds": round(self.reserve(), 3),
            "stopped_by": self.stopped_by or "max_trials",
        }

    def no_trial_reason(self, wall: float) -> str:
        trials, name = self.trials, self.model_type
        if trials and trials[-1].get("pruned_by") == "budget":
            return (f"tuning budget too small for one trial of {name}: budget_seconds {self.settings.budget_seconds} "
                    f"ran out after {wall:.1f} s, during trial {trials[-1]['number']} ({FOLDS}-fold "
                    "cross-validation plus the time kept for the final fit); raise "
                    "training_config.tuning.budget_seconds")
        failed = [t for t in trials if t["state"] == "failed"]
        if failed:
            return (f"tuning: no trial of {name} completed ({len(failed)} of {len(trials)} failed); the first: "
                    f"{failed[0]['error']}")
        return f"tuning: no trial of {name} completed ({len(trials)} pruned)"


# Every fold is scored through here (a test can watch which rows are scored).
fold_score = score


def searchable(model_type: str, task: str) -> set[str]:
    """The dimensions of `model_type`'s search space for `task` (the table above)."""
    if model_type == "decision_tree":
        return {"max_depth", "min_samples_leaf"} | ({"criterion"} if task == "classification" else set())
    if model_type == "random_forest":
        return {"n_estimators", "max_depth", "min_samples_leaf", "max_features"}
    if model_type == "regression":
        return {"C", "penalty"} if task == "classification" else {"alpha"}
    return {"learning_rate", "batch_size", "hidden_layers", "dropout", "weight_decay", "activation"}


@contextlib.contextmanager
def _torch_seeded(model_type: str, seed: int) -> Iterator[None]:
    """A network's fold fit with torch's global generator (dropout draws from it) seeded, and restored after:
    a trial's score depends on its parameters only, not on the trials before it."""
    if model_type != "neural_network":
        yield
        return
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _better(value: float, than: float, direction: str) -> bool:
    return value > than if direction == "maximize" else value < than


def record_tuning(block: dict, limit: int = RECORD_TRIALS) -> dict:
    """The tuning report for the model record: at most `limit` trials (trial 0, the best, then the latest);
    the manifest keeps all of them."""
    trials = block.get("trials") or []
    if len(trials) <= limit:
        return block
    keep = {trials[0]["number"], block.get("best_trial")}
    for trial in reversed(trials):
        if len(keep) >= limit:
            break
        keep.add(trial["number"])
    return {**block, "trials": [t for t in trials if t["number"] in keep], "trials_total": len(trials),
            "trials_kept": "trial 0, the best and the latest; the manifest has every trial"}
