"""Stage settings: the only module that reads `os.environ`.

Chalice puts each stage's `environment_variables` (see `.chalice/config.json`)
into the Lambda environment; everything else receives a `Settings`.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

MAX_BODY_BYTES = 1024 * 1024
LOCAL_STAGE = "local"


class ConfigurationError(RuntimeError):
    """The stage's settings cannot serve requests safely (for example: no token issuer)."""


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
    model_jobs_table: str = "ml-model-jobs"
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
    # Where the local launcher writes each run's trainer output; "" is .local/runs/ in the repo
    # (`make run` sets .local/runs/<API port>/, so two stacks on one machine never share a folder).
    local_run_log_dir: str = ""
    # How long a run may take before it is failed: the Job's activeDeadlineSeconds,
    # plus a grace period for the trainer's own fail report to arrive.
    training_deadline_seconds: int = 6 * 3600
    training_grace_seconds: int = 600
    # A tuned run (training_config.tuning) is bounded by its search budget plus this margin (data loading,
    # the final fit on the whole training split, test metrics, saving): its Job's deadline.
    tuning_margin_seconds: int = 900
    # The reconciler (services/reconciler.py): a run whose pod cannot start (ImagePullBackOff,
    # Unschedulable, ...) this long after acceptance is failed; one still queued with no job this long
    # after acceptance was never submitted. Each sweep settles at most `reconcile_max_runs` runs and
    # stops starting new ones after `reconcile_budget_seconds` (the scheduled Lambda has 30 s).
    training_start_deadline_seconds: int = 600
    training_submission_grace_seconds: int = 300
    reconcile_max_runs: int = 100
    reconcile_budget_seconds: float = 20.0
    # Runs of one project that may be active (queued, submitted, running) at once; the next
    # train request answers 429 (services/training.py).
    max_concurrent_runs_per_project: int = 5
    # WebSocket management endpoint (API Gateway); empty disables notifications.
    websocket_endpoint_url: str = ""
    max_body_bytes: int = MAX_BODY_BYTES
    # Identity: "jwt" verifies every user request's bearer token against the OIDC issuer;
    # "off" (AUTH=off make run) serves the local stage without authentication.
    auth_mode: str = "jwt"
    auth_issuer: str = ""
    auth_audience: str = ""
    auth_jwks_url: str = ""
    # Claims that carry a caller's project roles (docs/DEPLOY.md): {"proj-123": "editor"} and
    # groups "project:proj-123:viewer"; a member of the admin group may act on every project.
    auth_projects_claim: str = "projects"
    auth_groups_claim: str = "cognito:groups"
    auth_admin_group: str = "admin"
    # Where projects' data may live: s3://<data bucket>/<project_id>/ for each bucket, plus
    # per-project grants {"proj-123": ["s3://team-bucket/prefix/"]} (JSON).
    data_buckets: str = ""
    project_data_grants: str = "{}"
    # The role the API assumes, with a per-run session policy, for each trainer's AWS access.
    trainer_run_role_arn: str = ""
    # Online predictions: the Lambda function (name or ARN) the API invokes synchronously
    # (infra/cloudformation/predictor.yaml), and where its Invoke calls go instead of AWS
    # (the local stack only; None means the real Lambda endpoint).
    predictor_function: str = ""
    predictor_endpoint_url: str | None = None
    trainer_credentials_seconds: int = 3600
    # Every AWS call (DynamoDB, S3, STS, the WebSocket management API): connect and read timeouts
    # and the total attempts per call, so a dependency that hangs ends the call within
    # attempts x (connect + read) + backoff (default 2 x (2 + 5) + ~1 = 15 s), inside the 30 s Lambda.
    aws_connect_timeout_seconds: float = 2.0
    aws_read_timeout_seconds: float = 5.0
    aws_max_attempts: int = 2

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
            model_jobs_table=env.get("MODEL_JOBS_TABLE", defaults.model_jobs_table),
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
            tuning_margin_seconds=int(env.get("TUNING_MARGIN_SECONDS", defaults.tuning_margin_seconds)),
            training_start_deadline_seconds=int(env.get("TRAINING_START_DEADLINE_SECONDS",
                                                        defaults.training_start_deadline_seconds)),
            training_submission_grace_seconds=int(env.get("TRAINING_SUBMISSION_GRACE_SECONDS",
                                                          defaults.training_submission_grace_seconds)),
            reconcile_max_runs=int(env.get("RECONCILE_MAX_RUNS", defaults.reconcile_max_runs)),
            reconcile_budget_seconds=float(env.get("RECONCILE_BUDGET_SECONDS", defaults.reconcile_budget_seconds)),
            local_max_concurrent_jobs=int(env.get("LOCAL_MAX_CONCURRENT_JOBS", defaults.local_max_concurrent_jobs)),
            local_run_log_dir=env.get("LOCAL_RUN_LOG_DIR", defaults.local_run_log_dir),
            max_concurrent_runs_per_project=int(env.get("MAX_CONCURRENT_RUNS_PER_PROJECT",
                                                        defaults.max_concurrent_runs_per_project)),
            websocket_endpoint_url=env.get("WEBSOCKET_ENDPOINT_URL", defaults.websocket_endpoint_url),
            auth_mode=env.get("AUTH_MODE", defaults.auth_mode).strip().lower(),
            auth_issuer=env.get("AUTH_ISSUER", defaults.auth_issuer),
            auth_audience=env.get("AUTH_AUDIENCE", defaults.auth_audience),
            auth_jwks_url=env.get("AUTH_JWKS_URL", defaults.auth_jwks_url),
            auth_projects_claim=env.get("AUTH_PROJECTS_CLAIM") or defaults.auth_projects_claim,
            auth_groups_claim=env.get("AUTH_GROUPS_CLAIM") or defaults.auth_groups_claim,
            auth_admin_group=env.get("AUTH_ADMIN_GROUP") or defaults.auth_admin_group,
            data_buckets=env.get("DATA_BUCKETS", defaults.data_buckets),
            project_data_grants=env.get("PROJECT_DATA_GRANTS") or defaults.project_data_grants,
            trainer_run_role_arn=env.get("TRAINER_RUN_ROLE_ARN", defaults.trainer_run_role_arn),
            predictor_function=env.get("PREDICTOR_FUNCTION", defaults.predictor_function),
            predictor_endpoint_url=env.get("PREDICTOR_ENDPOINT_URL") or None,
            trainer_credentials_seconds=int(env.get("TRAINER_CREDENTIALS_SECONDS",
                                                    defaults.trainer_credentials_seconds)),
            aws_connect_timeout_seconds=float(env.get("AWS_CONNECT_TIMEOUT_SECONDS",
                                                      defaults.aws_connect_timeout_seconds)),
            aws_read_timeout_seconds=float(env.get("AWS_READ_TIMEOUT_SECONDS", defaults.aws_read_timeout_seconds)),
            aws_max_attempts=int(env.get("AWS_CALL_MAX_ATTEMPTS", defaults.aws_max_attempts)),
        )

    def check(self) -> None:
        """Refuse settings that would serve requests unsafely (raised when the graph is built)."""
        if self.auth_mode not in ("jwt", "off"):
            raise ConfigurationError(f"AUTH_MODE must be 'jwt' or 'off', not {self.auth_mode!r}")
        if self.auth_mode == "off" and self.stage != LOCAL_STAGE:
            raise ConfigurationError(f"authentication can only be turned off on the local stage, not {self.stage!r}")
        if self.auth_mode == "jwt":
            missing = [name for name, value in (("AUTH_ISSUER", self.auth_issuer), ("AUTH_AUDIENCE",
                       self.auth_audience), ("AUTH_JWKS_URL", self.auth_jwks_url)) if not value]
            if missing:
                raise ConfigurationError(f"no token issuer configured ({', '.join(missing)} unset); a stage does "
                                         "not serve requests without one (locally: make run, or AUTH=off make run)")
        if self.stage != LOCAL_STAGE and self.launcher != "local" and not self.trainer_run_role_arn:
            raise ConfigurationError("TRAINER_RUN_ROLE_ARN is unset: trainers would run with their shared role")

    @property
    def debug(self) -> bool:
        return self.stage == "local"

    def table_names(self) -> dict[str, str]:
        return {
            "models": self.models_table,
            "ontologies": self.ontologies_table,
            "storage_configs": self.storage_configs_table,
            "training_runs": self.training_runs_table,
            "model_jobs": self.model_jobs_table,
            "recommendations": self.recommendations_table,
            "ws_connections": self.ws_connections_table,
        }


def check_lambda_environment(environ: Mapping[str, str] | None = None) -> None:
    """In a Lambda container, refuse to start (an init error) with settings that cannot serve safely,
    such as a deployed stage without a token issuer. Elsewhere (tests, tools) nothing is checked here."""
    env = os.environ if environ is None else environ
    if env.get("AWS_LAMBDA_FUNCTION_NAME"):
        Settings.from_environ(env).check()
