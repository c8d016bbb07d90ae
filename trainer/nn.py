"""The PyTorch MLP: architecture from a plain config, training with early stopping on validation loss.

Nothing here touches global RNG state or thread settings: initialisation runs in a
forked RNG seeded from the config and each epoch's order comes from a generator seeded by (seed, epoch).
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from trainer.errors import TrainingFailed
from trainer.hyperparameters import hyperparameter_problem
from trainer.stream import BLOCK_ROWS as _EVAL_CHUNK  # one evaluation chunk = one block of the streamed passes

DEFAULT_EPOCHS = 100
DEFAULT_BATCH_SIZE = 128
DEFAULT_LEARNING_RATE = 1e-3
DEFAULT_PATIENCE = 10


@dataclass(frozen=True)
class MLPParams:
    hidden_layers: tuple[int, ...] = (64, 32)
    dropout: float = 0.0
    weight_decay: float = 0.0
    activation: str = "relu"
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = DEFAULT_BATCH_SIZE
    learning_rate: float = DEFAULT_LEARNING_RATE
    patience: int = DEFAULT_PATIENCE
    seed: int = 0


def mlp_params(hyperparameters: dict, *, epochs, batch_size, learning_rate, patience, seed) -> MLPParams:
    """Validated MLP parameters (the schema in `trainer.hyperparameters`); an unknown or invalid one fails naming it."""
    problem = hyperparameter_problem("neural_network", hyperparameters)
    if problem:
        raise TrainingFailed(problem[1])
    return MLPParams(
        hidden_layers=tuple(hyperparameters.get("hidden_layers", [64, 32])),
        dropout=float(hyperparameters.get("dropout", 0.0)),
        weight_decay=float(hyperparameters.get("weight_decay", 0.0)),
        activation=hyperparameters.get("activation", "relu"),
        epochs=epochs or DEFAULT_EPOCHS,
        batch_size=batch_size or DEFAULT_BATCH_SIZE,
        learning_rate=learning_rate or DEFAULT_LEARNING_RATE,
        patience=patience or DEFAULT_PATIENCE,
        seed=seed,
    )


def build_network(arch: dict):
    """An nn.Sequential from the architecture config saved beside the state_dict."""
    from torch import nn

    activation = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}[arch["activation"]]
    layers, width = [], arch["input_dim"]
    for hidden in arch["hidden_layers"]:
        layers += [nn.Linear(width, hidden), activation()]
        if arch["dropout"] > 0:
            layers.append(nn.Dropout(arch["dropout"]))
        width = hidden
    layers.append(nn.Linear(width, arch["output_dim"]))
    return nn.Sequential(*layers)


def device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def network_outputs(network, x: np.ndarray) -> np.ndarray:
    """Raw outputs (logits, or standardised regression values) for a float32 design matrix, chunked."""
    import torch

    network.eval()
    dev = next(network.parameters()).device
    outputs = []
    with torch.no_grad():
        for start in range(0, len(x), _EVAL_CHUNK):
            chunk = torch.from_numpy(np.ascontiguousarray(x[start : start + _EVAL_CHUNK], dtype=np.float32))
            outputs.append(network(chunk.to(dev)).cpu().numpy())
    if not outputs:
        return np.zeros((0, network[-1].out_features), dtype=np.float32)
    return np.concatenate(outputs).astype("float64")


class ArrayBatches:
    """Training rows held in memory (`x` float32, `y`): an epoch is their `epoch_permutation`, `batch_size` rows
    at a time. The streamed counterpart is `trainer.sources.StreamBatches` (the same order when the rows fit
    its shuffle buffer)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, seed: int) -> None:
        self.x, self.y, self.seed = np.ascontiguousarray(x, dtype=np.float32), np.asarray(y), seed

    @property
    def input_dim(self) -> int:
        return int(self.x.shape[1])

    def epoch(self, number: int, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        from trainer.stream import epoch_permutation

        order = epoch_permutation(len(self.y), self.seed, number)
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            yield self.x[index], self.y[index]


class Batches(Protocol):
    """What `fit_mlp` trains on: the fit rows' targets (`y`, in row order), the width of a design row, and an
    epoch's mini-batches ((x float32, y) of `batch_size` rows, the last of an epoch possibly fewer)."""

    y: np.ndarray

    @property
    def input_dim(self) -> int: ...

    def epoch(self, number: int, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]: ...


@dataclass
class MLPFit:
    network: object
    arch: dict
    history: list[dict]
    best_epoch: int
    stopped_early: bool


def fit_mlp(
    train: Batches,
    x_val: np.ndarray,
    y_val: np.ndarray,
    task: str,
    n_outputs: int,
    params: MLPParams,
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> MLPFit:
    """Adam on mini-batches; keeps the weights of the epoch with the lowest validation loss.

    Classification: cross-entropy on logits, losses reported as log loss. Regression: MSE on a
    standardised target, losses reported in squared target units.
    """
    import torch

    dev = device()
    y_fit = train.y
    y_mean, y_std = 0.0, 1.0
    if task == "regression":
        y_mean = float(np.mean(y_fit))
        y_std = float(np.std(y_fit)) or 1.0
    arch = {
        "input_dim": train.input_dim,
        "hidden_layers": list(params.hidden_layers),
        "output_dim": int(n_outputs),
        "dropout": params.dropout,
        "activation": params.activation,
        "task": task,
        "target_mean": y_mean,
        "target_std": y_std,
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(params.seed)
        network = build_network(arch).to(dev)
    target, loss_fn, scale = _objective(task, y_mean, y_std, dev)
    optimiser = torch.optim.Adam(network.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)
    history, best_loss, best_epoch, best_state, stale = [], math.inf, 0, None, 0
    n = len(y_fit)
    for epoch in range(1, params.epochs + 1):
        network.train()
        total = 0.0
        for x_batch, y_batch in train.epoch(epoch, params.batch_size):
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(network(torch.from_numpy(x_batch).to(dev)), target(y_batch))
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(y_batch)
        train_loss = total / n * scale
        val_loss = _validation_loss(network, x_val, y_val, task, y_mean, y_std)
        if not math.isfinite(train_loss) or not math.isfinite(val_loss):
            raise TrainingFailed(
                f"neural_network diverged at epoch {epoch} (loss is not finite); lower training_config.learning_rate"
            )
        history.append({"epoch": epoch, "training_loss": train_loss, "validation_loss": val_loss})
        if on_epoch is not None:
            on_epoch(epoch, train_loss, val_loss)
        if val_loss < best_loss - 1e-12:
            best_loss, best_epoch, stale = val_loss, epoch, 0
            best_state = copy.deepcopy(network.state_dict())
        else:
            stale += 1
            if stale >= params.patience:
                break
    network.load_state_dict(best_state)
    network.eval()
    stopped = len(history) < params.epochs
    return MLPFit(network=network, arch=arch, history=history, best_epoch=best_epoch, stopped_early=stopped)


def _objective(task: str, y_mean: float, y_std: float, dev):
    """(targets of a mini-batch as a tensor, the loss, the factor that reports it in target units)."""
    import torch

    if task == "classification":
        def target(y):
            return torch.from_numpy(np.asarray(y, dtype=np.int64)).to(dev)
        return target, torch.nn.CrossEntropyLoss(), 1.0

    def standardised(y):
        return torch.from_numpy(((y - y_mean) / y_std).astype(np.float32)).reshape(-1, 1).to(dev)
    return standardised, torch.nn.MSELoss(), y_std**2


def _validation_loss(network, x_val, y_val, task, y_mean, y_std) -> float:
    from trainer.metrics import log_loss, mean_squared_error

    outputs = network_outputs(network, x_val)
    if task == "classification":
        return log_loss(y_val, softmax(outputs))
    return mean_squared_error(y_val, outputs[:, 0] * y_std + y_mean)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)
