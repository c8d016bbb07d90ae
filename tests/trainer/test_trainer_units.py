"""Unit tests of the trainer's pure parts: ontology, spec, features, models, metrics, callbacks, artifacts."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from ontologies import CUSTOMER_TTL
from sklearn.datasets import load_iris, load_wine

from trainer.callback import CallbackClient, CallbackRejected, ProgressThrottle, Reporter
from trainer.config import Settings
from trainer.errors import ArtifactError, TrainingFailed
from trainer.metrics import finite_only
from trainer.ontology import choose_target, ontology_from_frame, parse_columns
from trainer.pipeline import train_and_evaluate
from trainer.spec import TrainingConfig, parse_spec
from trainer.synthetic import synthetic_frame

MODEL_TYPES = ["decision_tree", "random_forest", "regression", "neural_network"]
BASE = {"train_test_split": 0.75, "random_seed": 11, "max_iterations": 15, "learning_rate": 0.01}


@pytest.fixture(scope="module")
def wine():
    frame = load_wine(as_frame=True).frame
    return frame, ontology_from_frame(frame, "target", "Wine")


@pytest.fixture(scope="module")
def customers():
    columns = parse_columns(CUSTOMER_TTL)
    return synthetic_frame(columns, choose_target(columns, None), rows=400, seed=4)


# --- ontology -----------------------------------------------------------------------------------------------------

def test_datatype_properties_become_typed_columns():
    columns = {c.name: c.kind for c in parse_columns(CUSTOMER_TTL)}
    assert columns == {
        "age": "integer", "customer_id": "string", "description": "string", "income": "number",
        "is_active": "boolean", "label": "string", "plan": "string", "signup_date": "datetime", "spend": "number",
    }  # the object property placedBy is not a column


def test_ontology_from_frame_round_trips_any_column_name():
    frame = pd.DataFrame({"sepal length (cm)": [1.0], "kind/name#1": ["a"], "n": [1], "ok": [True]})
    columns = {c.name: c.kind for c in parse_columns(ontology_from_frame(frame, "ok", "A set"))}
    assert columns == {"sepal length (cm)": "number", "kind/name#1": "string", "n": "integer", "ok": "boolean"}


def test_target_defaults_to_label_and_unknown_target_lists_candidates():
    columns = parse_columns(CUSTOMER_TTL)
    assert choose_target(columns, None).name == "label"
    with pytest.raises(TrainingFailed, match=r"'churn' is not a datatype property.*candidates: age, customer_id"):
        choose_target(columns, "churn")


def test_invalid_turtle_fails_with_reason():
    with pytest.raises(TrainingFailed, match="not valid Turtle"):
        parse_columns("this is :: not turtle")


# --- spec and settings --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"train_test_split": 1.5}, "train_test_split must be a number strictly between 0 and 1"),
        ({"batch_size": 0}, "batch_size must be an integer between 1 and 65536"),
        ({"max_iterations": 10_001}, "max_iterations must be an integer between 1 and 10000"),
        ({"learning_rate": -1}, "learning_rate must be a number > 0 and <= 10"),
        ({"synthetic_rows": 10**6}, "synthetic_rows must be an integer between 50 and 100000"),
        ({"epochs": 3}, "unknown training_config key(s): epochs"),
    ],
)
def test_training_config_is_validated(config, words):
    with pytest.raises(TrainingFailed) as info:
        TrainingConfig.from_dict(config)
    assert words in info.value.reason


def test_spec_requires_known_model_type_and_positive_version():
    good = {"model_type": "regression", "version": 1, "ontology": {"content": CUSTOMER_TTL}, "storage": []}
    assert parse_spec(json.dumps(good)).model_type == "regression"
    with pytest.raises(TrainingFailed, match="model_type 'svm'"):
        parse_spec(json.dumps({**good, "model_type": "svm"}))
    with pytest.raises(TrainingFailed, match="version must be a positive integer"):
        parse_spec(json.dumps({**good, "version": 0}))
    with pytest.raises(TrainingFailed, match=r"storage\[0\].format"):
        parse_spec(json.dumps({**good, "storage": [{"uri": "s3://b/p", "format": "xls"}]}))


def test_settings_need_exactly_one_spec_source():
    env = {
        "TRAINER_MODEL_ID": "m", "TRAINER_RUN_ID": "r", "TRAINER_CALLBACK_URL": "http://x/",
        "TRAINER_CALLBACK_TOKEN": "t", "TRAINER_ARTIFACT_BUCKET": "b",
    }
    with pytest.raises(TrainingFailed, match="exactly one of TRAINER_SPEC"):
        Settings.from_env(env)
    settings = Settings.from_env({**env, "TRAINER_SPEC": "{}", "AWS_ENDPOINT_URL": "http://moto"})
    assert settings.callback_url == "http://x" and settings.artifact_prefix == "models"
    assert settings.endpoint_url == "http://moto"
    with pytest.raises(TrainingFailed, match="TRAINER_RUN_ID"):
        Settings.from_env({k: v for k, v in env.items() if k != "TRAINER_RUN_ID"})


# --- training -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_same_data_and_config_give_identical_metrics(model_type, wine):
    frame, ttl = wine
    first = train_and_evaluate(frame, ttl, model_type, BASE)
    second = train_and_evaluate(frame, ttl, model_type, BASE)
    assert first.performance_metrics == second.performance_metrics
    assert first.training_metrics == second.training_metrics
    assert first.performance_metrics["accuracy"] > 0.8


def test_random_seed_changes_the_split(wine):
    frame, ttl = wine
    a = train_and_evaluate(frame, ttl, "decision_tree", BASE)
    b = train_and_evaluate(frame, ttl, "decision_tree", {**BASE, "random_seed": 12})
    assert a.split["test_positions_sha256"] != b.split["test_positions_sha256"]


def test_forest_honours_max_iterations_and_hyperparameters(wine):
    frame, ttl = wine
    result = train_and_evaluate(frame, ttl, "random_forest", {**BASE, "max_iterations": 7,
                                                              "hyperparameters": {"max_depth": 2}})
    forest = result.model.pipeline[-1]
    assert len(forest.estimators_) == 7 and result.training_metrics["epoch"] == 7
    assert max(tree.get_depth() for tree in forest.estimators_) <= 2
    assert [p["epoch"] for p in result.training_metrics["learning_curve"]] == [1, 2, 3, 4, 5, 6, 7]


@pytest.mark.parametrize("model_type", ["random_forest", "regression"])
def test_minimal_diagnostics_skip_importance_and_the_forests_stages(wine, model_type):
    frame, ttl = wine
    config = {**BASE, "max_iterations": 20} if model_type == "random_forest" else BASE
    full = train_and_evaluate(frame, ttl, model_type, config)
    minimal = train_and_evaluate(frame, ttl, model_type, {**config, "diagnostics": "minimal"})
    assert set(full.performance_metrics["feature_importance"]) == set(frame.columns) - {"target"}
    assert minimal.performance_metrics["feature_importance"] is None
    assert "diagnostics minimal" in minimal.performance_metrics["feature_importance_method"]
    # The model is the same: test metrics agree (the forest grown in one go equals the one grown in stages).
    assert minimal.performance_metrics["accuracy"] == full.performance_metrics["accuracy"]
    if model_type == "random_forest":
        assert len(full.training_metrics["learning_curve"]) == 10
        assert [p["epoch"] for p in minimal.training_metrics["learning_curve"]] == [20]
        # Early stopping needs the stages: asked for, the forest is still grown in them.
        stopping = train_and_evaluate(frame, ttl, model_type, {**config, "diagnostics": "minimal",
                                                               "early_stopping_rounds": 3})
        assert len(stopping.training_metrics["learning_curve"]) > 1


def test_an_unknown_diagnostics_level_is_refused(wine):
    frame, ttl = wine
    with pytest.raises(TrainingFailed, match="training_config.diagnostics must be one of"):
        train_and_evaluate(frame, ttl, "decision_tree", {**BASE, "diagnostics": "none"})


def test_forest_early_stopping_keeps_the_best_stage(customers):
    config = {**BASE, "max_iterations": 200, "early_stopping_rounds": 1}
    result = train_and_evaluate(customers, CUSTOMER_TTL, "random_forest", config)
    curve = result.training_metrics["learning_curve"]
    if result.training_metrics["stopped_early"]:
        best = min(curve, key=lambda p: p["validation_loss"])
        assert len(result.model.pipeline[-1].estimators_) == best["epoch"] < 200


def test_network_honours_epochs_patience_learning_rate_and_batch_size(wine):
    frame, ttl = wine
    config = {**BASE, "max_iterations": 4, "learning_rate": 0.05, "batch_size": 16}
    short = train_and_evaluate(frame, ttl, "neural_network", config)
    assert short.training_metrics["epochs_run"] == 4 and len(short.training_metrics["learning_curve"]) == 4
    slower = train_and_evaluate(frame, ttl, "neural_network", {**config, "learning_rate": 0.0001})
    assert slower.training_metrics["training_loss"] > short.training_metrics["training_loss"]
    other_batch = train_and_evaluate(frame, ttl, "neural_network", {**config, "batch_size": 64})
    assert other_batch.training_metrics != short.training_metrics
    # A seed whose ~27 validation rows the network does not separate perfectly: where it does, the loss keeps
    # shrinking by tiny steps towards 0 and patience never runs out (improvement has no minimum size).
    patient = train_and_evaluate(frame, ttl, "neural_network", {**config, "max_iterations": 300, "random_seed": 12,
                                                                "early_stopping_rounds": 2, "learning_rate": 0.1})
    assert patient.training_metrics["stopped_early"] and patient.training_metrics["epochs_run"] < 300
    best = min(patient.training_metrics["learning_curve"], key=lambda p: p["validation_loss"])
    assert patient.training_metrics["epoch"] == best["epoch"]


@pytest.mark.parametrize(
    ("model_type", "hyperparameters", "words"),
    [
        ("decision_tree", {"depth": 3}, "unknown hyperparameter 'depth' for decision_tree"),
        ("regression", {"C": -1.0}, "invalid hyperparameter 'C' for regression: training_config.hyperparameters.C"),
        ("regression", {"alpha": 1.0}, "unknown hyperparameter 'alpha' for regression with a classification"),
        ("decision_tree", {"criterion": "gini", "max_depth": 0}, "max_depth must be an integer between 1 and 100"),
        ("random_forest", {"n_estimators": 5000}, "n_estimators must be an integer between 1 and 1000"),
        ("regression", {"max_iter": 5}, "set it with training_config.max_iterations"),
        ("random_forest", {"random_state": 1}, "set it with training_config.random_seed"),
        ("neural_network", {"dropout": 1.5}, "invalid hyperparameter 'dropout'"),
        ("neural_network", {"hidden_layers": [0]}, "invalid hyperparameter 'hidden_layers'"),
        ("neural_network", {"hidden_layers": [4096]},
         "hidden_layers must be a list of 1 to 8 integers between 1 and 1024"),
    ],
)
def test_bad_hyperparameters_fail_naming_them(model_type, hyperparameters, words, wine):
    frame, ttl = wine
    with pytest.raises(TrainingFailed) as info:
        train_and_evaluate(frame, ttl, model_type, {**BASE, "hyperparameters": hyperparameters})
    assert words in info.value.reason


def test_mixed_columns_unknown_categories_and_missing_inputs(customers):
    result = train_and_evaluate(customers, CUSTOMER_TTL, "random_forest", BASE)
    assert result.excluded_columns == {
        "customer_id": "identifier-like name",
        "description": "free text: mean length over 40 characters",
    }
    rows = [
        {"age": 40, "income": 3.5, "plan": "never-seen-plan", "is_active": "yes", "signup_date": "2021-06-01"},
        {"age": "n/a"},  # unparseable and missing values are imputed
    ]
    predictions = result.model.predict(rows)
    assert set(predictions) <= {"class_a", "class_b", "class_c"} and len(predictions) == 2


def test_integer_target_with_many_values_is_regression():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=300)})
    frame["target"] = (frame["x"] * 100).round().astype(int)
    result = train_and_evaluate(frame, ontology_from_frame(frame, "target"), "regression", BASE)
    assert result.task == "regression" and result.performance_metrics["r2"] > 0.9


def test_boolean_target_is_binary_classification_with_roc_auc():
    frame = load_iris(as_frame=True).frame
    frame["target"] = frame["target"] == 2
    result = train_and_evaluate(frame, ontology_from_frame(frame, "target"), "regression", BASE)
    metrics = result.performance_metrics
    assert result.target["classes"] == [False, True] and metrics["averaging"] == "binary"
    assert metrics["positive_class"] is True and 0.5 < metrics["roc_auc"] <= 1.0
    assert len(metrics["confusion_matrix"]) == 2


def test_too_few_rows_and_single_class_fail_clearly():
    frame = pd.DataFrame({"x": range(5), "label": ["a"] * 5})
    with pytest.raises(TrainingFailed, match="insufficient training data: 5 row"):
        train_and_evaluate(frame, ontology_from_frame(frame, "label"), "decision_tree", BASE)
    frame = pd.DataFrame({"x": range(30), "label": ["a"] * 30})
    with pytest.raises(TrainingFailed, match="single class"):
        train_and_evaluate(frame, ontology_from_frame(frame, "label"), "decision_tree", BASE)


def test_constant_regression_target_never_reports_nan():
    frame = pd.DataFrame({"x": np.arange(50.0), "target": np.full(50, 3.0)})
    result = train_and_evaluate(frame, ontology_from_frame(frame, "target"), "regression", BASE)
    json.dumps(result.performance_metrics, allow_nan=False)
    assert "r2" not in result.performance_metrics and result.performance_metrics["rmse"] == 0.0


def test_finite_only_drops_non_finite_numbers():
    dropped: list[str] = []
    clean = finite_only({"a": math.nan, "b": {"c": math.inf, "d": np.float64(1.5)}, "e": [1, 2]}, dropped=dropped)
    assert clean == {"b": {"d": 1.5}, "e": [1, 2]} and dropped == ["a", "b.c"]


# --- callbacks ----------------------------------------------------------------------------------------------------

class FakeResponse:
    def __init__(self, status: int) -> None:
        self.status_code, self.text = status, ""


class FakeSession:
    """Answers with the scripted statuses (an Exception instance is raised instead); records every post."""

    def __init__(self, script: list) -> None:
        self.script, self.posts = list(script), []

    def post(self, url, data, headers, timeout):
        self.posts.append({"url": url, "body": json.loads(data), "headers": headers})
        outcome = self.script.pop(0) if self.script else 200
        if isinstance(outcome, Exception):
            raise outcome
        return FakeResponse(outcome)


def client_with(script: list, attempts: int = 4):
    import requests

    script = [requests.ConnectionError("refused") if s == "down" else s for s in script]
    session, sleeps = FakeSession(script), []
    client = CallbackClient("http://api/", "model-1", "run-1", "tok", attempts=attempts, backoff=0.5,
                            session=session, sleep=sleeps.append)
    return client, session, sleeps


def test_final_report_retries_connection_errors_and_5xx_with_exponential_backoff():
    client, session, sleeps = client_with(["down", 503, 200])
    client.post_final("complete", {"x": 1})
    assert len(session.posts) == 3 and sleeps == [0.5, 1.0]
    assert session.posts[0]["url"] == "http://api/api/ml-models/model-1/training/complete"
    assert session.posts[0]["headers"]["Authorization"] == "Bearer tok"
    assert session.posts[0]["headers"]["X-Training-Run-Id"] == "run-1"


def test_final_report_gives_up_after_bounded_attempts():
    client, session, _ = client_with([500] * 10, attempts=4)
    with pytest.raises(CallbackRejected, match="after 4 attempt"):
        client.post_final("fail", {"reason": "x"})
    assert len(session.posts) == 4


def test_4xx_is_final_but_409_after_a_retry_means_already_recorded():
    client, session, _ = client_with([400])
    with pytest.raises(CallbackRejected, match="HTTP 400"):
        client.post_final("complete", {})
    assert len(session.posts) == 1
    client, session, _ = client_with([502, 409])
    client.post_final("complete", {})
    client, session, _ = client_with([409])
    with pytest.raises(CallbackRejected, match="HTTP 409"):
        client.post_final("complete", {})


def test_reporter_sends_one_final_report_only():
    client, session, _ = client_with([])
    reporter = Reporter(client)
    assert reporter.complete("s3://b/m/v1/", {"accuracy": 1.0}, {"epoch": 1})
    assert not reporter.fail("late SIGTERM")
    assert [p["url"].rsplit("/", 1)[1] for p in session.posts] == ["complete"]


def test_progress_is_throttled_and_never_raises():
    client, session, _ = client_with(["down", 404, 200, 200])
    now = [0.0]
    throttle = ProgressThrottle(client, interval=2.0, clock=lambda: now[0])
    for epoch in range(1, 11):  # ten epochs over 5 seconds
        throttle(epoch, 1.0, float("nan") if epoch == 5 else 1.0)
        now[0] += 0.5
    assert [p["body"]["epoch"] for p in session.posts] == [1, 9]  # epoch 5's NaN loss is not sent
    assert len(session.posts) == 2


def test_the_publish_gate_stops_only_when_the_api_says_the_run_is_over():
    import threading

    from trainer.callback import PublishGate
    from trainer.errors import RunEnded

    client, session, _ = client_with([200, 409, 401, 500, "down", 200])  # the first: epoch 1's progress
    throttle = ProgressThrottle(client, interval=1000.0, clock=lambda: 0.0)
    throttle(1, 0.5, 0.5)
    throttle(2, 0.4, 0.4)  # throttled, but still the latest epoch
    gate = PublishGate(client, throttle)
    for _ in range(2):  # cancelled or superseded (409); token gone with the model (401)
        with pytest.raises(RunEnded, match="nothing was published"):
            gate.check()
    gate.check()  # 500: the API decides at the complete report
    gate.check()  # unreachable: likewise
    with gate.publishing():
        pass
    assert [p["url"].rsplit("/", 1)[1] for p in session.posts] == ["progress"] * 6
    assert session.posts[-1]["body"] == {"epoch": 2}

    gate.shut()  # SIGTERM: nothing is published after it
    published = threading.Event()

    def publish() -> None:
        with gate.publishing():
            published.set()

    threading.Thread(target=publish, daemon=True).start()
    assert not published.wait(0.3)


def test_upload_writes_the_manifest_inside_the_guard_and_not_when_it_refuses(s3):
    import contextlib

    from trainer_helpers import ARTIFACT_BUCKET

    from trainer.artifacts import ArtifactLocation, upload
    from trainer.errors import RunEnded

    location = ArtifactLocation.for_version(ARTIFACT_BUCKET, "unit-guard", "model-guard", 1)

    @contextlib.contextmanager
    def refuse():
        raise RunEnded("cancelled")
        yield

    with pytest.raises(RunEnded):
        upload(s3, location, {"model.skops": b"x"}, {"run_id": "r"}, guard=refuse)
    listed = s3.list_objects_v2(Bucket=ARTIFACT_BUCKET, Prefix=location.prefix).get("Contents", [])
    assert [o["Key"] for o in listed] == [location.key("model.skops")]  # files without a manifest: no version


# --- artifacts ----------------------------------------------------------------------------------------------------

def test_loader_verifies_sha256_and_refuses_untrusted_types(s3, wine):
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer
    from trainer_helpers import ARTIFACT_BUCKET

    from trainer.artifacts import ArtifactLocation, build_manifest, upload
    from trainer.loader import load_model
    from trainer.spec import spec_from_dict

    frame, ttl = wine
    result = train_and_evaluate(frame, ttl, "decision_tree", BASE)
    spec = spec_from_dict({"model_id": "model-unit", "run_id": "run-unit", "model_type": "decision_tree",
                           "version": 1, "ontology": {"content": ttl}, "training_config": BASE})
    location = ArtifactLocation.for_version(ARTIFACT_BUCKET, "unit", "model-unit", 1)
    files = result.model.files()
    upload(s3, location, files, build_manifest(spec, result, files, location, {"synthetic": False}))

    model = load_model(location.uri, s3)
    assert model.predict(frame.head(5)) == result.model.predict(frame.head(5))
    with pytest.raises(TrainingFailed, match="committed by another run"):
        upload(s3, location, files, build_manifest(spec, result, files, location, {"synthetic": False}))

    s3.put_object(Bucket=ARTIFACT_BUCKET, Key=location.key("model.skops"), Body=files["model.skops"] + b"x")
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        load_model(location.uri, s3)

    import skops.io as sio

    from trainer.fitted import SklearnModel

    evil = sio.dumps(Pipeline([("f", FunctionTransformer(func=eval))]))
    with pytest.raises(ArtifactError, match="outside the trainer's trusted list"):
        SklearnModel.from_files({"model.skops": evil}, "regression", None)


def test_storage_uri_means_the_object_or_its_folder_not_siblings(s3):
    from trainer_helpers import DATA_BUCKET

    from trainer.storage import list_data_objects

    for key in ("units/data", "units/data/a.csv", "units/data/_SUCCESS", "units/data-old/b.csv", "units/datab.csv"):
        s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=b"x,label\n1,a\n")
    keys = [o.key for o in list_data_objects(s3, f"s3://{DATA_BUCKET}/units/data", "csv")]
    assert keys == ["units/data", "units/data/a.csv"]
    keys = [o.key for o in list_data_objects(s3, f"s3://{DATA_BUCKET}/units/data/", "csv")]
    assert keys == ["units/data/a.csv"]


def test_long_learning_curves_are_thinned_keeping_the_best_point():
    from trainer.metrics import thin_curve

    curve = [{"epoch": i, "training_loss": 1.0, "validation_loss": abs(i - 333) + 1.0} for i in range(1, 1001)]
    thinned = thin_curve(curve, limit=200)
    assert len(thinned) <= 200 and thinned[0]["epoch"] == 1 and thinned[-1]["epoch"] == 1000
    assert {"epoch": 333, "training_loss": 1.0, "validation_loss": 1.0} in thinned
    assert thin_curve(curve[:50]) == curve[:50]


@pytest.mark.parametrize("model_type", ["decision_tree", "neural_network"])
def test_permutation_importance_predicts_its_copies_together_with_the_numbers_of_one_copy_a_call(
        wine, model_type, monkeypatch):
    """All shuffled copies in one predict call give what predicting each copy alone gives."""
    from trainer import metrics

    frame, ttl = wine
    result = train_and_evaluate(frame, ttl, model_type, BASE)
    features = [c for c in frame.columns if c != "target"]
    sample = frame[features].iloc[:120].reset_index(drop=True)
    y = frame["target"].iloc[:120].map({label: i for i, label in enumerate(result.target["classes"])}).to_numpy()

    def run(cells):
        monkeypatch.setattr(metrics, "IMPORTANCE_CALL_CELLS", cells)
        calls = []

        def predict(f):
            calls.append(len(f))
            return result.model.predict_proba(f)
        scores = metrics.permutation_importance(sample, features, predict, lambda p: metrics.log_loss(y, p), seed=3)
        return scores, calls

    together, calls_together = run(10_000_000)
    alone, calls_alone = run(1)
    copies = 1 + 2 * len(features)
    assert calls_together == [copies * len(sample)] and calls_alone == [len(sample)] * copies
    assert together.keys() == alone.keys() == set(features)
    assert all(math.isclose(together[k], alone[k], rel_tol=1e-5, abs_tol=1e-9) for k in features)
    assert math.isclose(sum(together.values()), 1.0) and max(together.values()) > 0


@pytest.mark.parametrize("model_type", ["decision_tree", "random_forest", "regression", "neural_network"])
def test_labels_and_probabilities_from_one_prediction_are_those_of_two(wine, model_type):
    frame, ttl = wine
    model = train_and_evaluate(frame, ttl, model_type, BASE).model
    rows = frame.drop(columns="target").iloc[::3]
    codes, proba = model.predict_encoded_and_proba(rows)
    assert np.array_equal(codes, model.predict_encoded(rows))
    assert np.array_equal(proba, model.predict_proba(rows))
