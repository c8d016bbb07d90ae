"""DynamoDB schema, declared with PynamoDB. Schema only: behaviour lives in the repositories.

Table names and the endpoint are bound at run time from `Settings` (`bind_tables`);
runtime code never creates tables (only `scripts/local_stack.py` and tests do).
"""
from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    NumberAttribute,
    UnicodeAttribute,
    VersionAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from chalicelib.config import Settings


class ProjectIndex(GlobalSecondaryIndex):
    """Records of one project, newest first (Query with scan_index_forward=False)."""

    class Meta:
        index_name = "project_id-created_at-index"
        projection = AllProjection()

    project_id = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class ModelOntologyIndex(GlobalSecondaryIndex):
    """Which models reference an ontology (guards ontology deletion)."""

    class Meta:
        index_name = "ontology_id-index"
        projection = KeysOnlyProjection()

    ontology_id = UnicodeAttribute(hash_key=True)


class MonitoringDueIndex(GlobalSecondaryIndex):
    """Monitored models by when their next evaluation is due (sparse: only models with monitoring)."""

    class Meta:
        index_name = "monitor_shard-next_evaluation_at-index"
        projection = KeysOnlyProjection()

    monitor_shard = UnicodeAttribute(hash_key=True)
    next_evaluation_at = UnicodeAttribute(range_key=True)


class MlModelTable(Model):
    class Meta:
        table_name = "ml-models"

    id = UnicodeAttribute(hash_key=True)
    project_id = UnicodeAttribute()
    ontology_id = UnicodeAttribute()
    name = UnicodeAttribute()
    description = UnicodeAttribute(default="")
    type = UnicodeAttribute()
    status = UnicodeAttribute()
    version = NumberAttribute(default=0)
    training_config = JSONAttribute(default=dict)
    metadata = JSONAttribute(default=dict)
    training_metrics = JSONAttribute(default=dict)
    performance_metrics = JSONAttribute(default=dict)
    model_artifact_path = UnicodeAttribute(default="")
    training_task_id = UnicodeAttribute(default="")
    is_recommended = BooleanAttribute(default=False)
    recommendation_score = NumberAttribute(null=True)
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    trained_at = UnicodeAttribute(null=True)
    # How many training runs were ever started: the next run's version number.
    runs_started = NumberAttribute(default=0)
    monitoring = JSONAttribute(default=dict)
    monitor_shard = UnicodeAttribute(null=True)
    next_evaluation_at = UnicodeAttribute(null=True)
    lock_version = VersionAttribute()

    project_index = ProjectIndex()
    ontology_index = ModelOntologyIndex()
    due_index = MonitoringDueIndex()


class OntologyTable(Model):
    class Meta:
        table_name = "ml-ontologies"

    id = UnicodeAttribute(hash_key=True)
    project_id = UnicodeAttribute()
    name = UnicodeAttribute()
    description = UnicodeAttribute(default="")
    content = UnicodeAttribute()
    # The parsed content, written with it (chalicelib.records.Ontology.summary).
    summary = JSONAttribute(default=dict)
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    lock_version = VersionAttribute()

    project_index = ProjectIndex()


class StorageConfigTable(Model):
    class Meta:
        table_name = "ml-storage-configs"

    id = UnicodeAttribute(hash_key=True)
    project_id = UnicodeAttribute()
    name = UnicodeAttribute()
    ontology_id = UnicodeAttribute(null=True)
    uri = UnicodeAttribute()
    format = UnicodeAttribute()
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    lock_version = VersionAttribute()

    project_index = ProjectIndex()


class RunsByModelIndex(GlobalSecondaryIndex):
    """Runs of one model, newest (highest version) first."""

    class Meta:
        index_name = "model_id-version-index"
        projection = AllProjection()

    model_id = UnicodeAttribute(hash_key=True)
    version = NumberAttribute(range_key=True)


class RunsByProjectStatusIndex(GlobalSecondaryIndex):
    """Runs of one project in one status: how many are active (the per-project limit on concurrent runs)."""

    class Meta:
        index_name = "project_id-status-index"
        projection = KeysOnlyProjection()

    project_id = UnicodeAttribute(hash_key=True)
    status = UnicodeAttribute(range_key=True)


class RunsByStatusIndex(GlobalSecondaryIndex):
    """Runs in one status across projects, least recently changed first: what the reconciler sweeps
    (services/reconciler.py). Only the active statuses are ever queried."""

    class Meta:
        index_name = "status-updated_at-index"
        projection = AllProjection()

    status = UnicodeAttribute(hash_key=True)
    updated_at = UnicodeAttribute(range_key=True)


class TrainingRunTable(Model):
    class Meta:
        table_name = "ml-training-runs"

    run_id = UnicodeAttribute(hash_key=True)
    model_id = UnicodeAttribute()
    project_id = UnicodeAttribute()
    version = NumberAttribute()
    model_type = UnicodeAttribute()
    status = UnicodeAttribute()
    status_history = JSONAttribute(default=list)
    training_config = JSONAttribute(default=dict)
    storage_ids = JSONAttribute(default=list)
    storage_uris = JSONAttribute(default=list)
    job_name = UnicodeAttribute(default="")
    previous_model_status = UnicodeAttribute(default="draft")
    failure_reason = UnicodeAttribute(default="")
    model_artifact_path = UnicodeAttribute(default="")
    performance_metrics = JSONAttribute(default=dict)
    training_metrics = JSONAttribute(default=dict)
    callback_token_hash = UnicodeAttribute()
    # After this instant a run that has not reported is failed (see TrainingService.expire_if_overdue).
    deadline_at = UnicodeAttribute(null=True)
    data_lineage = JSONAttribute(default=dict)
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    lock_version = VersionAttribute()

    model_index = RunsByModelIndex()
    project_status_index = RunsByProjectStatusIndex()
    status_index = RunsByStatusIndex()


class JobsByModelKindIndex(GlobalSecondaryIndex):
    """One model's jobs of one kind ("<model_id>#<kind>"), newest first."""

    class Meta:
        index_name = "model_kind-created_at-index"
        projection = AllProjection()

    model_kind = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class JobsByStatusIndex(GlobalSecondaryIndex):
    """Jobs in one status, least recently changed first (the reconciler; only active statuses are queried)."""

    class Meta:
        index_name = "status-updated_at-index"
        projection = AllProjection()

    status = UnicodeAttribute(hash_key=True)
    updated_at = UnicodeAttribute(range_key=True)


class ModelJobTable(Model):
    """Jobs that use a trained version: batch predictions (records.ModelJob)."""

    class Meta:
        table_name = "ml-model-jobs"

    id = UnicodeAttribute(hash_key=True)
    kind = UnicodeAttribute()
    model_id = UnicodeAttribute()
    project_id = UnicodeAttribute()
    version = NumberAttribute()
    status = UnicodeAttribute()
    callback_token_hash = UnicodeAttribute()
    model_kind = UnicodeAttribute()
    artifact_uri = UnicodeAttribute(default="")
    output_uri = UnicodeAttribute(default="")
    storage_ids = JSONAttribute(default=list)
    storage_uris = JSONAttribute(default=list)
    parameters = JSONAttribute(default=dict)
    result = JSONAttribute(default=dict)
    status_history = JSONAttribute(default=list)
    job_name = UnicodeAttribute(default="")
    failure_reason = UnicodeAttribute(default="")
    deadline_at = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    lock_version = VersionAttribute()

    model_kind_index = JobsByModelKindIndex()
    status_index = JobsByStatusIndex()


class RecommendationTable(Model):
    """The last recommendation per project and ontology."""

    class Meta:
        table_name = "ml-recommendations"

    project_id = UnicodeAttribute(hash_key=True)
    ontology_id = UnicodeAttribute(range_key=True)
    recommended_type = UnicodeAttribute()
    score = NumberAttribute()
    result = JSONAttribute(default=dict)
    created_at = UnicodeAttribute()


class WsConnectionTable(Model):
    """WebSocket connections and subscriptions (one table, expiring by TTL).

    pk "conn#<id>", sk "meta"                → a connection
    pk "conn#<id>", sk "sub#project#<pid>"   → what a connection subscribed to (for cleanup)
    pk "sub#project#<pid>", sk "<conn id>"   → who listens to a project (or "sub#model#<mid>")
    """

    class Meta:
        table_name = "ml-ws-connections"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    expires_at = NumberAttribute()
    # On the "meta" item: who connected (chalicelib.auth.principal.Principal.to_dict()).
    principal = JSONAttribute(null=True)


ALL_TABLES: dict[str, type[Model]] = {
    "models": MlModelTable,
    "ontologies": OntologyTable,
    "storage_configs": StorageConfigTable,
    "training_runs": TrainingRunTable,
    "model_jobs": ModelJobTable,
    "recommendations": RecommendationTable,
    "ws_connections": WsConnectionTable,
}


_BOUND = ("table_name", "region", "host", "connect_timeout_seconds", "read_timeout_seconds", "max_retry_attempts")


def bind_tables(settings: Settings) -> None:
    """Point every table class at the stage's table names, region, endpoint and time budget.

    PynamoDB 6.1 hands `connect_timeout_seconds`, `read_timeout_seconds` and `max_retry_attempts`
    to botocore as Config(connect_timeout, read_timeout, retries={"total_max_attempts":
    1 + max_retry_attempts, "mode": "standard"}): the same budget as every other AWS client
    (chalicelib/adapters/aws_faults.py). Its defaults (15 s, 30 s, 4 attempts) let one hung call
    outlast the Lambda several times. (6.1 has no `base_backoff_ms`; botocore's standard mode backs off.)
    """
    names = settings.table_names()
    for key, table in ALL_TABLES.items():
        binding = (names[key], settings.region, settings.aws_endpoint_url, settings.aws_connect_timeout_seconds,
                   settings.aws_read_timeout_seconds, max(0, settings.aws_max_attempts - 1))
        if binding == tuple(getattr(table.Meta, name, None) for name in _BOUND):
            continue  # keep the connection (and its botocore client) PynamoDB already made
        for name, value in zip(_BOUND, binding, strict=True):
            setattr(table.Meta, name, value)
        # PynamoDB caches its connection on first use; drop it so the new binding takes effect.
        table._connection = None
