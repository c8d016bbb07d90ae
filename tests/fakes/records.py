"""Sample records with every field set (for repository and service tests)."""
from __future__ import annotations

from chalicelib.records import MlModel, Ontology, StorageConfig, TrainingRun


def at(second: int) -> str:
    return f"2026-01-01T00:{second // 60:02d}:{second % 60:02d}.000000Z"


def a_model(key: str, project: str, created: int = 0, **changes) -> MlModel:
    return MlModel(
        id=key, project_id=project, ontology_id=changes.pop("ontology_id", "onto-1"), name="Predictor",
        type="neural_network", status="trained", created_at=at(created), updated_at=at(created + 1),
        description="predicts", version=3, training_config={"random_seed": 42, "learning_rate": 0.001},
        metadata={"owner": "team-a", "tags": ["x", "y"]}, training_metrics={"epoch": 4, "loss": 0.25},
        performance_metrics={"r2": 0.875}, model_artifact_path=f"s3://artifacts/models/{key}/v3/",
        training_task_id="run-9", is_recommended=True, recommendation_score=87.5, trained_at=at(created + 2),
        runs_started=3,
    ).but(**changes)


def an_ontology(key: str, project: str, created: int = 0, **changes) -> Ontology:
    return Ontology(id=key, project_id=project, name="Sensors", content="@prefix ex: <http://e/#> .",
                    created_at=at(created), updated_at=at(created + 1), description="readings",
                    summary={"classes": [], "datatype_properties": [], "object_properties": [], "triples": 1},
                    ).but(**changes)


def a_storage_config(key: str, project: str, created: int = 0, **changes) -> StorageConfig:
    return StorageConfig(id=key, project_id=project, name="readings", uri=f"s3://data/{project}/readings/",
                         format="csv", created_at=at(created), updated_at=at(created + 1),
                         ontology_id="onto-1").but(**changes)


def a_run(key: str, project: str, created: int = 0, **changes) -> TrainingRun:
    return TrainingRun(
        run_id=key, model_id=changes.pop("model_id", "model-1"), project_id=project, version=2,
        model_type="random_forest", status="running", callback_token_hash="ab" * 32, created_at=at(created),
        updated_at=at(created + 1), status_history=[{"status": "queued", "at": at(created), "note": "accepted"}],
        training_config={"random_seed": 1}, storage_ids=["storage-1"], storage_uris=["s3://data/p/x/"],
        job_name=f"train-{key}", previous_model_status="trained", failure_reason="", model_artifact_path="",
        performance_metrics={"accuracy": 0.5}, training_metrics={"epoch": 1}, deadline_at=at(created + 600),
    ).but(**changes)
