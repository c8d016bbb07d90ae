"""The PyTorch MLP: architecture from a plain config, training with early stopping on validation loss.

Nothing here touches global RNG state or thread settings: initialisation runs in a
forked RNG seeded from the config and batches are drawn from a local generator.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from trainer.errors import TrainingFailed
from trainer.hyperparameters import hyperparameter_problem

DEFAULT_EPOCHS = 100
DEFAULT_BATCH_SIZE = 128
DEFAULT_LEARNING_RATE = 1e-3
DEFAULT_PATIENCE = 10
_EVAL_CHUNK = 65536


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


@dataclass
class MLPFit:
    network: object
    arch: dict
    history: list[dict]
    best_epoch: int
    stopped_early: bool


def fit_mlp(
    x_fit: np.ndarray,
    y_fit: np.ndarray,
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
    y_mean, y_std = 0.0, 1.0
    if task == "regression":
        y_mean = float(np.mean(y_fit))
        y_std = float(np.std(y_fit)) or 1.0
    arch = {
        "input_dim": int(x_fit.shape[1]),
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
    generator = torch.Generator().manual_seed(params.seed)
    x_train = torch.from_numpy(np.ascontiguousarray(x_fit, dtype=np.float32)).to(dev)
    if task == "classification":
        y_train = torch.from_numpy(y_fit.astype(np.int64)).to(dev)
        loss_fn, scale = torch.nn.CrossEntropyLoss(), 1.0
    else:
        y_train = torch.from_numpy(((y_fit - y_mean) / y_std).astype(np.float32)).reshape(-1, 1).to(dev)
        loss_fn, scale = torch.nn.MSELoss(), y_std**2
    optimiser = torch.optim.Adam(network.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)
    history, best_loss, best_epoch, best_state, stale = [], math.inf, 0, None, 0
    n = len(x_train)
    for epoch in range(1, params.epochs + 1):
        network.train()
        order = torch.randperm(n, generator=generator).to(dev)
        total = 0.0
        for start in range(0, n, params.batch_size):
            index = order[start : start + params.batch_size]
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(network(x_train[index]), y_train[index])
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(index)
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
