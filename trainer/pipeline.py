"""Train and evaluate on an in-memory DataFrame: pure, no I/O.

`train_and_evaluate` is what the trainer process runs between loading data and
saving the artifact, and what benchmarks call directly. `held_out_split` rebuilds
the test rows of a run from its manifest, so anyone can re-check the reported metrics.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from trainer.errors import TrainingFailed
from trainer.features import FeaturePlan, infer_task, input_schema, plan_features, target_values
from trainer.fitted import SklearnModel, TorchModel
from trainer.memory import release_free_memory
from trainer.metrics import (
    finite_only,
    label_metrics,
    log_loss,
    log_loss_sum,
    mean_squared_error,
    permutation_importance,
    regression_metrics,
)
from trainer.models import EpochHook, fit_model
from trainer.ontology import Column, choose_target, parse_columns
from trainer.sources import FrameRows, Rows, StreamRows, network_input
from trainer.spec import TrainingConfig
from trainer.splitting import METHOD as SPLIT_METHOD
from trainer.splitting import SKLEARN_METHOD, can_stratify, choose
from trainer.stream import DEFAULT_BUFFER_ROWS, PartStream, increasing_positions

if TYPE_CHECKING:
    from trainer.tuning import TrialHook

MIN_ROWS = 10
IMPORTANCE_ROWS = 2000
# The training split's predictions for the reference are made this many rows at a time (bounded memory).
REFERENCE_BATCH_ROWS = 100_000
# The tree types and the linear model fit on at most this many of the fit rows (a reproducible sample,
# stratified for classification; TRAINER_FIT_SAMPLE_ROWS); the test metrics are over the whole test split.
DEFAULT_FIT_SAMPLE_ROWS = 2_000_000
SAMPLED_TYPES = ("decision_tree", "random_forest", "regression")
# Validation losses (early stopping, the learning curve) are over at most this many validation rows, every type.
VALIDATION_SAMPLE_ROWS = 200_000
# The training reference of monitoring (`training_reference`) is over at most this many training rows.
REFERENCE_ROWS = 200_000


@dataclass
class TrainingResult:
    task: str
    model: SklearnModel | TorchModel
    performance_metrics: dict
    training_metrics: dict
    target: dict
    input_schema: list[dict]
    excluded_columns: dict[str, str]
    split: dict
    config_usage: dict[str, str]
    warnings: list[str] = field(default_factory=list)
    # The training split's distributions (`training_reference`): the manifest's "reference".
    reference: dict | None = None


def train_and_evaluate(
    frame: pd.DataFrame,
    ontology_ttl: str,
    model_type: str,
    training_config: dict | TrainingConfig,
    on_epoch: EpochHook | None = None,
    on_trial: TrialHook | None = None,
    fit_sample_rows: int | None = DEFAULT_FIT_SAMPLE_ROWS,
) -> TrainingResult:
    """Fit `model_type` on `frame` as the ontology describes it; metrics are on the held-out split.

    A tree type or the linear model whose fit split has more than `fit_sample_rows` rows fits on a sample
    of that many (`sample_fit_rows`; None: never); `split.fit_sample` records it. The test split is whole.

    With training_config.tuning, hyperparameters are searched first (`trainer.tuning.tune`, on the training
    split only; `on_trial` hears of every trial) and the best are fitted here the normal way."""
    config = _config(training_config, model_type)
    columns = parse_columns(ontology_ttl)
    target = choose_target(columns, config.target_column)
    missing = [c.name for c in columns if c.name not in frame.columns]
    if missing:
        raise TrainingFailed(f"column(s) declared in the ontology are missing from the data: {', '.join(missing)}")
    rows_read = len(frame)
    frame, y_raw, task = prepare_rows(frame, target)
    classes, y = encode_target(y_raw, task)
    plan = plan_features(frame, columns, target)
    prepared = Prepared(task=task, y=y, classes=classes, target=target, plan=plan)
    return _train(FrameRows(frame, rows_read), prepared, model_type, config, on_epoch, on_trial, fit_sample_rows)


def train_streamed(
    stream: PartStream,
    ontology_ttl: str,
    model_type: str,
    training_config: dict | TrainingConfig,
    on_epoch: EpochHook | None = None,
    on_trial: TrialHook | None = None,
    fit_sample_rows: int | None = DEFAULT_FIT_SAMPLE_ROWS,
    buffer_rows: int = DEFAULT_BUFFER_ROWS,
) -> TrainingResult:
    """`train_and_evaluate` on data read part by part, in memory that does not grow with the row count.

    A pass (`trainer.stream.scan`) reads the target and the string columns' levels, which decide the task and
    the features as for a frame; the tree types and the linear model then fit on their gathered (capped) fit
    sample, the network trains from the stream (`trainer.sources.StreamBatches`) with a preprocessor fitted
    from streamed statistics, and the test metrics are computed block by block over the whole test split.
    On data small enough for both, the result equals `train_and_evaluate`'s on the concatenated parts (for
    the network: when its fit rows fit the `buffer_rows` shuffle buffer; a larger table is shuffled by part
    and then within the buffer)."""
    from trainer.features import plan_features_from_stats
    from trainer.stream import scan

    config = _config(training_config, model_type)
    columns = parse_columns(ontology_ttl)
    target = choose_target(columns, config.target_column)
    text = [c for c in columns if c.name != target.name and c.kind == "string"]
    scanned = scan(stream, target, text, seed=config.random_seed)
    if len(scanned.y) < MIN_ROWS:  # prepare_rows raised already for a frame; a stream says it the same way
        raise TrainingFailed(f"insufficient training data: {len(scanned.y)} row(s) with a value in target column "
                             f"{target.name!r} (need at least {MIN_ROWS})")
    plan = plan_features_from_stats(columns, target, scanned.stats)
    prepared = Prepared(task=scanned.task, y=scanned.y, classes=scanned.classes, target=target, plan=plan)
    source = StreamRows(stream, scanned.rows, buffer_rows)
    del scanned  # its row positions live on in `source` only when some rows had no target
    return _train(source, prepared, model_type, config, on_epoch, on_trial, fit_sample_rows)


@dataclass(frozen=True)
class Prepared:
    """What the first look at the data decides: the task, the encoded target of every row with one, the
    classes, and which columns are features."""

    task: str
    y: np.ndarray
    classes: list | None
    target: Column
    plan: FeaturePlan


def _config(training_config: dict | TrainingConfig, model_type: str) -> TrainingConfig:
    if isinstance(training_config, TrainingConfig):
        return training_config
    return TrainingConfig.from_dict(training_config, model_type)


def _train(rows: Rows, prepared: Prepared, model_type: str, config: TrainingConfig, on_epoch, on_trial,
           fit_sample_rows: int | None) -> TrainingResult:
    task, y, classes, plan = prepared.task, prepared.y, prepared.classes, prepared.plan
    positions = split_positions(y, task, config)
    samples: dict[str, dict] = {}  # the split's records of the samples actually drawn

    def sampled(name: str, chosen: np.ndarray, cap: int) -> np.ndarray:
        chosen, record = sample_fit_rows(y, chosen, cap, task, config.random_seed)
        if record is not None:
            samples[name] = record
        return chosen

    if model_type in SAMPLED_TYPES and fit_sample_rows is not None:
        positions["fit"] = sampled("fit_sample", positions["fit"], fit_sample_rows)
    positions["validation"] = sampled("validation_sample", positions["validation"], VALIDATION_SAMPLE_ROWS)

    def train_rows() -> np.ndarray:  # made when needed: not held alongside the network's fit input
        return np.sort(np.concatenate([positions["fit"], positions["validation"]]))

    validation = (rows.gather(positions["validation"]), y[positions["validation"]])
    tuned = None
    if config.tuning:
        from trainer.tuning import tune  # optuna loads only for a tuned run

        tuning_rows = (train_rows() if fit_sample_rows is None
                       else sampled("tuning_sample", train_rows(), fit_sample_rows))
        tuned = tune(model_type, task, plan.features, rows.gather(tuning_rows), y[tuning_rows], classes, config,
                     on_trial=on_trial)
        config = tuned.config
        del tuning_rows
    if model_type == "neural_network":
        fit = network_input(rows, positions["fit"], y[positions["fit"]], plan.features, config.random_seed)
    else:
        fit = (rows.gather(positions["fit"]), y[positions["fit"]])
    release_free_memory()  # the passes above leave free, fragmented heap pages; the fit is the run's peak
    fit_started = time.monotonic()
    outcome = fit_model(model_type, task, plan.features, {"fit": fit, "validation": validation}, classes, config,
                        on_epoch)
    del fit
    if tuned is not None:
        final = time.monotonic() - fit_started
        outcome.training_metrics["tuning"] = {**tuned.report, "final_fit_seconds": round(final, 3),
                                              "search_and_final_fit_seconds": round(tuned.report["wall_seconds"]
                                                                                    + final, 3)}
    model = outcome.model
    performance = evaluate_blocks(model, rows.blocks(positions["test"]), y[positions["test"]], task, classes)
    performance.update(importance_entries(model, rows, positions["fit"], y, plan.features, task, config))
    reference = training_reference(model, rows, (positions["fit"], positions["validation"]), plan.features, task,
                                   classes, config.random_seed)
    dropped: list[str] = []
    performance = finite_only(performance, dropped=dropped)
    training = finite_only(outcome.training_metrics, dropped=dropped)
    notes = outcome.warnings + [f"metric {path} was not finite and is omitted" for path in dropped]
    if "fit_sample" in samples:
        record = samples["fit_sample"]
        notes.append(f"fitted on a sample of {record['rows_sampled']:,} of the {record['rows_total']:,} "
                     f"fit rows (TRAINER_FIT_SAMPLE_ROWS {record['cap']:,}); test metrics are over all "
                     f"{len(positions['test']):,} test rows")
    if "validation_sample" in samples:
        record = samples["validation_sample"]
        notes.append(f"validation losses are over a sample of {record['rows_sampled']:,} of the "
                     f"{record['rows_total']:,} validation rows")
    preprocessor = model.preprocessor if isinstance(model, TorchModel) else model.pipeline[:-1]
    return TrainingResult(
        task=task,
        model=model,
        performance_metrics=performance,
        training_metrics=training,
        target={"name": prepared.target.name, "type": prepared.target.kind, "classes": classes},
        input_schema=input_schema(preprocessor, plan.features),
        excluded_columns=plan.excluded,
        split={
            "method": SPLIT_METHOD,
            "rows_with_target": len(y),
            "train_test_split": config.train_test_split,
            "validation_split": config.validation_split,
            "random_seed": config.random_seed,
            **{f"{name}_rows": len(rows_) for name, rows_ in positions.items()},
            "test_positions_sha256": positions_digest(positions["test"]),
            **samples,
        },
        config_usage=outcome.config_usage,
        warnings=notes,
        reference=reference,
    )


def prepare_rows(frame: pd.DataFrame, target: Column) -> tuple[pd.DataFrame, pd.Series, str]:
    """Rows with a target value (renumbered 0..n-1), the clean target and the task."""
    y, keep, task = prepare_target(frame[target.name], target)
    return frame.loc[keep].reset_index(drop=True), y, task


def prepare_target(values: pd.Series, target: Column) -> tuple[pd.Series, np.ndarray, str]:
    """`prepare_rows` of the target column alone: the clean target of the rows with a value (renumbered
    0..n-1), which rows those are (a mask over `values`) and the task. No copy when every row has a value and
    `values` is numbered 0..n-1 already."""
    task = infer_task(target, values)
    y = target_values(target, values, task)
    keep = y.notna().to_numpy()
    if keep.sum() < MIN_ROWS:
        raise TrainingFailed(
            f"insufficient training data: {int(keep.sum())} row(s) with a value in target column "
            f"{target.name!r} (need at least {MIN_ROWS})"
        )
    if not keep.all() or not y.index.equals(pd.RangeIndex(len(y))):
        y = y[keep].reset_index(drop=True)
    if isinstance(y.dtype, pd.BooleanDtype | pd.Int64Dtype):
        y = y.astype(bool if isinstance(y.dtype, pd.BooleanDtype) else "int64")  # no NA left: plain numpy types
    return y, keep, task


def encode_target(y: pd.Series, task: str) -> tuple[list | None, np.ndarray]:
    if task == "regression":
        return None, y.to_numpy(dtype="float64")
    classes = sorted(y.unique().tolist(), key=lambda v: (str(type(v)), v))
    if len(classes) < 2:
        raise TrainingFailed(f"target has a single class ({classes[0]!r}); classification needs at least two")
    # Codes by position in `classes` (what a value -> index map gives), without a Python object per row, in the
    # smallest integer type that holds them (int8 below 128 classes): the one per-row array every type keeps.
    codes = pd.Categorical(y, categories=classes).codes
    if (codes < 0).any():
        raise AssertionError("a target value outside its own classes")
    return [_native(c) for c in classes], codes


def _native(value):
    return value.item() if isinstance(value, np.generic) else value


def split_positions(y: np.ndarray, task: str, config: TrainingConfig,
                    method: str = SPLIT_METHOD) -> dict[str, np.ndarray]:
    """Row positions (increasing) of the fit, validation and test splits, a function of y and config alone
    (`trainer.splitting`; `method` SKLEARN_METHOD rebuilds an older manifest's split)."""
    positions = np.arange(len(y))
    train, test = _split(positions, y, task, config.train_test_split, config.random_seed, method)
    fit, validation = _split(train, y[train], task, 1.0 - config.validation_split, config.random_seed, method)
    return {"fit": fit, "validation": validation, "test": test}


def sample_fit_rows(y: np.ndarray, fit: np.ndarray, cap: int, task: str,
                    seed: int) -> tuple[np.ndarray, dict | None]:
    """`fit`, or a reproducible sample of `cap` of its positions (stratified for classification) and the record
    of it when there are more."""
    if len(fit) <= cap:
        return fit, None
    from trainer.stream import sample_positions

    return sample_positions(y[fit], fit, cap, task, seed)


def _split(positions, y, task, train_fraction, seed, method: str = SPLIT_METHOD):
    """(the rest, the chosen `1 - train_fraction` of `positions`), each in the order of `positions`; `y` is
    aligned with `positions`."""
    n_test = max(1, round(len(positions) * (1.0 - train_fraction)))
    if n_test >= len(positions):
        raise TrainingFailed(f"insufficient training data: {len(positions)} rows cannot be split further")
    stratify = task == "classification" and can_stratify(y, n_test)
    if method == SKLEARN_METHOD:  # a manifest written before trainer.splitting
        from sklearn.model_selection import train_test_split

        first, second = train_test_split(positions, test_size=n_test, random_state=seed,
                                         stratify=y if stratify else None)
        return np.sort(first), np.sort(second)
    chosen = choose(y, n_test, seed, stratify)
    return positions[~chosen], positions[chosen]


def positions_digest(positions: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(positions, dtype="<i8").tobytes()).hexdigest()


def evaluate_blocks(model, blocks, y: np.ndarray, task: str, classes: list | None) -> dict:
    """Test metrics of `model` over the rows of `blocks` (in order, `len(y)` rows in all; `y` theirs), predicted
    one block at a time (a classifier's labels and probabilities from one prediction). What is kept across
    blocks is what `label_metrics` needs: the predicted codes (in the smallest integer type holding them), the
    log loss's sum and, for two classes, the positive class's probabilities; never every class's."""
    if task == "classification":
        encoded = np.empty(len(y), dtype=np.min_scalar_type(max(1, len(classes) - 1)))
    else:
        encoded = np.empty(len(y), dtype="float64")
    positive, loss_sum, filled = None, 0.0, 0
    for block in blocks:
        end = filled + len(block)
        if end > len(y):
            raise ValueError(f"the blocks hold more than the {len(y):,} test rows")
        if task == "classification":
            encoded[filled:end], proba = model.predict_encoded_and_proba(block)
            loss_sum += log_loss_sum(y[filled:end], proba)
            if len(classes) == 2:
                if positive is None:  # the model's own precision (float32 for the network)
                    positive = np.empty(len(y), dtype=proba.dtype)
                positive[filled:end] = proba[:, 1]
        else:
            encoded[filled:end] = model.predict_encoded(block)
        filled = end
    if not filled:
        raise TrainingFailed("no test rows")
    if filled != len(y):
        raise ValueError(f"the blocks hold {filled:,} rows, not the {len(y):,} test rows")
    if task == "classification":
        return label_metrics(y, encoded, classes, loss_sum / len(y), positive)
    return regression_metrics(y, encoded)


def importance_entries(model, rows: Rows, fit: np.ndarray, y: np.ndarray, features: list[Column], task: str,
                       config: TrainingConfig) -> dict:
    """`feature_importance` and `feature_importance_method` of the performance metrics (none computed when
    `training_config.diagnostics` is minimal)."""
    if config.diagnostics == "minimal":
        return {"feature_importance": None,
                "feature_importance_method": "not computed (training_config.diagnostics minimal)"}
    return {"feature_importance": importance(model, rows, fit, y, features, task, config.random_seed),
            "feature_importance_method": ("permutation: mean increase of training-split loss when one input column "
                                          "is shuffled, normalised to sum 1")}


def importance(model, rows: Rows, fit: np.ndarray, y: np.ndarray, features: list[Column], task: str,
               seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    chosen = fit[np.sort(rng.choice(len(fit), min(IMPORTANCE_ROWS, len(fit)), replace=False))]
    frame, y = rows.gather(chosen).reset_index(drop=True), y[chosen]
    if task == "classification":
        def loss(probabilities):
            return log_loss(y, probabilities)
        predict = model.predict_proba
    else:
        def loss(predicted):
            return mean_squared_error(y, predicted)
        predict = model.predict_encoded
    return permutation_importance(frame, [c.name for c in features], predict, loss, seed)


def training_reference(model, rows: Rows, train: tuple[np.ndarray, np.ndarray], features: list[Column], task: str,
                       classes: list | None, seed: int) -> dict:
    """The distributions of the training split (`train`: the fit and the validation positions, never test)
    that monitoring compares new data with (`trainer.drift`): each input column as read, and the model's
    predictions on those rows (class labels as text, or predicted values), over at most REFERENCE_ROWS of them:
    a seeded sample of the sorted training positions, drawn without making that sorted array."""
    from trainer.drift import reference

    total = sum(len(part) for part in train)
    if total > REFERENCE_ROWS:
        ranks = np.sort(np.random.default_rng(seed).choice(total, REFERENCE_ROWS, replace=False))
        chosen = sorted_union_at(*train, ranks)
    else:
        chosen = np.sort(np.concatenate(train))
    frame = rows.gather(chosen)
    predicted = np.concatenate([model.predict_encoded(frame.iloc[start:start + REFERENCE_BATCH_ROWS])
                                for start in range(0, len(frame), REFERENCE_BATCH_ROWS)])
    if task == "classification":
        labels = np.asarray([str(c) for c in classes], dtype=object)[predicted.astype("int64")]
        prediction = reference(pd.Series(labels, dtype=object), "string")
    else:
        prediction = reference(pd.Series(predicted, dtype="float64"), "number")
    return {
        "split": "train (the fit and validation rows; the test rows are left out)",
        "rows": len(chosen),
        **({"sampled_from": total} if len(chosen) < total else {}),
        "features": {c.name: reference(frame[c.name], c.kind) for c in features},
        "prediction": prediction,
    }


def sorted_union_at(first: np.ndarray, second: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """`np.sort(np.concatenate([first, second]))[ranks]` for disjoint position arrays, without making that
    array: memory is the smaller array's size and the ranks'."""
    large, small = sorted((increasing_positions(first), increasing_positions(second)), key=len, reverse=True)
    small_ranks = np.arange(len(small)) + np.searchsorted(large, small)  # each small value's rank in the union
    ranks = np.asarray(ranks, dtype="int64")
    before = np.searchsorted(small_ranks, ranks)  # small values ranked below each rank
    from_small = before < len(small)
    from_small[from_small] = small_ranks[before[from_small]] == ranks[from_small]
    out = np.empty(len(ranks), dtype="int64")
    out[from_small] = small[before[from_small]]
    out[~from_small] = large[ranks[~from_small] - before[~from_small]]
    return out


def held_out_split(frame: pd.DataFrame, manifest: dict[str, Any]) -> tuple[pd.DataFrame, list]:
    """The test rows and their true target values of the run that wrote `manifest`, from the same data.

    Raises ValueError if the rebuilt split does not match the manifest's digest (different data or order).
    """
    target = Column(name=manifest["target"]["name"], kind=manifest["target"]["type"])
    frame, y, task = prepare_rows(frame, target)
    if task != manifest["task"]:
        raise ValueError(f"task of this data is {task}, the manifest says {manifest['task']}")
    split = manifest["split"]
    config = TrainingConfig(
        train_test_split=split["train_test_split"],
        validation_split=split["validation_split"],
        random_seed=split["random_seed"],
    )
    if task == "classification":
        index = {value: i for i, value in enumerate(manifest["target"]["classes"])}
        encoded = y.map(index).to_numpy(dtype="int64")
    else:
        encoded = y.to_numpy(dtype="float64")
    test = split_positions(encoded, task, config, split.get("method", SPLIT_METHOD))["test"]
    if positions_digest(test) != split["test_positions_sha256"]:
        raise ValueError("rebuilt test split does not match the manifest (different data or row order)")
    return frame.iloc[test].reset_index(drop=True), y.iloc[test].tolist()
