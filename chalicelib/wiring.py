"""The composition root: builds services and adapters from `Settings`, once per Lambda container.

Nothing here runs at import time; `services()` builds on first use, and tests
call `reset()` after changing the environment.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from chalicelib.config import Settings


@dataclass
class Repositories:
    models: Any
    ontologies: Any
    storage_configs: Any
    training_runs: Any
    recommendations: Any
    s3: Any


@dataclass
class Services:
    settings: Settings
    repos: Repositories
    models: Any
    ontologies: Any
    storage_configs: Any
    _cache: dict = field(default_factory=dict, repr=False)

    @cached_property
    def recommend(self) -> Any:
        """Built on first use, so routes that never recommend do not import it."""
        from chalicelib.services.recommend import RecommendService

        return RecommendService(
            ontologies=self.repos.ontologies,
            storage_configs=self.repos.storage_configs,
            s3=self.repos.s3,
            recommendations=self.repos.recommendations,
        )


_services: Services | None = None


def aws_client(settings: Settings, service: str):
    import boto3

    return boto3.client(service, region_name=settings.region, endpoint_url=settings.aws_endpoint_url)


def build_services(settings: Settings) -> Services:
    from chalicelib.adapters import dynamo
    from chalicelib.adapters.s3 import S3Store
    from chalicelib.adapters.tables import bind_tables
    from chalicelib.services.ml_models import MlModelService
    from chalicelib.services.ontologies import OntologyService
    from chalicelib.services.storage_configs import StorageConfigService

    bind_tables(settings)
    models = dynamo.ModelRepository()
    ontologies = dynamo.OntologyRepository()
    configs = dynamo.StorageConfigRepository()
    recommendations = dynamo.RecommendationRepository()
    s3 = S3Store(lambda: aws_client(settings, "s3"))
    repos = Repositories(models, ontologies, configs, dynamo.TrainingRunRepository(), recommendations, s3)
    return Services(
        settings=settings,
        repos=repos,
        models=MlModelService(models, ontologies, recommendations=recommendations),
        ontologies=OntologyService(ontologies, models),
        storage_configs=StorageConfigService(configs, ontologies, s3),
    )


def services() -> Services:
    global _services
    if _services is None:
        _services = build_services(Settings.from_environ())
    return _services


def reset() -> None:
    global _services
    _services = None
