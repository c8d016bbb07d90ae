"""`python -m trainer.evaluate`: a trained version measured on new data, as a process against moto server S3 and
a local callback receiver. A decision tree (class target) and a linear regression (numeric target) are trained
once per module by `python -m trainer` on one population; the evaluations read fresh samples of it, changed
ones, and broken ones."""
from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest
from trainer_helpers import (
    ARTIFACT_BUCKET,
    DATA_BUCKET,
    REPO,
    TOKEN,
    CallbackReceiver,
    make_spec,
    new_ids,
    put_frame,
    run_many,
    trainer_env,
)

from trainer.loader import load_model
from trainer.metrics import classification_metrics

integration = pytest.mark.integration

FEATURES_TTL = """
@prefix : <http://example.org/shop#> .
@prefix owl: <http://www.w3.org/2002/07/owl#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
:age a owl:DatatypeProperty ; rdfs:range xsd:integer .
:income a owl:DatatypeProperty ; rdfs:range xsd:decimal .
:plan a owl:DatatypeProperty ; rdfs:range xsd:string .
:is_active a owl:DatatypeProperty ; rdfs:range xsd:boolean .
"""
# One ontology per model: the same four features, and its target.
LABEL_TTL = FEATURES_TTL + ":label a owl:DatatypeProperty ; rdfs:range xsd:string .\n"
SPEND_TTL = FEATURES_TTL + ":spend a owl:DatatypeProperty ; rdfs:range xsd:double .\n"
FEATURES = {"age", "income", "plan", "is_active"}
INCOME_MEAN, INCOME_SD = 50_000.0, 15_000.0
CONFIG = {"train_test_split": 0.8, "random_seed": 11, "hyperparameters": {}}
TRAIN_ROWS, SAMPLE_ROWS = 1500, 1000
BATCH_ROWS = 128  # TRAINER_PREDICT_BATCH_ROWS: several batches per object


def population(rows: int, seed: int) -> pd.DataFrame:
    """Customers whose `label` depends on income, plan and age (with noise), and whose `spend` is linear in them."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, size=rows)
    income = rng.normal(INCOME_MEAN, INCOME_SD, size=rows)
    plan = rng.choice(["basic", "plus", "pro"], size=rows, p=[0.5, 0.3, 0.2])
    active = rng.random(rows) < 0.6
    score = (income - INCOME_MEAN) / INCOME_SD + 1.2 * (plan == "pro") - 0.02 * (age - 50) + rng.normal(0, 0.4, rows)
    spend = 0.002 * income + 30.0 * (plan == "pro") + 0.5 * age + 5.0 * active + rng.normal(0, 5.0, rows)
    return pd.DataFrame({"age": age, "income": income.round(2), "plan": plan, "is_active": active,
                         "spend": spend.round(2), "label": np.where(score > 0.3, "churn", "stay")})


# ---- a receiver of the evaluation callbacks -----------------------------------------------------------------------

class EvaluationReceiver(CallbackReceiver):
    """Records `.../evaluations/{id}/{progress,complete,fail}`; progress posts are answered from `progress_statuses`
    in order (then 200). With `hold`, a progress post with rows > 0 is not answered until the receiver stops
    (`held` is set meanwhile)."""

    def __init__(self, progress_statuses=(), hold: bool = False):
        self.progress_statuses = list(progress_statuses)
        self.held, self._release = threading.Event(), threading.Event()
        if not hold:
            self._release.set()
        super().__init__()

    def stop(self) -> None:
        self._release.set()
        super().stop()

    def _answer(self, action: str, body: dict) -> int:
        if action != "progress":
            return 200
        if body.get("rows", 0) > 0 and not self._release.is_set():
            self.held.set()
            self._release.wait(60)
        with self._lock:
            return self.progress_statuses.pop(0) if self.progress_statuses else 200

    def _serve(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = receiver._answer(self.path.rsplit("/", 1)[-1], json.loads(raw or b"{}"))
                with receiver._lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers), "raw": raw,
                                              "status": status})
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.serve_forever(poll_interval=0.05)

    def calls(self, action: str) -> list[dict]:
        return [{**r, "body": json.loads(r["raw"])} for r in list(self.requests)
                if "/evaluations/" in r["path"] and r["path"].endswith(f"/{action}")]


# ---- models, data, jobs --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def models(s3, moto_server):
    """name -> (model_id, artifact URI) of a decision tree on `label` and a linear regression on `spend`."""
    put_frame(s3, "ev-train/data.csv", population(TRAIN_ROWS, seed=1), "csv")
    storage = [{"id": "st-ev", "uri": f"s3://{DATA_BUCKET}/ev-train/", "format": "csv"}]
    wanted = {"tree": ("decision_tree", LABEL_TTL, {**CONFIG, "hyperparameters": {"max_depth": 5}}),
              "linear": ("regression", SPEND_TTL, {**CONFIG, "target_column": "spend"})}
    receivers, envs, ids = [], {}, {}
    for name, (model_type, ontology, config) in wanted.items():
        receivers.append(CallbackReceiver())
        model_id, run_id = new_ids()
        ids[name] = model_id
        envs[name] = trainer_env(moto_server, receivers[-1], make_spec(model_id, run_id, model_type, ontology,
                                                                       storage, config))
    try:
        done = run_many(envs, workers=2)
    finally:
        for receiver in receivers:
            receiver.stop()
    for name, result in done.items():
        assert result.returncode == 0, (name, result.stderr[-3000:])
    return {name: (model_id, f"s3://{ARTIFACT_BUCKET}/models/{model_id}/v1/") for name, model_id in ids.items()}


def manifest_of(s3, artifact_uri: str) -> dict:
    key = artifact_uri.removeprefix(f"s3://{ARTIFACT_BUCKET}/") + "manifest.json"
    return json.loads(s3.get_object(Bucket=ARTIFACT_BUCKET, Key=key)["Body"].read())


@pytest.fixture(scope="module")
def old_tree(s3, models):
    """The tree as a version trained before references existed: its files, and its manifest without one."""
    model_id, artifact_uri = models["tree"]
    old_id = f"{model_id}-old"
    manifest = manifest_of(s3, artifact_uri)
    manifest.pop("reference")
    manifest.update(model_id=old_id, artifact_uri=f"s3://{ARTIFACT_BUCKET}/models/{old_id}/v1/")
    for name in manifest["files"]:
        body = s3.get_object(Bucket=ARTIFACT_BUCKET, Key=f"models/{model_id}/v1/{name}")["Body"].read()
        s3.put_object(Bucket=ARTIFACT_BUCKET, Key=f"models/{old_id}/v1/{name}", Body=body)
    s3.put_object(Bucket=ARTIFACT_BUCKET, Key=f"models/{old_id}/v1/manifest.json", Body=json.dumps(manifest).encode())
    return old_id, manifest["artifact_uri"]


@pytest.fixture(scope="module")
def samples(s3):
    """Prefix -> format of the evaluation data: a fresh sample of the population (labelled), that sample shifted
    (income + 2 standard deviations, 30 % of labels flipped), unlabelled, and lacking a feature column."""
    fresh = population(SAMPLE_ROWS, seed=2)
    shifted = fresh.copy()
    shifted["income"] = shifted["income"] + 2 * INCOME_SD
    flip = np.random.default_rng(3).random(SAMPLE_ROWS) < 0.3
    shifted.loc[flip, "label"] = shifted.loc[flip, "label"].map({"churn": "stay", "stay": "churn"})
    half = SAMPLE_ROWS // 2
    for start, stop, part in ((0, half, 0), (half, SAMPLE_ROWS, 1)):  # two objects each
        put_frame(s3, f"ev-fresh/part-{part}.csv", fresh.iloc[start:stop], "csv")
        put_frame(s3, f"ev-shifted/part-{part}.csv", shifted.iloc[start:stop], "csv")
        put_frame(s3, f"ev-jsonl/part-{part}.jsonl", fresh.iloc[start:stop], "jsonl")
        buffer = io.BytesIO()
        fresh.iloc[start:stop].drop(columns=["label"]).to_parquet(buffer, index=False, row_group_size=100)
        s3.put_object(Bucket=DATA_BUCKET, Key=f"ev-unlabelled/part-{part}.parquet", Body=buffer.getvalue())
    put_frame(s3, "ev-missing/part-0.csv", fresh.iloc[:100], "csv")
    put_frame(s3, "ev-missing/part-1.csv", fresh.iloc[100:200].drop(columns=["plan"]), "csv")
    return {"fresh": "csv", "shifted": "csv", "jsonl": "jsonl", "unlabelled": "parquet", "missing": "csv"}


def job_spec(model: tuple[str, str], sample: str, fmt: str) -> dict:
    model_id, artifact_uri = model
    evaluation_id = f"eval-{new_ids()[1]}"
    return {"kind": "evaluation", "evaluation_id": evaluation_id, "model_id": model_id, "version": 1,
            "artifact_uri": artifact_uri,
            "inputs": [{"id": "st-eval", "uri": f"s3://{DATA_BUCKET}/ev-{sample}/", "format": fmt}],
            "output_uri": f"s3://{ARTIFACT_BUCKET}/evaluations/{model_id}/{evaluation_id}/"}


def job_env(s3, moto_server: str, receiver: CallbackReceiver, spec: dict) -> dict:
    key = f"runs/{spec['model_id']}/{spec['evaluation_id']}/spec.json"
    s3.put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=json.dumps(spec).encode())
    return trainer_env(moto_server, receiver, None, TRAINER_MODEL_ID=spec["model_id"],
                       TRAINER_RUN_ID=spec["evaluation_id"], TRAINER_SPEC_URI=f"s3://{ARTIFACT_BUCKET}/{key}",
                       TRAINER_PREDICT_BATCH_ROWS=str(BATCH_ROWS))


def command() -> list[str]:
    return [sys.executable, "-m", "trainer.evaluate"]


def run_jobs(envs: dict, workers: int = 2) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    def run(env):
        return subprocess.run(command(), env=env, cwd=str(REPO), capture_output=True, text=True, timeout=120)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {name: pool.submit(run, env) for name, env in envs.items()}
        return {name: future.result() for name, future in futures.items()}


def report_of(s3, spec: dict) -> dict | None:
    key = spec["output_uri"].removeprefix(f"s3://{ARTIFACT_BUCKET}/") + "report.json"
    try:
        return json.loads(s3.get_object(Bucket=ARTIFACT_BUCKET, Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        return None


def rounded(value):
    """`value` with every float rounded to 10 significant digits (sums over batches differ in the last bits)."""
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [rounded(item) for item in value]
    return float(f"{value:.10g}") if isinstance(value, float) else value


def output_keys(s3, spec: dict) -> list[str]:
    prefix = spec["output_uri"].removeprefix(f"s3://{ARTIFACT_BUCKET}/")
    return [o["Key"] for o in s3.list_objects_v2(Bucket=ARTIFACT_BUCKET, Prefix=prefix).get("Contents", [])]


# model, sample: every case runs once, two at a time
CASES = {"fresh": ("tree", "fresh"), "shifted": ("tree", "shifted"), "unlabelled": ("tree", "unlabelled"),
         "missing": ("tree", "missing"), "linear": ("linear", "jsonl"), "old": ("old", "fresh")}


@pytest.fixture(scope="module")
def jobs(s3, moto_server, models, old_tree, samples):
    """name -> (completed process, spec, receiver) of every case of CASES."""
    known = {**models, "old": old_tree}
    runs, envs = {}, {}
    for name, (model, sample) in CASES.items():
        receiver = EvaluationReceiver()
        spec = job_spec(known[model], sample, samples[sample])
        runs[name] = (spec, receiver)
        envs[name] = job_env(s3, moto_server, receiver, spec)
    try:
        done = run_jobs(envs)
        yield {name: (done[name], *runs[name]) for name in CASES}
    finally:
        for _, receiver in runs.values():
            receiver.stop()


def completed(jobs, s3, name: str) -> tuple[dict, dict, EvaluationReceiver]:
    done, spec, receiver = jobs[name]
    assert done.returncode == 0, done.stderr[-3000:]
    report = report_of(s3, spec)
    assert report is not None
    return report, spec, receiver


# ---- the cases ------------------------------------------------------------------------------------------------------

@integration
def test_a_fresh_sample_matches_the_baseline_and_shows_no_drift(jobs, s3, models):
    report, spec, receiver = completed(jobs, s3, "fresh")
    manifest = manifest_of(s3, models["tree"][1])
    baseline = manifest["performance_metrics"]

    assert {k: report[k] for k in ("format_version", "evaluation_id", "model_id", "version", "artifact_uri", "rows",
                                   "labelled_rows", "reference_rows")} == {
        "format_version": 1, "evaluation_id": spec["evaluation_id"], "model_id": spec["model_id"], "version": 1,
        "artifact_uri": spec["artifact_uri"], "rows": SAMPLE_ROWS, "labelled_rows": SAMPLE_ROWS,
        "reference_rows": manifest["reference"]["rows"]}
    assert report["created_at"] and report["notes"] == []
    # The training test set's metrics, key by key; the baseline holds those keys only.
    assert set(report["metrics"]) == set(report["baseline_metrics"]) >= {"accuracy", "precision", "recall",
                                                                          "f1_score", "log_loss", "roc_auc",
                                                                          "confusion_matrix", "per_class"}
    assert report["baseline_metrics"] == {k: baseline[k] for k in report["metrics"]}
    assert report["metrics"]["test_rows"] == SAMPLE_ROWS and sum(map(sum, report["metrics"]["confusion_matrix"])) == \
        SAMPLE_ROWS
    assert baseline["accuracy"] > 0.75
    assert abs(report["metrics"]["accuracy"] - baseline["accuracy"]) < 0.06
    assert abs(report["metrics"]["roc_auc"] - baseline["roc_auc"]) < 0.06
    # The same population: no column and no prediction has drifted.
    assert set(report["psi"]) == FEATURES
    assert all(0 <= value < 0.1 for value in report["psi"].values()), report["psi"]
    assert 0 <= report["prediction_psi"] < 0.1
    assert report["feature_importance"] == baseline["feature_importance"]
    assert [(i["uri"].rsplit("/", 1)[-1], i["rows"]) for i in report["inputs"]] == [("part-0.csv", 500),
                                                                                  ("part-1.csv", 500)]

    # Read in batches, the metrics are those of the whole sample at once (the loader's predictions).
    model = load_model(spec["artifact_uri"], s3)
    fresh = population(SAMPLE_ROWS, seed=2)
    truth = fresh["label"].map({label: i for i, label in enumerate(model.classes)}).to_numpy()
    whole = classification_metrics(truth, model.model.predict_encoded(fresh), np.asarray(model.predict_proba(fresh)),
                                   model.classes)
    assert rounded(report["metrics"]) == rounded(whole)
    assert report["metrics"]["accuracy"] == np.mean(np.asarray(model.predict(fresh)) == fresh["label"].to_numpy())

    progress = [c["body"] for c in receiver.calls("progress")]
    assert progress[0] == {"rows": 0} and progress[-1] == {"rows": SAMPLE_ROWS}
    assert [c["body"] for c in receiver.calls("complete")] == [{}] and receiver.calls("fail") == []
    assert receiver.requests[-1]["path"] == \
        f"/api/ml-models/{spec['model_id']}/evaluations/{spec['evaluation_id']}/complete"
    assert all(r["headers"]["Authorization"] == f"Bearer {TOKEN}" for r in receiver.requests)


@integration
def test_a_shifted_feature_and_flipped_labels_show_as_drift_and_a_lower_accuracy(jobs, s3):
    fresh, _, _ = completed(jobs, s3, "fresh")
    shifted, _, _ = completed(jobs, s3, "shifted")

    assert shifted["psi"]["income"] > 0.2
    assert shifted["psi"]["income"] > 10 * fresh["psi"]["income"]
    assert all(shifted["psi"][name] < 0.1 for name in ("age", "plan", "is_active")), shifted["psi"]
    assert shifted["prediction_psi"] > 0.1  # richer customers: the tree predicts "churn" far more often
    assert shifted["metrics"]["accuracy"] < fresh["metrics"]["accuracy"] - 0.15
    assert shifted["metrics"]["accuracy"] < shifted["baseline_metrics"]["accuracy"] - 0.15


@integration
def test_unlabelled_data_gives_drift_but_no_metrics(jobs, s3):
    report, _, receiver = completed(jobs, s3, "unlabelled")

    assert report["rows"] == SAMPLE_ROWS and report["labelled_rows"] == 0
    assert report["metrics"] == {} and report["baseline_metrics"] == {}
    assert set(report["psi"]) == FEATURES
    assert all(value < 0.1 for value in report["psi"].values()) and report["prediction_psi"] < 0.1
    assert report["notes"] == ["no row has a value in the target column 'label': no metrics"]
    assert [c["body"] for c in receiver.calls("complete")] == [{}]


@integration
def test_a_regression_model_is_measured_with_its_own_metrics(jobs, s3, models):
    report, _, _ = completed(jobs, s3, "linear")
    baseline = manifest_of(s3, models["linear"][1])["performance_metrics"]

    assert set(report["metrics"]) == set(report["baseline_metrics"]) == {"rmse", "mae", "r2", "test_rows"}
    assert baseline["r2"] > 0.8
    assert abs(report["metrics"]["r2"] - baseline["r2"]) < 0.05
    assert report["metrics"]["rmse"] == pytest.approx(baseline["rmse"], rel=0.15)
    assert all(value < 0.1 for value in report["psi"].values()) and report["prediction_psi"] < 0.1


@integration
def test_a_version_without_reference_loads_and_gets_metrics_but_no_psi(jobs, s3, old_tree):
    report, _, _ = completed(jobs, s3, "old")
    fresh, _, _ = completed(jobs, s3, "fresh")

    assert "reference" not in load_model(old_tree[1], s3).manifest
    assert report["psi"] is None and report["prediction_psi"] is None and report["reference_rows"] is None
    assert len(report["notes"]) == 1 and "no reference distributions" in report["notes"][0]
    assert report["metrics"] == fresh["metrics"]


@integration
def test_a_missing_feature_column_fails_naming_it_and_writes_no_report(jobs, s3):
    done, spec, receiver = jobs["missing"]

    assert done.returncode == 1, done.stderr[-3000:]
    [fail] = receiver.calls("fail")
    reason = fail["body"]["reason"]
    assert f"s3://{DATA_BUCKET}/ev-missing/part-1.csv lacks feature(s) plan" in reason
    assert "part-0.csv" not in reason and "Traceback" not in reason
    assert receiver.calls("complete") == [] and output_keys(s3, spec) == []


@integration
def test_sigterm_reports_cancelled_and_a_409_stops_quietly(s3, moto_server, models, samples):
    held = EvaluationReceiver(hold=True)  # the first progress after a batch is not answered: the job is mid-run
    refused = EvaluationReceiver(progress_statuses=[409])
    cancelled, ended = job_spec(models["tree"], "fresh", "csv"), job_spec(models["tree"], "fresh", "csv")
    try:
        process, other = (subprocess.Popen(command(), env=job_env(s3, moto_server, receiver, spec), cwd=str(REPO),
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                          for receiver, spec in ((held, cancelled), (refused, ended)))
        assert held.held.wait(60), "the job never reported progress after a batch"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
        _, other_stderr = other.communicate(timeout=60)
    finally:
        held.stop()
        refused.stop()

    assert process.returncode == 143, stderr[-3000:]
    [fail] = held.calls("fail")
    assert fail["body"]["reason"].startswith("cancelled: terminated by SIGTERM")
    assert held.calls("complete") == [] and output_keys(s3, cancelled) == []

    assert other.returncode == 1, other_stderr[-3000:]
    assert [c["status"] for c in refused.calls("progress")] == [409]
    assert refused.calls("fail") == [] and refused.calls("complete") == [] and output_keys(s3, ended) == []


# ---- the pure parts -------------------------------------------------------------------------------------------------

class FakeClassifier:
    """Predicts class 1 ("stay") when x > 0; probabilities 0.8 / 0.2 for the predicted class."""

    def predict_encoded(self, frame: pd.DataFrame) -> np.ndarray:
        return (frame["x"].to_numpy(dtype="float64") > 0).astype("int64")

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        high = self.predict_encoded(frame) == 1
        return np.where(high[:, None], [[0.2, 0.8]], [[0.8, 0.2]])

    def predict_encoded_and_proba(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        return self.predict_encoded(frame), self.predict_proba(frame)


class FakeLoadedModel:
    """What `Evaluation` uses of `trainer.loader.LoadedModel`."""

    def __init__(self, manifest: dict) -> None:
        self.manifest, self.model = manifest, FakeClassifier()
        self.classes = manifest["target"]["classes"]
        self.feature_names = [entry["name"] for entry in manifest["input_schema"]]


def test_labels_outside_the_classes_are_left_out_and_batches_add_up_to_the_whole():
    from trainer.drift import reference
    from trainer.evaluate_report import Evaluation, report_document
    from trainer.evaluate_spec import EvaluationSpec

    train = pd.DataFrame({"x": np.linspace(-1, 1, 200)})
    manifest = {"task": "classification", "target": {"name": "label", "type": "string", "classes": ["churn", "stay"]},
                "input_schema": [{"name": "x", "type": "number"}],
                "performance_metrics": {"accuracy": 0.9, "feature_importance": {"x": 1.0}},
                "reference": {"rows": 200, "features": {"x": reference(train["x"], "number")},
                              "prediction": reference(pd.Series(["churn"] * 100 + ["stay"] * 100), "string")}}
    data = pd.DataFrame({"x": [-0.5, 0.5, 0.7, -0.9, 0.1, -0.2],
                         "label": ["churn", "churn", "stay", "gone", None, "churn"]})
    evaluation = Evaluation(FakeLoadedModel(manifest))
    evaluation.add(data[["x"]].iloc[:3], data["label"].iloc[:3])
    evaluation.add(data[["x"]].iloc[3:], data["label"].iloc[3:])
    spec = EvaluationSpec("eval-1", "model-1", 1, "s3://a/models/model-1/v1/", (), "a", "evaluations/model-1/eval-1/")
    report = report_document(spec, evaluation, [])

    # Labelled: rows 0, 1, 2, 5 ("gone" is no class, row 4 has no label). Predicted: churn, stay, stay, churn.
    assert report["rows"] == 6 and report["labelled_rows"] == 4
    assert report["metrics"]["accuracy"] == 0.75 and report["metrics"]["confusion_matrix"] == [[2, 1], [0, 1]]
    # Log loss: probability 0.8 of the true class for three rows, 0.2 for the wrong one.
    assert report["metrics"]["log_loss"] == pytest.approx(-(3 * np.log(0.8) + np.log(0.2)) / 4, rel=1e-12)
    assert report["baseline_metrics"] == {"accuracy": 0.9}
    assert report["feature_importance"] == {"x": 1.0}
    assert report["notes"] == ["1 row(s) have a target value that is not one of the model's classes; they are left "
                               "out of labelled_rows and the metrics"]
    assert set(report["psi"]) == {"x"} and report["prediction_psi"] is not None

    manifest.pop("reference")
    unreferenced = Evaluation(FakeLoadedModel(manifest))
    unreferenced.add(data[["x"]], None)
    report = report_document(spec, unreferenced, [])
    assert report["psi"] is None and report["prediction_psi"] is None and report["metrics"] == {}
    assert "no reference distributions" in report["notes"][0]


@pytest.mark.parametrize("change, words", [
    ({"output_uri": "s3://other-bucket/evaluations/m/e/"}, "not in the artifact bucket"),
    ({"evaluation_id": "eval-other"}, "TRAINER_RUN_ID"),
    ({"model_id": "other"}, "TRAINER_MODEL_ID"),
    ({"kind": "prediction"}, "kind"),
    ({"version": 0}, "version"),
    ({"inputs": [{"uri": "s3://d/x/", "format": "xml"}]}, r"inputs\[0\].format"),
    ({"passthrough_columns": []}, r"unknown key\(s\): passthrough_columns"),
])
def test_the_spec_is_checked(change, words):
    from trainer.config import Settings
    from trainer.errors import TrainingFailed
    from trainer.evaluate_spec import parse_evaluation_spec

    settings = Settings(model_id="m", run_id="eval-1", callback_url="http://x", callback_token="t",
                        artifact_bucket="artifacts")
    spec = {"kind": "evaluation", "evaluation_id": "eval-1", "model_id": "m", "version": 2,
            "artifact_uri": "s3://artifacts/models/m/v2/", "inputs": [{"id": "s", "uri": "s3://d/x/", "format": "csv"}],
            "output_uri": "s3://artifacts/evaluations/m/eval-1"}
    parsed = parse_evaluation_spec(json.dumps(spec), settings)
    assert parsed.report_uri == "s3://artifacts/evaluations/m/eval-1/report.json" and parsed.version == 2
    with pytest.raises(TrainingFailed, match=words):
        parse_evaluation_spec(json.dumps({**spec, **change}), settings)


def test_a_report_too_large_for_the_api_loses_its_per_class_detail_only():
    from trainer.evaluate_report import MAX_REPORT_BYTES, report_body

    small = {"metrics": {"accuracy": 0.5}, "baseline_metrics": {"accuracy": 0.6}, "notes": []}
    assert json.loads(report_body(small)) == small and b"\n  " in report_body(small)
    classes = [f"c{i}" for i in range(400)]
    matrix = [[1000 + j for j in range(400)] for _ in range(400)]  # 400 x 400 counts, twice: over 1 MiB of JSON
    metrics = {"accuracy": 0.5, "confusion_matrix": matrix, "confusion_matrix_labels": classes,
               "per_class": [{"class": c} for c in classes]}
    large = {"metrics": metrics, "baseline_metrics": {**metrics, "accuracy": 0.6}, "psi": {"x": 0.1}, "notes": []}
    body = report_body(large)
    assert len(body) <= MAX_REPORT_BYTES and b"\n" not in body
    kept = json.loads(body)
    assert kept["metrics"] == {"accuracy": 0.5} and kept["baseline_metrics"] == {"accuracy": 0.6}
    assert kept["psi"] == {"x": 0.1} and "per_class are left out" in kept["notes"][0]
