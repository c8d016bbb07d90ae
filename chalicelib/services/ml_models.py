"""ML model records: create, read, list, update (with the status state machine), delete."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.errors import Conflict, InvalidInput, StaleRecord
from chalicelib.records import MlModel
from chalicelib.services import validation as v
from chalicelib.services.common import Clock, IdFactory, new_id, utc_now
from chalicelib.services.notifications import NullNotifier
from chalicelib.services.ports import (
    MONITOR_SHARD,
    RETRIES_ON_STALE,
    ModelRepository,
    OntologyRepository,
    RecommendationRepository,
)

# Status changes a user may make through PUT. `training`, and `trained`/`failed`
# coming out of training, are set only by the training flow.
USER_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "draft": ("deprecated", "archived"),
    "training": (),
    "trained": ("degraded", "deprecated", "archived"),
    "degraded": ("trained", "deprecated", "archived"),
    "failed": ("deprecated", "archived", "draft"),
    "deprecated": ("archived", "draft"),
    "archived": ("draft",),
}

CREATE_FIELDS = ("project_id", "ontology_id", "name", "description", "type", "training_config", "metadata",
                 "monitoring")
UPDATE_FIELDS = ("name", "description", "status", "training_metrics", "performance_metrics", "metadata",
                 "monitoring")


def current_version(model: MlModel) -> int | None:
    """The version the model serves: its last trained (or promoted) one; None if it never trained."""
    return model.version if model.version > 0 and model.model_artifact_path else None


def check_transition(current: str, target: str, has_version: bool = False) -> None:
    """`has_version`: the model has a current version, so a failed retrain may go back to `trained`
    (a failed run leaves the version it had in place)."""
    if target == current:
        return
    allowed = USER_TRANSITIONS[current] + (("trained",) if current == "failed" and has_version else ())
    if target not in allowed:
        targets = ", ".join(allowed) if allowed else "none (training ends by itself)"
        hint = " (failed goes back to trained only with a trained version)" if (current, target) == (
            "failed", "trained") else ""
        raise Conflict(
            f"cannot change status from {current} to {target}; allowed from {current}: {targets}{hint}",
            field="status",
            current_status=current,
            allowed_statuses=list(allowed),
        )


def parse_update(body: Any) -> tuple[dict[str, Any], str | None, dict[str, Any] | None]:
    """A PUT body as (plain field changes, new status or None, metadata patch or None)."""
    body = v.require_object(body)
    v.reject_unknown(body, UPDATE_FIELDS)
    changes: dict[str, Any] = {}
    if "name" in body:
        changes["name"] = v.string(body, "name", required=True)
    if "description" in body:
        changes["description"] = v.string(body, "description", max_len=v.MAX_DESCRIPTION, allow_empty=True) or ""
    for name in ("training_metrics", "performance_metrics"):
        if name in body:
            changes[name] = v.finite_metrics(body[name], name)
    if "monitoring" in body:
        changes["monitoring"] = v.monitoring(body["monitoring"])
    status = v.choice(body, "status", v.STATUSES) if "status" in body else None
    patch = v.json_object(body, "metadata") if "metadata" in body else None
    return changes, status, patch


def with_monitoring(model: MlModel, settings: dict[str, Any], now: str) -> MlModel:
    """The model with `settings` as its monitoring: on the due index from now (its first evaluation on the
    next schedule), or off it."""
    if not settings:
        return model.but(monitoring={}, monitor_shard=None, next_evaluation_at=None)
    return model.but(monitoring=settings, monitor_shard=MONITOR_SHARD, next_evaluation_at=now)


class MlModelService:
    def __init__(self, models: ModelRepository, ontologies: OntologyRepository,
                 recommendations: RecommendationRepository | None = None,
                 overdue: Callable[[MlModel], MlModel] | None = None, notifier: Any = None,
                 clock: Clock = utc_now, ids: IdFactory = new_id,
                 remains: Callable[[MlModel], None] | None = None,
                 storage_check: Callable[[str, list[str]], Any] | None = None) -> None:
        self.models = models
        self.ontologies = ontologies
        self.clock = clock
        self.ids = ids
        self.recommendations = recommendations
        # Settles a training run that is past its deadline (RunSettlement.expire_if_overdue).
        self.overdue = overdue or (lambda model: model)
        self.notifier = notifier or NullNotifier()
        # Removes a deleted model's runs and artifacts (ModelVersionService.remove_remains), best effort.
        self.remains = remains or (lambda model: None)
        # Checks that storage ids name configs of a project (StorageConfigService.resolve): monitoring's.
        self.storage_check = storage_check or (lambda project_id, ids: None)

    def create(self, body: Any) -> dict[str, Any]:
        body = v.require_object(body)
        v.reject_unknown(body, CREATE_FIELDS)
        project_id = v.project_id(body)
        ontology_id = v.string(body, "ontology_id", required=True, max_len=v.MAX_ID)
        name = v.string(body, "name", required=True)
        description = v.string(body, "description", max_len=v.MAX_DESCRIPTION, allow_empty=True) or ""
        model_type = v.choice(body, "type", v.MODEL_TYPES, required=True)
        config = v.training_config(body.get("training_config"), with_defaults=True, model_type=model_type)
        metadata = v.json_object(body, "metadata") or {}
        monitoring = v.monitoring(body.get("monitoring"))
        ontology = self.ontologies.find(ontology_id)
        if ontology is None or ontology.project_id != project_id:
            raise InvalidInput(f"ontology '{ontology_id}' does not exist in project '{project_id}'",
                               field="ontology_id")
        now = self.clock()
        is_recommended, score = False, None
        if self.recommendations is not None:
            last = self.recommendations.find(project_id, ontology_id)
            if last is not None and last.recommended_type == model_type:
                is_recommended, score = True, last.score
        if monitoring:
            self.storage_check(project_id, monitoring["storage_ids"])
        model = MlModel(
            id=self.ids("model"), project_id=project_id, ontology_id=ontology_id, name=name,
            description=description, type=model_type, status="draft", training_config=config, metadata=metadata,
            is_recommended=is_recommended, recommendation_score=score, created_at=now, updated_at=now,
        )
        return self.models.add(with_monitoring(model, monitoring, now)).public()

    def get(self, model_id: str) -> dict[str, Any]:
        return self.overdue(self.models.get(model_id)).public()

    def list(self, project_id: str | None, limit: str | None, next_token: str | None) -> dict[str, Any]:
        if not project_id:
            raise InvalidInput("project_id query parameter is required", field="project_id")
        items, token = self.models.list_by_project(project_id, v.limit(limit), next_token)
        return {"models": [self.overdue(i).public() for i in items], "next_token": token}

    def update(self, model_id: str, body: Any) -> dict[str, Any]:
        changes, status, patch = parse_update(body)
        monitoring = changes.pop("monitoring", None)
        if monitoring:
            self.storage_check(self.models.get(model_id).project_id, monitoring["storage_ids"])
        # Re-applied on fresh state after a concurrent write: PUT is a patch, so the fresh
        # state plus these changes is what the caller asked for.
        previous: dict[str, str] = {}

        def apply(current: MlModel) -> MlModel:
            previous["status"] = current.status
            updated = current.but(**changes, updated_at=self.clock())
            if status is not None:
                check_transition(current.status, status, has_version=current_version(current) is not None)
                updated = updated.but(status=status)
            if patch is not None:
                updated = updated.but(metadata=v.merge_metadata(current.metadata, patch))
            if monitoring is not None:
                updated = with_monitoring(updated, monitoring, self.clock())
            return updated

        saved = self.models.modify(model_id, apply)
        if saved.status != previous["status"]:
            self.notifier.model_status_changed(saved, previous_status=previous["status"])
        return saved.public()

    def delete(self, model_id: str) -> None:
        for _ in range(RETRIES_ON_STALE):
            current = self.models.get(model_id)
            if current.status == "training":
                raise Conflict(f"model '{model_id}' is training; it cannot be deleted until training ends",
                               field="status", current_status="training")
            try:
                # Conditional on the version read: a train request racing us makes this fail.
                self.models.delete(current)
            except StaleRecord:
                continue
            self.notifier.model_deleted(current)
            self.remains(current)
            return
        raise Conflict(f"model '{model_id}' is being changed concurrently; retry", field="id")
