"""`python -m trainer.batch_predict`: a trained version applied to whole datasets, as a process against moto
server S3 and a local callback receiver. The models are real artifacts of each type, trained once per module
by `python -m trainer`; every output row is checked against `trainer.loader` on the same input rows."""
from __future__ import annotations

import gzip
import hashlib
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
from ontologies import CUSTOMER_TTL
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

from trainer.config import Settings
from trainer.errors import TrainingFailed
from trainer.loader import load_model
from trainer.ontology import choose_target, parse_columns
from trainer.predict_input import MIN_TAIL_ROWS, _csv_record, check_columns, rebatch
from trainer.predict_rows import unparseable
from trainer.predict_spec import parse_prediction_spec
from trainer.synthetic import synthetic_frame

integration = pytest.mark.integration

MODEL_TYPES = ["decision_tree", "random_forest", "regression", "neural_network"]
CONFIG = {"train_test_split": 0.8, "random_seed": 3, "max_iterations": 10, "early_stopping_rounds": 3,
          "batch_size": 32, "learning_rate": 0.01}
BATCH_ROWS = 64  # TRAINER_PREDICT_BATCH_ROWS: several batches and parts out of 300 rows
SPLIT = 170  # the inputs are two objects: rows [0, 170) and [170, 300)
INPUT_ROWS = 300
# name -> (model, input formats (one storage location each, in this order), output format, passthrough columns).
# Each classifier reads the same rows twice, as CSV and as Parquet objects, in one job.
CASES = {
    "decision_tree csv+parquet->csv": ("decision_tree", ["csv", "parquet"], "csv", ["customer_id"]),
    "random_forest parquet+csv->parquet": ("random_forest", ["parquet", "csv"], "parquet", ["customer_id"]),
    "regression csv+parquet->parquet": ("regression", ["csv", "parquet"], "parquet", ["customer_id"]),
    "neural_network parquet+csv->csv": ("neural_network", ["parquet", "csv"], "csv", ["customer_id"]),
    # A regression task (target `spend`), JSON lines in, a passthrough column that is also a feature.
    "neural_network regression jsonl->csv": ("neural_network regression", ["jsonl"], "csv", ["customer_id", "age"]),
}


# ---- a receiver of the prediction callbacks ----------------------------------------------------------------------

class JobReceiver(CallbackReceiver):
    """Records `.../predictions/{id}/{progress,complete,fail}`. Progress posts are answered from
    `progress_statuses` in order (then 200); with `hold`, a progress post with rows > 0 is not answered until
    `release()` (`held` is set meanwhile)."""

    def __init__(self, progress_statuses=(), hold: bool = False):
        self.progress_statuses = list(progress_statuses)
        self.held, self._release = threading.Event(), threading.Event()
        if not hold:
            self._release.set()
        super().__init__()

    def release(self) -> None:
        self._release.set()

    def stop(self) -> None:
        self.release()
        super().stop()

    def answer(self, action: str, body: dict) -> int:
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
                status = receiver.answer(self.path.rsplit("/", 1)[-1], json.loads(raw or b"{}"))
                with receiver._lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers), "raw": raw,
                                              "status": status})
                body = b'{"status": "ok"}' if status < 300 else b'{"status": "error"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.serve_forever(poll_interval=0.05)

    def calls(self, action: str) -> list[dict]:
        return [{**r, "body": json.loads(r["raw"])} for r in list(self.requests)
                if "/predictions/" in r["path"] and r["path"].endswith(f"/{action}")]


# ---- data, models, jobs --------------------------------------------------------------------------------------------

def customers(rows: int, seed: int) -> pd.DataFrame:
    columns = parse_columns(CUSTOMER_TTL)
    return synthetic_frame(columns, choose_target(columns, None), rows=rows, seed=seed)


@pytest.fixture(scope="module")
def inputs(s3):
    """The rows to predict, stored as two CSV objects, two Parquet objects (small row groups) and two JSON-lines
    objects. The classifiers' inputs have no `label`; the JSON lines have it (the regression network's feature)."""
    full = customers(INPUT_ROWS, seed=21)
    frame = full.drop(columns=["label"])
    for index, rows in enumerate((slice(0, SPLIT), slice(SPLIT, INPUT_ROWS))):
        half = frame.iloc[rows]
        put_frame(s3, f"bp-input/csv/part-{index}.csv", half, "csv")
        put_frame(s3, f"bp-input/jsonl/part-{index}.jsonl", full.iloc[rows], "jsonl")
        buffer = io.BytesIO()
        half.to_parquet(buffer, index=False, row_group_size=50)
        s3.put_object(Bucket=DATA_BUCKET, Key=f"bp-input/parquet/part-{index}.parquet", Body=buffer.getvalue())
    s3.put_object(Bucket=DATA_BUCKET, Key="bp-input/csv/_SUCCESS", Body=b"")  # a marker, skipped
    return frame


@pytest.fixture(scope="module")
def models(s3, moto_server):
    """The four model types trained on a classification target (`label`), and a network on a regression
    target (`spend`); name -> (model_id, artifact URI)."""
    train = customers(400, seed=20)
    put_frame(s3, "bp-train/data.csv", train, "csv")
    storage = [{"id": "st-bp", "uri": f"s3://{DATA_BUCKET}/bp-train/", "format": "csv"}]
    wanted = {name: (name, CONFIG) for name in MODEL_TYPES}
    wanted["neural_network regression"] = ("neural_network", {**CONFIG, "target_column": "spend"})
    receivers, envs, ids = [], {}, {}
    for name, (model_type, config) in wanted.items():
        receiver = CallbackReceiver()
        receivers.append(receiver)
        model_id, run_id = new_ids()
        ids[name] = model_id
        envs[name] = trainer_env(moto_server, receiver, make_spec(model_id, run_id, model_type, CUSTOMER_TTL,
                                                                  storage, config))
    try:
        done = run_many(envs, workers=3)
    finally:
        for receiver in receivers:
            receiver.stop()
    for name, result in done.items():
        assert result.returncode == 0, (name, result.stderr[-3000:])
    return {name: (model_id, f"s3://{ARTIFACT_BUCKET}/models/{model_id}/v1/") for name, model_id in ids.items()}


def job_spec(model: tuple[str, str], input_uris: list[tuple[str, str]], output_format: str = "parquet",
             passthrough: list[str] | None = None, **overrides) -> dict:
    model_id, artifact_uri = model
    prediction_id = f"pred-{new_ids()[1]}"
    return {"kind": "prediction", "prediction_id": prediction_id, "model_id": model_id, "version": 1,
            "artifact_uri": artifact_uri,
            "inputs": [{"id": f"st-{i}", "uri": uri, "format": fmt} for i, (uri, fmt) in enumerate(input_uris)],
            "passthrough_columns": ["customer_id"] if passthrough is None else passthrough,
            "output_format": output_format,
            "output_uri": f"s3://{ARTIFACT_BUCKET}/predictions/{model_id}/{prediction_id}/", **overrides}


def job_env(s3, moto_server: str, receiver: CallbackReceiver, spec: dict, **extra: str) -> dict:
    key = f"runs/{spec['model_id']}/{spec['prediction_id']}/spec.json"
    s3.put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=json.dumps(spec).encode())
    return trainer_env(moto_server, receiver, None, TRAINER_MODEL_ID=spec["model_id"],
                       TRAINER_RUN_ID=spec["prediction_id"], TRAINER_SPEC_URI=f"s3://{ARTIFACT_BUCKET}/{key}",
                       **{"TRAINER_PREDICT_BATCH_ROWS": str(BATCH_ROWS), **extra})


def start_job(env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "trainer.batch_predict"], env=env, cwd=str(REPO),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_job(env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainer.batch_predict"], env=env, cwd=str(REPO),
                          capture_output=True, text=True, timeout=timeout)


def run_jobs(envs: dict, workers: int = 3) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {name: pool.submit(run_job, env) for name, env in envs.items()}
        return {name: future.result() for name, future in futures.items()}


def output_keys(s3, spec: dict) -> list[str]:
    prefix = spec["output_uri"].removeprefix(f"s3://{ARTIFACT_BUCKET}/")
    listed = s3.list_objects_v2(Bucket=ARTIFACT_BUCKET, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"].removeprefix(prefix) for o in listed)


def read_output(s3, spec: dict) -> tuple[dict, pd.DataFrame]:
    """(_SUCCESS, the parts it lists concatenated), after checking each part's size, rows and sha256."""
    prefix = spec["output_uri"].removeprefix(f"s3://{ARTIFACT_BUCKET}/")
    success = json.loads(s3.get_object(Bucket=ARTIFACT_BUCKET, Key=prefix + "_SUCCESS")["Body"].read())
    frames = []
    for part in success["parts"]:
        body = s3.get_object(Bucket=ARTIFACT_BUCKET, Key=prefix + part["name"])["Body"].read()
        assert part["size"] == len(body) and part["sha256"] == hashlib.sha256(body).hexdigest(), part
        frame = pd.read_parquet(io.BytesIO(body)) if part["name"].endswith(".parquet") else \
            pd.read_csv(io.BytesIO(body), dtype={"customer_id": str, "error": str, "age": str})
        assert len(frame) == part["rows"] and list(frame.columns) == success["columns"], part
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=success["columns"])
    return success, frame


def stored_objects(s3, prefix: str, fmt: str) -> list[tuple[str, pd.DataFrame]]:
    """(URI, rows as training's loader reads them) of each input object under the prefix, in key order."""
    found = []
    for item in sorted(s3.list_objects_v2(Bucket=DATA_BUCKET, Prefix=prefix)["Contents"], key=lambda o: o["Key"]):
        if item["Key"].rsplit("/", 1)[-1].startswith("_"):
            continue
        body = io.BytesIO(s3.get_object(Bucket=DATA_BUCKET, Key=item["Key"])["Body"].read())
        frame = {"csv": lambda b: pd.read_csv(b, low_memory=False), "parquet": pd.read_parquet,
                 "jsonl": lambda b: pd.read_json(b, lines=True, dtype=False, convert_dates=False)}[fmt](body)
        found.append((f"s3://{DATA_BUCKET}/{item['Key']}", frame))
    return found


def expected_predictions(s3, artifact_uri: str, objects) -> tuple[list, np.ndarray | None, object]:
    """The loader's predictions (and probabilities) for each stored object's rows, concatenated."""
    model = load_model(artifact_uri, s3)
    labels, proba = [], []
    for _, frame in objects:
        labels += list(model.predict(frame))
        if model.task == "classification":
            proba.append(np.asarray(model.predict_proba(frame)))
    return labels, (np.concatenate(proba) if proba else None), model


# ---- the main cases -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def jobs(s3, moto_server, models, inputs):
    """Every case of CASES run as a job, three at a time; name -> (result, spec, receiver)."""
    runs, envs = {}, {}
    for name, (model_name, input_formats, output_format, passthrough) in CASES.items():
        receiver = JobReceiver()
        spec = job_spec(models[model_name], [(f"s3://{DATA_BUCKET}/bp-input/{f}/", f) for f in input_formats],
                        output_format, passthrough)
        runs[name] = (spec, receiver)
        envs[name] = job_env(s3, moto_server, receiver, spec)
    try:
        done = run_jobs(envs)
        yield {name: (done[name], *runs[name]) for name in CASES}
    finally:
        for _, receiver in runs.values():
            receiver.stop()


@integration
@pytest.mark.parametrize("case", list(CASES))
def test_every_row_is_the_loaders_prediction(case, jobs, models, inputs, s3):
    model_name, input_formats, output_format, passthrough = CASES[case]
    done, spec, receiver = jobs[case]
    assert done.returncode == 0, done.stderr[-3000:]
    rows = INPUT_ROWS * len(input_formats)

    success, out = read_output(s3, spec)
    objects = [o for f in input_formats for o in stored_objects(s3, f"bp-input/{f}/", f)]
    labels, proba, model = expected_predictions(s3, models[model_name][1], objects)
    classes = model.classes or []
    columns = [*passthrough, "prediction", *[f"probability_{c}" for c in classes], "error"]
    assert out.columns.tolist() == columns and success["columns"] == columns
    # Passthrough ids in input order, across objects and parts.
    assert out["customer_id"].tolist() == inputs["customer_id"].tolist() * len(input_formats)
    if "age" in passthrough:
        assert [None if pd.isna(v) else float(v) for v in out["age"]] == \
            [None if pd.isna(v) else float(v) for v in inputs["age"]]
    if model.task == "classification":
        assert out["prediction"].tolist() == [str(v) for v in labels]
        for index, label in enumerate(classes):
            assert np.array_equal(out[f"probability_{label}"].to_numpy(dtype="float64"), proba[:, index]), label
    else:
        assert np.array_equal(out["prediction"].to_numpy(dtype="float64"), np.asarray(labels, dtype="float64"))
    assert out["error"].isna().all()

    # _SUCCESS: the job, its parts (BATCH_ROWS rows each but the last) and its inputs.
    assert {k: success[k] for k in ("format_version", "prediction_id", "model_id", "version", "artifact_uri",
                                    "output_format", "rows", "error_rows")} == {
        "format_version": 1, "prediction_id": spec["prediction_id"], "model_id": spec["model_id"], "version": 1,
        "artifact_uri": spec["artifact_uri"], "output_format": output_format, "rows": rows, "error_rows": 0}
    assert success["created_at"]
    ext = output_format
    assert [p["name"] for p in success["parts"]] == [f"part-{i:05d}.{ext}" for i in range(len(success["parts"]))]
    assert [p["rows"] for p in success["parts"]] == [BATCH_ROWS] * (rows // BATCH_ROWS) + [rows % BATCH_ROWS]
    assert output_keys(s3, spec) == sorted([p["name"] for p in success["parts"]] + ["_SUCCESS"])
    assert [(i["uri"], i["rows"]) for i in success["inputs"]] == [(uri, len(f)) for uri, f in objects]
    for item in success["inputs"]:
        head = s3.head_object(Bucket=DATA_BUCKET, Key=item["uri"].removeprefix(f"s3://{DATA_BUCKET}/"))
        assert item["etag"] == head["ETag"].strip('"') and item["size"] == head["ContentLength"]

    # The callbacks: start, progress, complete; each with the job's bearer token.
    progress = receiver.calls("progress")
    assert progress[0]["body"] == {"rows": 0} and progress[-1]["body"] == {"rows": rows}
    assert [c["body"] for c in receiver.calls("complete")] == [{"rows": rows, "error_rows": 0}]
    assert receiver.calls("fail") == []
    assert all(r["headers"]["Authorization"] == f"Bearer {TOKEN}" for r in receiver.requests)
    assert receiver.requests[-1]["path"] == f"/api/ml-models/{spec['model_id']}/predictions/{spec['prediction_id']}" \
                                            "/complete"


# ---- failures and edges --------------------------------------------------------------------------------------------

@integration
def test_unparseable_values_get_a_null_prediction_and_an_error(s3, moto_server, models, inputs):
    frame = inputs.iloc[:100].astype(object)
    frame.loc[3, "age"] = "abc"
    frame.loc[5, "signup_date"] = "not a date"
    frame.loc[7, ["is_active", "income"]] = ["maybe", "lots"]
    frame.loc[9, "income"] = ""  # blank: a missing value, imputed
    put_frame(s3, "bp-bad/part-0.csv", frame, "csv")
    receiver = JobReceiver()
    spec = job_spec(models["random_forest"], [(f"s3://{DATA_BUCKET}/bp-bad/", "csv")])
    try:
        done = run_job(job_env(s3, moto_server, receiver, spec))
    finally:
        receiver.stop()

    assert done.returncode == 0, done.stderr[-3000:]
    success, out = read_output(s3, spec)
    assert success["rows"] == 100 and success["error_rows"] == 3
    assert [c["body"] for c in receiver.calls("complete")] == [{"rows": 100, "error_rows": 3}]
    errors = {i: e for i, e in enumerate(out["error"]) if isinstance(e, str)}
    assert errors == {3: "unparseable: age (integer)", 5: "unparseable: signup_date (datetime)",
                      7: "unparseable: income (number), is_active (boolean)"}
    probabilities = [c for c in out.columns if c.startswith("probability_")]
    assert out.loc[[3, 5, 7], ["prediction", *probabilities]].isna().all().all()
    [(_, stored)] = stored_objects(s3, "bp-bad/", "csv")
    labels, proba, _ = expected_predictions(s3, models["random_forest"][1], [(None, stored)])
    good = [i for i in range(100) if i not in errors]
    assert out.loc[good, "prediction"].tolist() == [labels[i] for i in good]
    assert np.array_equal(out.loc[good, probabilities].to_numpy(dtype="float64"), proba[good])


@integration
def test_an_input_missing_columns_fails_naming_them_and_writes_nothing(s3, moto_server, models, inputs):
    put_frame(s3, "bp-missing/part-0.csv", inputs.iloc[:50], "csv")
    put_frame(s3, "bp-missing/part-1.csv", inputs.iloc[50:100].drop(columns=["age", "customer_id"]), "csv")
    buffer = io.BytesIO()
    inputs.iloc[:50].drop(columns=["plan"]).to_parquet(buffer, index=False)
    s3.put_object(Bucket=DATA_BUCKET, Key="bp-missing/part-2.parquet", Body=buffer.getvalue())
    receiver = JobReceiver()
    spec = job_spec(models["decision_tree"], [(f"s3://{DATA_BUCKET}/bp-missing/", "csv")])
    try:
        done = run_job(job_env(s3, moto_server, receiver, spec))
    finally:
        receiver.stop()

    assert done.returncode == 1, done.stderr[-3000:]
    [fail] = receiver.calls("fail")
    reason = fail["body"]["reason"]
    assert "2 input object(s)" in reason and "Traceback" not in reason
    assert f"s3://{DATA_BUCKET}/bp-missing/part-1.csv lacks feature(s) age and passthrough column(s) customer_id" \
        in reason
    assert f"s3://{DATA_BUCKET}/bp-missing/part-2.parquet lacks feature(s) plan" in reason
    assert "part-0.csv" not in reason
    assert receiver.calls("complete") == [] and output_keys(s3, spec) == []


@integration
def test_a_job_whose_output_is_committed_reports_it_again_without_rewriting(jobs, s3, moto_server):
    """A retried job (its Kubernetes Job restarted after `_SUCCESS` was written) reports the committed output."""
    first, spec, _ = jobs["regression csv+parquet->parquet"]
    assert first.returncode == 0, first.stderr[-3000:]
    prefix = spec["output_uri"].removeprefix(f"s3://{ARTIFACT_BUCKET}/")
    before = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=ARTIFACT_BUCKET, Prefix=prefix)["Contents"]}
    receiver = JobReceiver()
    try:
        again = run_job(job_env(s3, moto_server, receiver, spec))
    finally:
        receiver.stop()

    assert again.returncode == 0, again.stderr[-3000:]
    assert [c["body"] for c in receiver.calls("complete")] == [{"rows": 2 * INPUT_ROWS, "error_rows": 0}]
    after = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=ARTIFACT_BUCKET, Prefix=prefix)["Contents"]}
    assert after == before


@integration
def test_the_edges(s3, moto_server, models, inputs):
    """An empty input succeeds with no parts; an output outside the artifact bucket fails writing nothing; a
    gzip-compressed CSV larger than the first ranged read of its header is predicted like the plain one."""
    big = pd.concat([inputs] * 10, ignore_index=True)
    s3.put_object(Bucket=DATA_BUCKET, Key="bp-gzip/part-0.csv.gz",
                  Body=gzip.compress(big.to_csv(index=False).encode()))
    gzipped = job_spec(models["decision_tree"], [(f"s3://{DATA_BUCKET}/bp-gzip/", "csv")])
    s3.put_object(Bucket=DATA_BUCKET, Key="bp-empty/part-0.csv", Body=b"")
    s3.put_object(Bucket=DATA_BUCKET, Key="bp-empty/part-1.csv", Body=b"customer_id,age,income,plan,is_active,"
                                                                      b"signup_date,description,spend\n")
    empty = job_spec(models["neural_network"], [(f"s3://{DATA_BUCKET}/bp-empty/", "csv"),
                                                (f"s3://{DATA_BUCKET}/bp-nothing-here/", "parquet")], "csv")
    outside = job_spec(models["decision_tree"], [(f"s3://{DATA_BUCKET}/bp-input/csv/", "csv")])
    outside["output_uri"] = f"s3://{DATA_BUCKET}/stolen/{outside['prediction_id']}/"
    receivers = {"empty": JobReceiver(), "outside": JobReceiver(), "gzip": JobReceiver()}
    try:
        done = run_jobs({"empty": job_env(s3, moto_server, receivers["empty"], empty),
                         "outside": job_env(s3, moto_server, receivers["outside"], outside),
                         "gzip": job_env(s3, moto_server, receivers["gzip"], gzipped,
                                         TRAINER_PREDICT_BATCH_ROWS="1000")})
    finally:
        for receiver in receivers.values():
            receiver.stop()

    assert done["empty"].returncode == 0, done["empty"].stderr[-3000:]
    success, out = read_output(s3, empty)
    assert success["rows"] == 0 and success["parts"] == [] and len(out) == 0
    assert [i["rows"] for i in success["inputs"]] == [0, 0]
    assert output_keys(s3, empty) == ["_SUCCESS"]
    assert [c["body"] for c in receivers["empty"].calls("complete")] == [{"rows": 0, "error_rows": 0}]

    assert done["outside"].returncode == 1
    [fail] = receivers["outside"].calls("fail")
    assert "not in the artifact bucket" in fail["body"]["reason"] and ARTIFACT_BUCKET in fail["body"]["reason"]
    assert s3.list_objects_v2(Bucket=DATA_BUCKET, Prefix="stolen/").get("KeyCount") == 0

    assert done["gzip"].returncode == 0, done["gzip"].stderr[-3000:]
    success, out = read_output(s3, gzipped)
    assert success["rows"] == len(big) and [p["rows"] for p in success["parts"]] == [1000, 1000, 1000]
    assert out["customer_id"].tolist() == big["customer_id"].tolist()
    assert out["prediction"].tolist() == list(load_model(models["decision_tree"][1], s3).predict(big))


@integration
def test_sigterm_mid_run_reports_cancelled_and_commits_nothing(s3, moto_server, models):
    receiver = JobReceiver(hold=True)  # the first progress after a batch waits: the job is mid-run
    spec = job_spec(models["random_forest"], [(f"s3://{DATA_BUCKET}/bp-input/csv/", "csv")])
    try:
        process = start_job(job_env(s3, moto_server, receiver, spec))
        assert receiver.held.wait(60), "the job never reported progress after a batch"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        receiver.stop()

    assert process.returncode == 143, stderr[-3000:]
    [fail] = receiver.calls("fail")
    assert fail["body"]["reason"].startswith("cancelled: terminated by SIGTERM")
    assert receiver.calls("complete") == []
    keys = output_keys(s3, spec)
    assert "_SUCCESS" not in keys and keys  # a part was written before the signal, but nothing commits it


@integration
@pytest.mark.parametrize("statuses", [[409], [200, 409]], ids=["at start", "mid-run"])
def test_a_409_on_progress_stops_the_job_without_reports(s3, moto_server, models, statuses):
    receiver = JobReceiver(progress_statuses=statuses)
    spec = job_spec(models["decision_tree"], [(f"s3://{DATA_BUCKET}/bp-input/csv/", "csv")])
    try:
        done = run_job(job_env(s3, moto_server, receiver, spec))
    finally:
        receiver.stop()

    assert done.returncode == 1, done.stderr[-3000:]
    assert [c["status"] for c in receiver.calls("progress")] == statuses
    assert receiver.calls("fail") == [] and receiver.calls("complete") == []
    keys = output_keys(s3, spec)
    assert "_SUCCESS" not in keys
    if statuses == [409]:
        assert keys == []


# ---- the pure parts -------------------------------------------------------------------------------------------------

def test_batches_are_fixed_size_and_the_last_takes_in_a_short_remainder():
    def batches(pieces, size):
        return [len(b) for b in rebatch([list(range(n)) for n in pieces], size, lambda ps: sum(ps, []),
                                        lambda b, n: (b[:n], b[n:]))]

    assert batches([100, 100, 100], 64) == [64, 64, 64, 108]  # 300 = 4 x 64 + 44: the 44 join the last batch
    assert batches([90, 90, 90], 100) == [100, 100, 70]
    assert batches([64 * 3 + MIN_TAIL_ROWS - 1], 64) == [64, 64, 64 + MIN_TAIL_ROWS - 1]
    assert batches([10, 0, 5], 64) == [15]
    assert batches([], 64) == []
    assert sum(batches([7] * 50, 100)) == 350


def test_unparseable_values_are_named_per_row_and_blanks_are_missing():
    schema = [{"name": "n", "type": "number"}, {"name": "b", "type": "boolean"},
              {"name": "d", "type": "datetime"}, {"name": "s", "type": "string"}]
    frame = pd.DataFrame({"n": ["1.5", "x", None, " ", "2"], "b": ["yes", "true", "no", "maybe", None],
                          "d": ["2024-01-01", "2024-13-45", None, "", "2024-02-01T10:00:00Z"],
                          "s": ["a", 1, None, "", "b"]})

    assert unparseable(frame, schema) == [None, "unparseable: n (number), d (datetime)", None,
                                          "unparseable: b (boolean)", None]
    assert unparseable(pd.DataFrame({"n": [1.0, np.nan]}), schema[:1]) == [None, None]


def test_a_csv_header_is_found_only_once_complete():
    assert _csv_record('\n"a,b",c\n1,2', whole=False) == (True, ["a,b", "c"])
    assert _csv_record("a,b,c", whole=False) == (False, None)  # it may go on
    assert _csv_record("a,b,c", whole=True) == (True, ["a", "b", "c"])
    assert _csv_record("", whole=True) == (True, None)
    assert _csv_record("  \n\n", whole=True) == (True, None)


def test_column_check_names_every_object_and_what_it_lacks():
    from trainer.predict_input import InputObject
    from trainer.storage import DataObject

    def item(key, columns):
        return InputObject(DataObject(f"s3://b/{key}", "b", key, "e", 1, "csv"), columns)

    check_columns([item("ok", ("a", "b", "id")), item("empty", None)], ["a", "b"], ["id"])
    with pytest.raises(TrainingFailed) as caught:
        check_columns([item("one", ("a",)), item("two", ("b", "id"))], ["a", "b"], ["id"])
    assert caught.value.reason == ("required column(s) missing from 2 input object(s): s3://b/one lacks feature(s) b "
                                   "and passthrough column(s) id; s3://b/two lacks feature(s) a")


@pytest.mark.parametrize("change, words", [
    ({"output_uri": "s3://other-bucket/predictions/m/p/"}, "not in the artifact bucket"),
    ({"output_uri": "s3://artifacts/"}, "not its root"),
    ({"prediction_id": "pred-other"}, "TRAINER_RUN_ID"),
    ({"kind": "training"}, "kind"),
    ({"passthrough_columns": ["prediction"]}, "clash"),
    ({"passthrough_columns": ["probability_x"]}, "clash"),
    ({"output_format": "jsonl"}, "output_format"),
    ({"inputs": [{"uri": "s3://d/x/", "format": "xml"}]}, "inputs[0].format"),
    ({"extra": 1}, "unknown key(s): extra"),
])
def test_the_spec_is_checked(change, words):
    settings = Settings(model_id="m", run_id="pred-1", callback_url="http://x", callback_token="t",
                        artifact_bucket="artifacts")
    spec = {"kind": "prediction", "prediction_id": "pred-1", "model_id": "m", "version": 2,
            "artifact_uri": "s3://artifacts/models/m/v2/", "inputs": [{"id": "s", "uri": "s3://d/x/", "format": "csv"}],
            "passthrough_columns": ["id"], "output_format": "csv", "output_uri": "s3://artifacts/predictions/m/pred-1"}
    parsed = parse_prediction_spec(json.dumps(spec), settings)
    assert parsed.output_uri == "s3://artifacts/predictions/m/pred-1/" and parsed.passthrough_columns == ("id",)
    with pytest.raises(TrainingFailed, match=words.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        parse_prediction_spec(json.dumps({**spec, **change}), settings)
