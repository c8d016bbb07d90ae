"""Model-type recommendation for a project's ontology: which of the four types to train.

Reads the ontology and a bounded sample of the data bound to it (see
`chalicelib/recommend/sample.py` for the bound), lets `chalicelib/recommend/engine.py`
decide, and keeps the last recommendation per project and ontology, which model
creation uses to mark `is_recommended`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.errors import InvalidInput, NotFound
from chalicelib.records import Recommendation, StorageConfig
from chalicelib.services import validation as v
from chalicelib.services.common import Clock, utc_now

FIELDS = ("project_id", "ontology_id", "storage_ids", "target_column")
MAX_STORAGE_IDS = 20
# Storage configs of a project looked at to find those bound to the ontology.
MAX_CONFIG_PAGES = 20
PAGE = 100


@dataclass(frozen=True)
class RecommendRequest:
    project_id: str
    ontology_id: str
    storage_ids: tuple[str, ...] | None
    target_column: str | None


def parse_request(body: Any) -> RecommendRequest:
    body = v.require_object(body)
    v.reject_unknown(body, FIELDS)
    project_id = v.project_id(body)
    ontology_id = v.string(body, "ontology_id", required=True, max_len=v.MAX_ID)
    target = v.string(body, "target_column", max_len=v.MAX_NAME)
    ids = body.get("storage_ids")
    if ids is not None:
        if not isinstance(ids, list) or not all(isinstance(i, str) and i.strip() for i in ids):
            raise InvalidInput("storage_ids must be a list of storage config ids", field="storage_ids")
        if not 1 <= len(ids) <= MAX_STORAGE_IDS:
            raise InvalidInput(f"storage_ids must hold between 1 and {MAX_STORAGE_IDS} ids", field="storage_ids")
        ids = tuple(dict.fromkeys(ids))
    return RecommendRequest(project_id, ontology_id, ids, target)


class RecommendService:
    def __init__(self, ontologies: Any, storage_configs: Any, s3: Any, recommendations: Any, scope: Any,
                 clock: Clock = utc_now) -> None:
        self.scope = scope
        self.ontologies = ontologies
        self.storage_configs = storage_configs
        self.s3 = s3
        self.recommendations = recommendations
        self.clock = clock

    def recommend(self, body: Any) -> dict[str, Any]:
        from chalicelib.ontology import summarize
        from chalicelib.recommend.engine import recommend
        from chalicelib.recommend.sample import sample_storage

        request = parse_request(body)
        ontology = self.ontologies.find(request.ontology_id)
        if ontology is None or ontology.project_id != request.project_id:
            raise NotFound(f"ontology '{request.ontology_id}' does not exist in project '{request.project_id}'",
                           field="ontology_id")
        summary = summarize(ontology.content)
        if request.target_column is not None:
            names = sorted(p.name for p in summary.datatype_properties)
            if request.target_column not in names:
                raise InvalidInput(
                    f"target_column '{request.target_column}' is not a datatype property of the ontology "
                    f"(candidates: {', '.join(names) or 'none'})", field="target_column")
        configs = self._configs(request)
        samples = [sample_storage(self.s3, config.public()) for config in configs]
        result = recommend(summary, samples, request.target_column)
        self.recommendations.put(Recommendation(
            project_id=request.project_id, ontology_id=request.ontology_id,
            recommended_type=result["recommended_type"], score=result["score"], result=result,
            created_at=self.clock()))
        return result

    def _configs(self, request: RecommendRequest) -> list[StorageConfig]:
        """The given storage configs (each must be the project's and inside its data location),
        else those bound to the ontology."""
        if request.storage_ids is not None:
            configs = []
            for config_id in request.storage_ids:
                config = self.storage_configs.find(config_id)
                if config is None or config.project_id != request.project_id:
                    raise InvalidInput(
                        f"storage config '{config_id}' does not exist in project '{request.project_id}'",
                        field="storage_ids")
                configs.append(config)
        else:
            bound, token = [], None
            for _ in range(MAX_CONFIG_PAGES):
                items, token = self.storage_configs.list_by_project(request.project_id, PAGE, token)
                bound += [c for c in items if c.ontology_id == request.ontology_id]
                if not token:
                    break
            configs = sorted(bound, key=lambda c: (c.created_at, c.id))
        for config in configs:  # a config made before a grant was withdrawn is not read
            self.scope.check(request.project_id, config.uri, field="storage_ids")
        return configs
