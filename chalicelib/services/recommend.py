"""Model-type recommendation for a project's ontology: which of the four types to train.

Reads the ontology's stored summary and a bounded sample of the data bound to it (see
`chalicelib/recommend/sample.py` for the bound: at most `MAX_STORAGE_IDS` storage configs, the
newest when more are bound to the ontology, and `MAX_BYTES_PER_REQUEST` bytes in all), lets
`chalicelib/recommend/engine.py` decide, and keeps the last recommendation per project and
ontology, which model creation uses to mark `is_recommended`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.errors import InvalidInput, NotFound
from chalicelib.recommend.sample import MAX_STORAGE_CONFIGS_PER_REQUEST
from chalicelib.records import Recommendation, StorageConfig
from chalicelib.services import validation as v
from chalicelib.services.common import Clock, utc_now
from chalicelib.services.ontologies import summary_of

FIELDS = ("project_id", "ontology_id", "storage_ids", "target_column")
# Storage configs sampled per request: named ones, or the newest of those bound to the ontology.
MAX_STORAGE_IDS = MAX_STORAGE_CONFIGS_PER_REQUEST
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
        from chalicelib.recommend.engine import recommend
        from chalicelib.recommend.sample import bytes_per_storage_config, sample_storage

        request = parse_request(body)
        ontology = self.ontologies.find(request.ontology_id)
        if ontology is None or ontology.project_id != request.project_id:
            raise NotFound(f"ontology '{request.ontology_id}' does not exist in project '{request.project_id}'",
                           field="ontology_id")
        summary = summary_of(ontology)
        if request.target_column is not None:
            names = sorted(p.name for p in summary.datatype_properties)
            if request.target_column not in names:
                raise InvalidInput(
                    f"target_column '{request.target_column}' is not a datatype property of the ontology "
                    f"(candidates: {', '.join(names) or 'none'})", field="target_column")
        configs, more_bound = self._configs(request)
        budget = bytes_per_storage_config(len(configs))
        samples = [sample_storage(self.s3, config.public(), max_bytes=budget) for config in configs]
        result = recommend(summary, samples, request.target_column)
        if more_bound:
            result["data_analysis"]["storage_configs_limited"] = True
            result["reasoning"] += (f" More than {MAX_STORAGE_IDS} storage configs are bound to this ontology; "
                                    f"only the {MAX_STORAGE_IDS} newest were sampled (name others in storage_ids).")
        self.recommendations.put(Recommendation(
            project_id=request.project_id, ontology_id=request.ontology_id,
            recommended_type=result["recommended_type"], score=result["score"], result=result,
            created_at=self.clock()))
        return result

    def _configs(self, request: RecommendRequest) -> tuple[list[StorageConfig], bool]:
        """The given storage configs (each must be the project's and inside its data location),
        else the `MAX_STORAGE_IDS` newest of those bound to the ontology; and whether more are bound."""
        more_bound = False
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
            for _ in range(MAX_CONFIG_PAGES):  # newest first
                items, token = self.storage_configs.list_by_project(request.project_id, PAGE, token)
                bound += [c for c in items if c.ontology_id == request.ontology_id]
                if not token or len(bound) > MAX_STORAGE_IDS:
                    break
            more_bound = len(bound) > MAX_STORAGE_IDS
            configs = sorted(bound[:MAX_STORAGE_IDS], key=lambda c: (c.created_at, c.id))
        for config in configs:  # a config made before a grant was withdrawn is not read
            self.scope.check(request.project_id, config.uri, field="storage_ids")
        return configs, more_bound
