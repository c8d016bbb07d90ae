"""The composition root: the one place that builds services and adapters from `Settings`.

`build_services(settings, clock=..., ids=..., launcher=..., ...)` makes the whole graph;
the live app builds it once per Lambda container on first use (`services()`), and
tests build their own graph and `install()` it instead of patching a live one.
Nothing here runs at import time; heavy collaborators (the launcher, the recommender)
are built on first use so routes that never need them do not import them.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from chalicelib.config import Settings
from chalicelib.observability import EmfRunMetrics, NullRunMetrics
from chalicelib.services.common import Clock, IdFactory, new_id, utc_now

log = logging.getLogger("ml_models.wiring")


@dataclass
class Repositories:
    models: Any
    ontologies: Any
    storage_configs: Any
    training_runs: Any
    recommendations: Any
    s3: Any
    # The model-and-run transaction that starts a run (ports.TrainingStarts).
    training_starts: Any = None
    # Jobs that use a trained version: batch predictions (ports.ModelJobRepository).
    model_jobs: Any = None


@dataclass
class Services:
    settings: Settings
    repos: Repositories
    models: Any
    ontologies: Any
    storage_configs: Any
    notifier: Any
    settlement: Any
    scope: Any
    access: Any
    authenticator: Any
    clock: Clock = utc_now
    ids: IdFactory = new_id
    # Run counts for CloudWatch (chalicelib/observability.py); tests give a recording twin.
    metrics: Any = field(default_factory=NullRunMetrics)
    # A model's versions: list, promote, and removal with the model (services/versions.py).
    versions: Any = None
    launcher_factory: Callable[[], Any] = field(default=lambda: None)
    credentials_factory: Callable[[], Any] = field(default=lambda: None)
    # The online predictor (adapters/predictor.py); None: built from settings on first use.
    predictor_factory: Callable[[], Any] = field(default=lambda: None)

    @cached_property
    def launcher(self) -> Any:
        return self.launcher_factory()

    @cached_property
    def training(self) -> Any:
        from chalicelib.adapters.s3 import DocumentStore
        from chalicelib.services.training import TrainingService

        settings = self.settings
        return TrainingService(
            models=self.repos.models, ontologies=self.repos.ontologies, runs=self.repos.training_runs,
            starts=self.repos.training_starts,
            storage_configs=self.storage_configs, launcher=self.launcher,
            documents=DocumentStore(self.repos.s3), settlement=self.settlement, scope=self.scope,
            callback_base_url=settings.callback_base_url, artifact_bucket=settings.artifact_bucket,
            artifact_prefix=settings.artifact_prefix, region=settings.region,
            endpoint_url=settings.aws_endpoint_url, credentials=self.credentials,
            notifier=self.notifier, metrics=self.metrics,
            deadline_seconds=settings.training_deadline_seconds + settings.training_grace_seconds,
            grace_seconds=settings.training_grace_seconds, tuning_margin_seconds=settings.tuning_margin_seconds,
            max_concurrent_runs=settings.max_concurrent_runs_per_project,
            clock=self.clock, ids=self.ids,
        )

    @cached_property
    def credentials(self) -> Any:
        return self.credentials_factory()

    @cached_property
    def predictions(self) -> Any:
        """Batch prediction jobs (services/predictions.py), run by the same launcher as training."""
        from chalicelib.services.predictions import PredictionService

        return self._model_jobs(PredictionService)

    def _model_jobs(self, service: type) -> Any:
        from chalicelib.adapters.s3 import DocumentStore

        settings = self.settings
        return service(
            self.repos.models, self.repos.model_jobs, self.repos.training_runs, self.storage_configs,
            self.launcher, DocumentStore(self.repos.s3), self.scope,
            callback_base_url=settings.callback_base_url, artifact_bucket=settings.artifact_bucket,
            artifact_prefix=settings.artifact_prefix, region=settings.region,
            endpoint_url=settings.aws_endpoint_url, credentials=self.credentials, notifier=self.notifier,
            deadline_seconds=settings.training_deadline_seconds + settings.training_grace_seconds,
            start_deadline_seconds=settings.training_start_deadline_seconds,
            submission_grace_seconds=settings.training_submission_grace_seconds,
            cancel_grace_seconds=self.training.cancel_grace_seconds, clock=self.clock, ids=self.ids)

    @cached_property
    def evaluations(self) -> Any:
        """Evaluations of a version on fresh data, and their verdict on the model (services/evaluations.py)."""
        from chalicelib.services.evaluations import EvaluationService

        return self._model_jobs(EvaluationService)

    @cached_property
    def monitoring(self) -> Any:
        from chalicelib.services.monitoring import MonitoringScheduler

        return MonitoringScheduler(self.repos.models, self.evaluations, clock=self.clock)

    @cached_property
    def online_predictions(self) -> Any:
        from chalicelib.services.online_predictions import OnlinePredictionService

        return OnlinePredictionService(self.repos.models, self.repos.training_runs, self.predictor_factory())

    @cached_property
    def reconciler(self) -> Any:
        """Settles active runs from the cluster (the scheduled `reconcile` function)."""
        from chalicelib.services.reconciler import Reconciler

        settings = self.settings
        return Reconciler(self.repos.training_runs, self.launcher, self.settlement,
                          self.training.complete_from_manifest,
                          start_deadline_seconds=settings.training_start_deadline_seconds,
                          submission_grace_seconds=settings.training_submission_grace_seconds,
                          cancel_grace_seconds=self.training.cancel_grace_seconds,
                          max_runs=settings.reconcile_max_runs, budget_seconds=settings.reconcile_budget_seconds,
                          clock=self.clock, jobs=[self.predictions, self.evaluations])

    @cached_property
    def recommend(self) -> Any:
        """Built on first use, so routes that never recommend do not import it."""
        from chalicelib.services.recommend import RecommendService

        return RecommendService(ontologies=self.repos.ontologies, storage_configs=self.repos.storage_configs,
                                s3=self.repos.s3, recommendations=self.repos.recommendations, scope=self.scope,
                                clock=self.clock)


_services: Services | None = None
_clients: dict[tuple[Any, ...], Any] = {}


def _budget(settings: Settings) -> tuple[float, float, int]:
    return settings.aws_connect_timeout_seconds, settings.aws_read_timeout_seconds, settings.aws_max_attempts


def aws_client(settings: Settings, service: str):
    """One boto3 client per service, region, endpoint and time budget for the life of the container.

    Every call has the stage's connect/read timeouts and retry budget (`client_config`), so a
    dependency that hangs costs at most attempts x (connect + read) + backoff, not botocore's
    defaults (60 s reads, up to 5 attempts)."""
    from chalicelib.adapters.aws_faults import client_config

    key = (service, settings.region, settings.aws_endpoint_url, *_budget(settings))
    if key not in _clients:
        import boto3

        _clients[key] = boto3.client(service, region_name=settings.region, endpoint_url=settings.aws_endpoint_url,
                                     config=client_config(settings))
    return _clients[key]


def management_client(settings: Settings, endpoint_url: str):
    """The API Gateway Management API client for one WebSocket endpoint (stage URL)."""
    import boto3

    from chalicelib.adapters.aws_faults import client_config

    return boto3.client("apigatewaymanagementapi", region_name=settings.region, endpoint_url=endpoint_url,
                        config=client_config(settings))


def build_launcher(settings: Settings) -> Any:
    """The stage's job launcher: a Kubernetes Job on EKS, or a local trainer process."""
    if settings.launcher == "local":
        from chalicelib.adapters.local_process import LocalProcessLauncher

        return LocalProcessLauncher(max_concurrent=settings.local_max_concurrent_jobs,
                                    log_dir=settings.local_run_log_dir or None)
    if settings.launcher == "eks":
        from chalicelib.adapters.eks import EksJobLauncher, EksLauncherConfig

        return EksJobLauncher(EksLauncherConfig.from_settings(
            settings, gpu_for_neural_network=settings.trainer_gpu,
            active_deadline_seconds=settings.training_deadline_seconds))
    raise ValueError(f"TRAINING_LAUNCHER must be 'local' or 'eks', not {settings.launcher!r}")


def build_authenticator(settings: Settings) -> Any:
    """Verifies bearer tokens against the stage's OIDC issuer (or lets all in: AUTH=off, local only)."""
    if settings.auth_mode == "off":
        log.warning("authentication is OFF (AUTH=off, local stage): every caller acts as an admin")
        return OpenDoor()
    from chalicelib.auth.principal import ClaimRules
    from chalicelib.auth.tokens import TokenVerifier, VerifierConfig

    rules = ClaimRules(projects_claim=settings.auth_projects_claim, groups_claim=settings.auth_groups_claim,
                       admin_group=settings.auth_admin_group)
    return TokenVerifier(VerifierConfig(issuer=settings.auth_issuer, audience=settings.auth_audience,
                                        jwks_url=settings.auth_jwks_url, rules=rules))


class OpenDoor:
    """The authenticator of `AUTH=off` on the local stage: no token, full access."""

    def authenticate(self, authorization: str | None) -> Any:
        from chalicelib.auth.principal import LOCAL_UNAUTHENTICATED

        return LOCAL_UNAUTHENTICATED


def build_predictor(settings: Settings) -> Any:
    """The online predictor function (a Lambda from the trainer image; locally scripts/local_predictor.py)."""
    if not settings.predictor_function:
        return None
    from chalicelib.adapters.predictor import LambdaPredictor

    return LambdaPredictor(lambda: predictor_client(settings), settings.predictor_function)


def predictor_client(settings: Settings):
    """The Lambda client of the predictor: its own endpoint locally, and a read timeout that outlasts the
    function's cold start (loading a network takes seconds), inside API Gateway's 29 s."""
    import boto3
    from botocore.config import Config

    key = ("lambda", settings.region, settings.predictor_endpoint_url or settings.aws_endpoint_url)
    if key not in _clients:
        _clients[key] = boto3.client(
            "lambda", region_name=settings.region,
            endpoint_url=settings.predictor_endpoint_url or settings.aws_endpoint_url,
            config=Config(connect_timeout=settings.aws_connect_timeout_seconds, read_timeout=PREDICTOR_READ_SECONDS,
                          retries={"total_max_attempts": 1, "mode": "standard"}))
    return _clients[key]


# The predictor's answer may take this long (a cold start loads the artifact); API Gateway allows 29 s.
PREDICTOR_READ_SECONDS = 25


def build_credentials(settings: Settings) -> Any:
    if not settings.trainer_run_role_arn:
        return None
    from chalicelib.adapters.sts import RunCredentialIssuer

    return RunCredentialIssuer(lambda: aws_client(settings, "sts"), settings.trainer_run_role_arn,
                               duration_seconds=settings.trainer_credentials_seconds)


def dynamo_repositories(settings: Settings) -> Repositories:
    from chalicelib.adapters import dynamo
    from chalicelib.adapters.s3 import S3Store
    from chalicelib.adapters.tables import bind_tables

    bind_tables(settings)
    return Repositories(dynamo.ModelRepository(), dynamo.OntologyRepository(), dynamo.StorageConfigRepository(),
                        dynamo.TrainingRunRepository(), dynamo.RecommendationRepository(),
                        S3Store(lambda: aws_client(settings, "s3")), dynamo.TrainingStartTransaction(),
                        dynamo.ModelJobRepository())


def build_services(settings: Settings, *, clock: Clock = utc_now, ids: IdFactory = new_id,
                   repos: Repositories | None = None, launcher: Any = None, authenticator: Any = None,
                   credentials: Any = None, ws_poster: Any = None, metrics: Any = None,
                   predictor: Any = None, notifier: Any = None) -> Services:
    """The whole graph. Any collaborator may be given (tests); the rest come from `settings`."""
    from chalicelib.services.access import AccessGuard
    from chalicelib.services.data_scope import DataScope
    from chalicelib.services.ml_models import MlModelService
    from chalicelib.services.ontologies import OntologyService
    from chalicelib.services.run_settlement import RunSettlement
    from chalicelib.services.storage_configs import StorageConfigService

    settings.check()
    repos = repos or dynamo_repositories(settings)
    access = AccessGuard({"model": repos.models, "ontology": repos.ontologies, "storage_config": repos.storage_configs})
    from chalicelib.adapters.websocket import ConnectionPoster, ConnectionStore
    from chalicelib.services.notifications import Notifier

    poster = ws_poster or ConnectionPoster(lambda endpoint: management_client(settings, endpoint),
                                           settings.websocket_endpoint_url)
    notifier = notifier or Notifier(ConnectionStore(), poster, clock=clock, access=access)
    scope = DataScope.from_config(settings.data_buckets, settings.project_data_grants, settings.artifact_bucket)
    metrics = metrics or EmfRunMetrics(stage=settings.stage)
    settlement = RunSettlement(repos.models, repos.training_runs, notifier=notifier, metrics=metrics, clock=clock)
    from chalicelib.adapters.s3 import DocumentStore
    from chalicelib.services.versions import ModelVersionService

    versions = ModelVersionService(repos.models, repos.training_runs, DocumentStore(repos.s3),
                                   artifact_bucket=settings.artifact_bucket, artifact_prefix=settings.artifact_prefix,
                                   notifier=notifier, clock=clock, jobs=repos.model_jobs)
    storage_configs = StorageConfigService(repos.storage_configs, repos.ontologies, repos.s3, scope, clock=clock,
                                           ids=ids)
    graph = Services(
        settings=settings, repos=repos, notifier=notifier, settlement=settlement, scope=scope,
        models=MlModelService(repos.models, repos.ontologies, recommendations=repos.recommendations,
                              overdue=settlement.expire_if_overdue, notifier=notifier, clock=clock, ids=ids,
                              remains=versions.remove_remains, storage_check=storage_configs.resolve),
        versions=versions,
        ontologies=OntologyService(repos.ontologies, repos.models, clock=clock, ids=ids),
        storage_configs=storage_configs,
        access=access,
        authenticator=authenticator or build_authenticator(settings),
        clock=clock, ids=ids, metrics=metrics,
        launcher_factory=(lambda: launcher) if launcher is not None else (lambda: build_launcher(settings)),
        credentials_factory=(lambda: credentials) if credentials is not None else (lambda: build_credentials(settings)),
        predictor_factory=(lambda: predictor) if predictor is not None else (lambda: build_predictor(settings)),
    )
    versions.stop_jobs = lambda model_id: graph.predictions.stop_all(model_id) + graph.evaluations.stop_all(model_id)
    return graph


_building = threading.Lock()


def services() -> Services:
    """The container's one graph. Built once even when threads race for it (the local server is
    threaded, and the local reconciler's timer shares the graph and its launcher's process table)."""
    global _services
    if _services is None:
        with _building:
            if _services is None:
                _services = build_services(Settings.from_environ())
    return _services


def install(graph: Services | None) -> None:
    """Use `graph` for the requests that follow (tests build their own); None: rebuild from the environment."""
    global _services
    _services = graph


def reset() -> None:
    install(None)
