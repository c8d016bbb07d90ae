"""The composition root: builds services and adapters from `Settings`, once per Lambda container.

Nothing here runs at import time; `services()` builds on first use, and tests
call `reset()` after changing the environment.
"""
from __future__ import annotations

from dataclasses import dataclass
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
    notifier: Any

    @cached_property
    def training(self) -> Any:
        from chalicelib.adapters.s3 import SpecStore
        from chalicelib.services.training import TrainingService

        settings = self.settings
        trainer_env = {"AWS_REGION": settings.region, "AWS_DEFAULT_REGION": settings.region}
        if settings.aws_endpoint_url:
            trainer_env["AWS_ENDPOINT_URL"] = settings.aws_endpoint_url
        return TrainingService(
            models=self.repos.models,
            ontologies=self.repos.ontologies,
            runs=self.repos.training_runs,
            storage_configs=self.storage_configs,
            launcher=build_launcher(settings),
            spec_store=SpecStore(self.repos.s3),
            callback_base_url=settings.callback_base_url,
            artifact_bucket=settings.artifact_bucket,
            artifact_prefix=settings.artifact_prefix,
            trainer_env=trainer_env,
            notifier=self.notifier,
            deadline_seconds=settings.training_deadline_seconds + settings.training_grace_seconds,
        )

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


_clients: dict[tuple[str, str, str | None], Any] = {}


def aws_client(settings: Settings, service: str):
    """One boto3 client per service, region and endpoint for the life of the container."""
    key = (service, settings.region, settings.aws_endpoint_url)
    if key not in _clients:
        import boto3

        _clients[key] = boto3.client(service, region_name=settings.region, endpoint_url=settings.aws_endpoint_url)
    return _clients[key]


def management_client(settings: Settings, endpoint_url: str):
    """The API Gateway Management API client for one WebSocket endpoint (stage URL)."""
    import boto3

    return boto3.client("apigatewaymanagementapi", region_name=settings.region, endpoint_url=endpoint_url)


def build_launcher(settings: Settings) -> Any:
    """The stage's job launcher: a Kubernetes Job on EKS, or a local trainer process."""
    if settings.launcher == "local":
        from chalicelib.adapters.local_process import LocalProcessLauncher

        return LocalProcessLauncher(max_concurrent=settings.local_max_concurrent_jobs)
    if settings.launcher == "eks":
        from chalicelib.adapters.eks import EksJobLauncher, EksLauncherConfig

        return EksJobLauncher(EksLauncherConfig.from_settings(
            settings, gpu_for_neural_network=settings.trainer_gpu,
            active_deadline_seconds=settings.training_deadline_seconds))
    raise ValueError(f"TRAINING_LAUNCHER must be 'local' or 'eks', not {settings.launcher!r}")


def build_services(settings: Settings) -> Services:
    from chalicelib.adapters import dynamo
    from chalicelib.adapters.s3 import S3Store
    from chalicelib.adapters.tables import bind_tables
    from chalicelib.adapters.websocket import ConnectionPoster, ConnectionStore
    from chalicelib.services.ml_models import MlModelService
    from chalicelib.services.notifications import Notifier
    from chalicelib.services.ontologies import OntologyService
    from chalicelib.services.storage_configs import StorageConfigService

    bind_tables(settings)
    models = dynamo.ModelRepository()
    ontologies = dynamo.OntologyRepository()
    configs = dynamo.StorageConfigRepository()
    recommendations = dynamo.RecommendationRepository()
    s3 = S3Store(lambda: aws_client(settings, "s3"))
    repos = Repositories(models, ontologies, configs, dynamo.TrainingRunRepository(), recommendations, s3)
    notifier = Notifier(ConnectionStore(), ConnectionPoster(
        lambda endpoint: management_client(settings, endpoint), settings.websocket_endpoint_url))
    return Services(
        settings=settings,
        repos=repos,
        models=MlModelService(models, ontologies, recommendations=recommendations, notifier=notifier,
                              overdue=lambda model: _services.training.expire_if_overdue(model)),
        notifier=notifier,
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
