"""Stage settings: the only module that reads `os.environ`.

Chalice puts each stage's `environment_variables` (see `.chalice/config.json`)
into the Lambda environment; everything else receives a `Settings`.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    stage: str = "local"
    region: str = "us-east-1"
    # Where boto3/PynamoDB send requests; None means the real AWS endpoints.
    aws_endpoint_url: str | None = None
    models_table: str = "ml-models"
    ontologies_table: str = "ml-ontologies"
    storage_configs_table: str = "ml-storage-configs"
    training_runs_table: str = "ml-training-runs"
    recommendations_table: str = "ml-recommendations"
    ws_connections_table: str = "ml-ws-connections"
    artifact_bucket: str = "ml-models-artifacts"
    artifact_prefix: str = "models"
    # "local" runs the trainer as a subprocess; "eks" submits a Kubernetes Job.
    launcher: str = "local"
    # Public base URL the trainer calls back (API Gateway stage URL in AWS).
    callback_base_url: str = "http://127.0.0.1:8080"
    eks_cluster_name: str = ""
    trainer_namespace: str = "ml-training"
    trainer_image: str = ""
    trainer_service_account: str = "ml-trainer"
    # Request one GPU for neural_network Jobs (EKS launcher).
    trainer_gpu: bool = False
    local_max_concurrent_jobs: int = 2
    # How long a run may take before it is failed: the Job's activeDeadlineSeconds,
    # plus a grace period for the trainer's own fail report to arrive.
    training_deadline_seconds: int = 6 * 3600
    training_grace_seconds: int = 600
    # WebSocket management endpoint (API Gateway); empty disables notifications.
    websocket_endpoint_url: str = ""
    max_body_bytes: int = MAX_BODY_BYTES

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        defaults = cls()
        return cls(
            stage=env.get("APP_STAGE", defaults.stage),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or defaults.region,
            aws_endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            models_table=env.get("MODELS_TABLE", defaults.models_table),
            ontologies_table=env.get("ONTOLOGIES_TABLE", defaults.ontologies_table),
            storage_configs_table=env.get("STORAGE_CONFIGS_TABLE", defaults.storage_configs_table),
            training_runs_table=env.get("TRAINING_RUNS_TABLE", defaults.training_runs_table),
            recommendations_table=env.get("RECOMMENDATIONS_TABLE", defaults.recommendations_table),
            ws_connections_table=env.get("WS_CONNECTIONS_TABLE", defaults.ws_connections_table),
            artifact_bucket=env.get("ARTIFACT_BUCKET", defaults.artifact_bucket),
            artifact_prefix=env.get("ARTIFACT_PREFIX", defaults.artifact_prefix),
            launcher=env.get("TRAINING_LAUNCHER", defaults.launcher),
            callback_base_url=env.get("CALLBACK_BASE_URL", defaults.callback_base_url).rstrip("/"),
            eks_cluster_name=env.get("EKS_CLUSTER_NAME", defaults.eks_cluster_name),
            trainer_namespace=env.get("TRAINER_NAMESPACE", defaults.trainer_namespace),
            trainer_image=env.get("TRAINER_IMAGE", defaults.trainer_image),
            trainer_service_account=env.get("TRAINER_SERVICE_ACCOUNT", defaults.trainer_service_account),
            trainer_gpu=env.get("TRAINER_GPU", "false").lower() in ("1", "true", "yes"),
            training_deadline_seconds=int(env.get("TRAINING_DEADLINE_SECONDS", defaults.training_deadline_seconds)),
            local_max_concurrent_jobs=int(env.get("LOCAL_MAX_CONCURRENT_JOBS", defaults.local_max_concurrent_jobs)),
            websocket_endpoint_url=env.get("WEBSOCKET_ENDPOINT_URL", defaults.websocket_endpoint_url),
        )

    @property
    def debug(self) -> bool:
        return self.stage == "local"

    def table_names(self) -> dict[str, str]:
        return {
            "models": self.models_table,
            "ontologies": self.ontologies_table,
            "storage_configs": self.storage_configs_table,
            "training_runs": self.training_runs_table,
            "recommendations": self.recommendations_table,
            "ws_connections": self.ws_connections_table,
        }
