"""What a run imports: torch only for the network (issue 16: the scikit-learn types' fixed start).

Each run is a fresh process, so `sys.modules` shows what that path alone imported: the trainer's
`main()` as `python -m trainer` calls it (moto server S3, a local callback receiver), then the
loader on its own. Timings are for `bench/bench_trainer_start.py`, not for assertions.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading

import numpy as np
import pandas as pd
import pytest
from trainer_helpers import REPO, log_lines, make_spec, new_ids, put_frame, trainer_env

from trainer.ontology import ontology_from_frame

SKLEARN_TYPES = ["decision_tree", "random_forest", "regression"]
WATCHED = ("torch", "skops.io", "sklearn", "pandas")
# `python -m trainer` (trainer/__main__.py), then which of WATCHED the process imported, on stdout.
RUN_AND_REPORT = (
    "import json, sys\n"
    "from trainer.main import main\n"
    "code = main()\n"
    f"print(json.dumps(sorted(m for m in {WATCHED!r} if m in sys.modules)))\n"
    "sys.exit(code)\n"
)


@pytest.fixture(scope="module")
def small(s3):
    """(ontology, storage) of 150 labelled rows in one CSV object."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({
        "age": rng.integers(18, 80, 150),
        "income": rng.normal(50_000, 12_000, 150).round(2),
        "plan": rng.choice(["basic", "plus", "pro"], 150),
    })
    frame["label"] = np.where(frame["income"] + 500 * frame["age"] > 70_000, "churn", "stay")
    uri = put_frame(s3, "imports/part-0.csv", frame, "csv")
    return ontology_from_frame(frame, "label", "Customer"), [{"id": "st-imports", "uri": uri, "format": "csv"}]


def run_reporting_imports(moto_server, receiver, small, model_type: str) -> tuple[list[str], dict]:
    ttl, storage = small
    model_id, run_id = new_ids()
    config = {"train_test_split": 0.8, "random_seed": 5, "max_iterations": 5}
    spec = make_spec(model_id, run_id, model_type, ttl, storage, config)
    done = subprocess.run([sys.executable, "-c", RUN_AND_REPORT], env=trainer_env(moto_server, receiver, spec),
                          cwd=str(REPO), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    completed = receiver.delivered("complete")
    assert len(completed) == 1 and not receiver.calls("fail")
    assert any(line["message"] == "artifact written" for line in log_lines(done.stderr))
    return json.loads(done.stdout.strip().splitlines()[-1]), completed[0]["body"]


# The loader (batch predictions, evaluations and the predictor load through it) in a process of its own.
LOAD_AND_REPORT = (
    "import json, sys\n"
    "from trainer.loader import load_model\n"
    "loaded = load_model(sys.argv[1])\n"
    "predicted = loaded.predict([{'age': 40, 'income': 52000.0, 'plan': 'pro'}])\n"
    f"print(json.dumps({{'predicted': predicted, 'imported': sorted(m for m in {WATCHED!r} if m in sys.modules)}}))\n"
)


@pytest.mark.integration
@pytest.mark.parametrize("model_type", SKLEARN_TYPES)
def test_a_scikit_learn_run_and_its_loader_never_import_torch(moto_server, receiver, small, model_type):
    imported, body = run_reporting_imports(moto_server, receiver, small, model_type)

    assert "torch" not in imported
    assert {"skops.io", "sklearn", "pandas"} <= set(imported)  # it fitted and saved with skops (which pulled torch in)

    artifact = body["model_artifact_path"].removesuffix("manifest.json")
    env = trainer_env(moto_server, receiver, None)
    done = subprocess.run([sys.executable, "-c", LOAD_AND_REPORT, artifact], env=env, cwd=str(REPO),
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["predicted"] in (["churn"], ["stay"])
    assert "torch" not in loaded["imported"] and "skops.io" in loaded["imported"]


@pytest.mark.integration
def test_a_network_run_imports_torch(moto_server, receiver, small):
    imported, _ = run_reporting_imports(moto_server, receiver, small, "neural_network")

    assert {"torch", "skops.io"} <= set(imported)


SAME_TRUSTED_TYPES = """
import sys
from trainer.fitted import skops_io
skops_io()
assert "torch" not in sys.modules
from skops.io import _trusted_types as without_torch
import torch  # now the walk imports the torch shim as well: the trusted lists must not change
from sklearn.utils import all_estimators
from skops.io._utils import get_type_name
walked = [get_type_name(c) for _, c in all_estimators() if get_type_name(c).startswith("sklearn.")]
trusted = without_torch.SKLEARN_ESTIMATOR_TYPE_NAMES
assert trusted == walked, set(walked) ^ set(trusted)
assert len(walked) > 100
"""


@pytest.mark.integration
def test_skops_trusts_the_same_estimators_when_torch_is_kept_out():
    done = subprocess.run([sys.executable, "-c", SAME_TRUSTED_TYPES], cwd=str(REPO), capture_output=True, text=True,
                          timeout=240, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-3000:]


def test_torch_is_refused_only_to_the_thread_importing_skops():
    from trainer.fitted import _RefuseTorch

    refuse = _RefuseTorch(threading.get_ident())
    with pytest.raises(ModuleNotFoundError):
        refuse.find_spec("torch")
    with pytest.raises(ModuleNotFoundError):
        refuse.find_spec("torch.nn")
    assert refuse.find_spec("torchvision") is None and refuse.find_spec("numpy") is None
    other: list = []
    thread = threading.Thread(target=lambda: other.append(refuse.find_spec("torch")))
    thread.start()
    thread.join()
    assert other == [None]
