"""Fitted models with one prediction path, shared by training-time evaluation and the loader.

`SklearnModel` is a scikit-learn Pipeline (preprocessing + estimator) saved with skops.
`TorchModel` is the fitted preprocessing (skops) + the network's state_dict + its
architecture config (JSON); the module itself is never pickled. Class targets are
trained on their index in `classes`, and predictions are mapped back to the labels.

skops only loads types listed in `TRUSTED_TYPES`, which lives here, in our code: a
file that needs anything else is refused. skops is imported through `skops_io()` only,
which keeps torch out of a process that has not loaded it (see there).
"""
from __future__ import annotations

import importlib.abc
import io
import json
import sys
import threading

import numpy as np
import pandas as pd

from trainer.errors import ArtifactError

SKLEARN_FILE = "model.skops"
PREPROCESSOR_FILE = "preprocessor.skops"
STATE_DICT_FILE = "network.pt"
ARCH_FILE = "network.json"

TRUSTED_TYPES = [
    "trainer.features.FrameCoercer",
    "sklearn.pipeline.Pipeline",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._encoders.OneHotEncoder",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._tree.Tree",  # not trusted by skops by default; plain arrays inside
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.linear_model._ridge.Ridge",
    "numpy.dtype",
]


def as_frame(rows) -> pd.DataFrame:
    if isinstance(rows, pd.DataFrame):
        return rows
    return pd.DataFrame(list(rows))


class SklearnModel:
    def __init__(self, pipeline, task: str, classes: list | None) -> None:
        self.pipeline = pipeline
        self.task = task
        self.classes = classes

    def predict_encoded(self, frame: pd.DataFrame) -> np.ndarray:
        return self.pipeline.predict(frame)

    def predict_proba(self, rows) -> np.ndarray:
        """Class probabilities, columns in `classes` order."""
        if self.task != "classification":
            raise TypeError("predict_proba is only available for classification models")
        proba = self.pipeline.predict_proba(as_frame(rows))
        return _full_proba(proba, self.pipeline.classes_, len(self.classes))

    def predict_encoded_and_proba(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(`predict_encoded`, `predict_proba`) of the same rows, preprocessing them once: the pipeline's own
        steps, as its `predict` and `predict_proba` run them."""
        features = self.pipeline[:-1].transform(frame)
        estimator = self.pipeline[-1]
        proba = _full_proba(estimator.predict_proba(features), self.pipeline.classes_, len(self.classes))
        return estimator.predict(features), proba

    def predict(self, rows) -> list:
        return decode(self.predict_encoded(as_frame(rows)), self.task, self.classes)

    def files(self) -> dict[str, bytes]:
        return {SKLEARN_FILE: skops_io().dumps(self.pipeline)}

    @classmethod
    def from_files(cls, files: dict[str, bytes], task: str, classes: list | None) -> SklearnModel:
        return cls(_load_skops(files, SKLEARN_FILE), task, classes)


class TorchModel:
    def __init__(self, preprocessor, network, arch: dict, classes: list | None) -> None:
        self.preprocessor = preprocessor
        self.network = network
        self.arch = arch
        self.task = arch["task"]
        self.classes = classes

    def _outputs(self, frame: pd.DataFrame) -> np.ndarray:
        from trainer.nn import network_outputs

        return network_outputs(self.network, self.preprocessor.transform(frame))

    def predict_encoded(self, frame: pd.DataFrame) -> np.ndarray:
        outputs = self._outputs(frame)
        if self.task == "classification":
            return outputs.argmax(axis=1)
        return outputs[:, 0] * self.arch["target_std"] + self.arch["target_mean"]

    def predict_proba(self, rows) -> np.ndarray:
        from trainer.nn import softmax

        if self.task != "classification":
            raise TypeError("predict_proba is only available for classification models")
        return softmax(self._outputs(as_frame(rows)))

    def predict_encoded_and_proba(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(`predict_encoded`, `predict_proba`) of the same rows from one forward pass."""
        from trainer.nn import softmax

        outputs = self._outputs(frame)
        return outputs.argmax(axis=1), softmax(outputs)

    def predict(self, rows) -> list:
        return decode(self.predict_encoded(as_frame(rows)), self.task, self.classes)

    def files(self) -> dict[str, bytes]:
        import torch

        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in self.network.state_dict().items()}, buffer)
        return {
            PREPROCESSOR_FILE: skops_io().dumps(self.preprocessor),
            STATE_DICT_FILE: buffer.getvalue(),
            ARCH_FILE: json.dumps(self.arch, indent=2, sort_keys=True).encode(),
        }

    @classmethod
    def from_files(cls, files: dict[str, bytes], classes: list | None) -> TorchModel:
        import torch

        from trainer.nn import build_network, device

        arch = json.loads(_require(files, ARCH_FILE))
        network = build_network(arch)
        # weights_only=True: a restricted unpickler that only rebuilds tensors.
        state = torch.load(io.BytesIO(_require(files, STATE_DICT_FILE)), map_location="cpu", weights_only=True)
        network.load_state_dict(state)
        network.to(device()).eval()
        return cls(_load_skops(files, PREPROCESSOR_FILE), network, arch, classes)


def decode(encoded: np.ndarray, task: str, classes: list | None) -> list:
    if task == "classification":
        return [classes[int(i)] for i in encoded]
    return [float(v) for v in encoded]


def _full_proba(proba: np.ndarray, seen: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities for every class index, even ones absent from the fit split."""
    if proba.shape[1] == n_classes:
        return proba
    full = np.zeros((len(proba), n_classes))
    full[:, seen.astype(int)] = proba
    return full


def _require(files: dict[str, bytes], name: str) -> bytes:
    if name not in files:
        raise ArtifactError(f"artifact file {name!r} is missing")
    return files[name]


def _load_skops(files: dict[str, bytes], name: str):
    sio = skops_io()
    data = _require(files, name)
    untrusted = [t for t in sio.get_untrusted_types(data=data) if t not in TRUSTED_TYPES]
    if untrusted:
        raise ArtifactError(f"{name} contains types outside the trainer's trusted list: {', '.join(untrusted)}")
    return sio.loads(data, trusted=TRUSTED_TYPES)


def skops_io():
    """`skops.io`, imported without torch unless this process has already loaded torch.

    Importing skops.io builds its default trusted-type list with `sklearn.utils.all_estimators()`, which
    walks scikit-learn with `pkgutil.walk_packages`; the walk imports every package to look inside it,
    `externals` too (all_estimators skips those modules only afterwards), and the vendored
    `sklearn.externals.array_api_compat.torch` begins with `import torch` (~2 s). Nothing else in
    scikit-learn or array_api_compat imports torch: they look for it in `sys.modules` (array-API dispatch
    is off). So while this thread imports skops, torch is refused (`_RefuseTorch`): the walk skips that one
    package, as it skips any package whose import fails, and skops' trusted lists come out the same
    (`tests/trainer/test_trainer_imports.py` compares them).
    With torch loaded (the network's path) skops is imported as is."""
    refuse = None
    if "torch" not in sys.modules and "skops.io" not in sys.modules:
        refuse = _RefuseTorch(threading.get_ident())
        sys.meta_path.insert(0, refuse)
    try:
        import skops.io
    finally:
        if refuse is not None:
            sys.meta_path.remove(refuse)
    return skops.io


class _RefuseTorch(importlib.abc.MetaPathFinder):
    """An import hook that answers "no module named torch" to one thread; other threads import as usual."""

    def __init__(self, thread: int) -> None:
        self.thread = thread

    def find_spec(self, fullname, path=None, target=None):
        if (fullname == "torch" or fullname.startswith("torch.")) and threading.get_ident() == self.thread:
            raise ModuleNotFoundError("torch is kept out of the import of skops (trainer.fitted.skops_io)",
                                      name=fullname)
        return None
