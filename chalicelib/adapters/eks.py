"""The EKS job launcher: runs the trainer as a Kubernetes Job in an EKS cluster.

Hides EKS DescribeCluster, the STS-presigned bearer token that `aws eks get-token`
makes, the official `kubernetes` client with its model classes and exceptions, and
the Job and Secret manifests. Callers see `EksJobLauncher.submit(TrainingJob)`, which
returns the Job's name or raises `UpstreamUnavailable` / `UpstreamFailed`.

boto3/botocore and `kubernetes` are imported inside the functions that use them, so
a cold start of a route that never launches a job does not pay for them.
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib import trainer_contract as contract
from chalicelib.adapters.launcher import STUCK_REASONS, JobState, TrainingJob, job_name
from chalicelib.errors import DomainError, UpstreamFailed, UpstreamUnavailable

log = logging.getLogger("ml_models.eks")

APP_LABEL = "app.kubernetes.io/name"
APP_NAME = "ml-trainer"
MODEL_ID_LABEL = "ml-models/model-id"
RUN_ID_LABEL = "ml-models/run-id"
CALLBACK_TOKEN_KEY = "callback-token"
CALLBACK_TOKEN_ENV = contract.CALLBACK_TOKEN
TRAINER_CONTAINER = "trainer"
TRAINER_UID = 10001
GPU_RESOURCE = "nvidia.com/gpu"

EKS_TOKEN_PREFIX = "k8s-aws-v1."
EKS_TOKEN_EXPIRES_SECONDS = 60
K8S_AWS_ID_HEADER = "x-k8s-aws-id"

_LABEL_VALUE_BAD_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_LABEL_VALUE_EDGES = re.compile(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$")
# Answers that say "try again later" rather than "no".
_TRANSIENT_STATUSES = frozenset({429, 503, 504})


def _sized(cpu: str, memory: str) -> dict[str, dict[str, str]]:
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu, "memory": memory}}


def default_resources() -> dict[str, dict[str, dict[str, str]]]:
    """Requests and limits per model type; "default" covers a type not listed."""
    return {
        "decision_tree": _sized("1", "2Gi"),
        "regression": _sized("1", "2Gi"),
        "random_forest": _sized("2", "4Gi"),
        "neural_network": _sized("4", "8Gi"),
        "default": _sized("1", "2Gi"),
    }


@dataclass(frozen=True, kw_only=True)
class EksLauncherConfig:
    cluster_name: str
    image: str
    namespace: str = "ml-training"
    service_account: str = "ml-trainer"
    region: str = "us-east-1"
    # Overrides per model type, merged over `default_resources()`.
    resources: Mapping[str, Mapping[str, Mapping[str, str]]] = field(default_factory=default_resources)
    # Adds a `nvidia.com/gpu: 1` limit and a toleration for GPU nodes' taint.
    gpu_for_neural_network: bool = False
    # The trainer reports its own failure; a retried pod would reuse the run's version.
    backoff_limit: int = 0
    active_deadline_seconds: int = 6 * 3600
    ttl_seconds_after_finished: int = 24 * 3600
    # Size cap of the writable /tmp (the root filesystem is read-only).
    tmp_size_limit: str = "10Gi"
    # SIGTERM to SIGKILL when the pod is deleted (a cancel): time for the trainer's cancelled report.
    termination_grace_seconds: int = 30
    image_pull_policy: str = "IfNotPresent"
    # Where boto3 sends EKS/STS requests; None means the real AWS endpoints.
    endpoint_url: str | None = None
    # A Lambda must answer quickly: short timeouts, no long retry loop.
    connect_timeout_seconds: float = 3.0
    read_timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        if not self.cluster_name:
            raise ValueError("EksLauncherConfig.cluster_name is required")
        if not self.image:
            raise ValueError("EksLauncherConfig.image is required")
        object.__setattr__(self, "resources", {**default_resources(), **self.resources})

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> EksLauncherConfig:
        """The config a `chalicelib.config.Settings` describes (plus explicit overrides)."""
        values: dict[str, Any] = {
            "cluster_name": settings.eks_cluster_name,
            "image": settings.trainer_image,
            "namespace": settings.trainer_namespace,
            "service_account": settings.trainer_service_account,
            "region": settings.region,
            "endpoint_url": settings.aws_endpoint_url,
        }
        values.update(overrides)
        return cls(**values)

    def resources_for(self, model_type: str) -> dict[str, dict[str, str]]:
        chosen = self.resources.get(model_type) or self.resources["default"]
        resources = {part: dict(chosen.get(part, {})) for part in ("requests", "limits")}
        if self.gpu_for_neural_network and model_type == "neural_network":
            resources["limits"][GPU_RESOURCE] = "1"
        return {part: values for part, values in resources.items() if values}


# ---- manifests (pure) -----------------------------------------------------------


def label_value(value: str) -> str:
    """`value` made into a valid label value: at most 63 of [A-Za-z0-9._-], alphanumeric at both ends."""
    cleaned = _LABEL_VALUE_BAD_CHARS.sub("-", value)
    return _LABEL_VALUE_EDGES.sub("", _LABEL_VALUE_EDGES.sub("", cleaned)[:63])


def secret_name(run_id: str, kind: str = "train") -> str:
    """The run's Secret: its token and credentials (Secret names may be up to 253 characters)."""
    return f"{job_name(run_id, kind)}-token"


def job_labels(job: TrainingJob) -> dict[str, str]:
    return {
        APP_LABEL: APP_NAME,
        MODEL_ID_LABEL: label_value(job.model_id),
        RUN_ID_LABEL: label_value(job.run_id),
    }


def _annotations(job: TrainingJob) -> dict[str, str]:
    # Labels may be truncated; the annotations keep the ids whole.
    return {RUN_ID_LABEL: job.run_id, MODEL_ID_LABEL: job.model_id, "ml-models/project-id": job.project_id}


def secret_key(name: str) -> str:
    """The key in the run's Secret under which the variable `name` is kept."""
    return CALLBACK_TOKEN_KEY if name == CALLBACK_TOKEN_ENV else name.lower().replace("_", "-")


def _container_env(job: TrainingJob) -> list[dict[str, Any]]:
    # Secret variables (the token, the run's AWS credentials) only ever travel through
    # the Secret: a plain copy would be written into the Job spec. HOME points at the
    # writable /tmp because libraries cache under ~ and the root filesystem is read-only.
    environment = {"HOME": "/tmp", **job.plain_environment()}
    env: list[dict[str, Any]] = [{"name": k, "value": str(v)} for k, v in sorted(environment.items())]
    env += [
        {"name": name,
         "valueFrom": {"secretKeyRef": {"name": secret_name(job.run_id, job.kind), "key": secret_key(name)}}}
        for name in sorted(job.secret_environment())
    ]
    return env


def _container(job: TrainingJob, config: EksLauncherConfig) -> dict[str, Any]:
    return {
        "name": TRAINER_CONTAINER,
        "image": config.image,
        "imagePullPolicy": config.image_pull_policy,
        # The image's entry point is the trainer's; other kinds run their own module of the same image.
        **({} if job.kind == "train" else {"command": ["python", "-m", job.entry_point]}),
        "env": _container_env(job),
        "resources": config.resources_for(job.model_type),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": TRAINER_UID,
            "runAsGroup": TRAINER_UID,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def _pod_spec(job: TrainingJob, config: EksLauncherConfig) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": config.termination_grace_seconds,
        "serviceAccountName": config.service_account,
        # The trainer never talks to the Kubernetes API. IRSA / Pod Identity mount
        # their own AWS token, independently of this flag.
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": TRAINER_UID,
            "runAsGroup": TRAINER_UID,
            # Lets the non-root user read projected tokens (IRSA) and write /tmp.
            "fsGroup": TRAINER_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(job, config)],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": config.tmp_size_limit}}],
    }
    if GPU_RESOURCE in spec["containers"][0]["resources"].get("limits", {}):
        spec["tolerations"] = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]
    return spec


def build_job_manifest(job: TrainingJob, config: EksLauncherConfig) -> dict[str, Any]:
    """The `batch/v1` Job that runs the trainer for `job`, as a plain dict."""
    labels = job_labels(job)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job.name,
            "namespace": config.namespace,
            "labels": labels,
            "annotations": _annotations(job),
        },
        "spec": {
            "backoffLimit": config.backoff_limit,
            "activeDeadlineSeconds": min(config.active_deadline_seconds,
                                         job.deadline_seconds or config.active_deadline_seconds),
            "ttlSecondsAfterFinished": config.ttl_seconds_after_finished,
            "template": {"metadata": {"labels": dict(labels)}, "spec": _pod_spec(job, config)},
        },
    }


def _secret_data(job: TrainingJob) -> dict[str, str]:
    secrets = job.secret_environment()
    token = secrets.pop(CALLBACK_TOKEN_ENV)
    # The token first, then the rest by name.
    return {CALLBACK_TOKEN_KEY: token, **{secret_key(name): value for name, value in sorted(secrets.items())}}


def build_secret_manifest(job: TrainingJob, config: EksLauncherConfig, job_uid: str) -> dict[str, Any]:
    """The Secret holding the run's secret variables (callback token, AWS credentials), owned by
    the Job with uid `job_uid`."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": secret_name(job.run_id, job.kind),
            "namespace": config.namespace,
            "labels": job_labels(job),
            "annotations": _annotations(job),
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": job.name,
                    "uid": job_uid,
                    # No blockOwnerDeletion: it would need update rights on jobs/finalizers
                    # where OwnerReferencesPermissionEnforcement is on, and buys nothing here.
                }
            ],
        },
        "stringData": _secret_data(job),
    }


# ---- reading a Job's state (pure) --------------------------------------------------

# The label the Job controller puts on the pods it makes.
JOB_NAME_LABEL = "job-name"


def _true_conditions(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return {c.get("type"): c for c in conditions if c.get("status") == "True"}


def _container_states(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    status = pod.get("status") or {}
    statuses = [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
    return [{"name": s.get("name", ""), **(s.get("state") or {})} for s in statuses]


def _oom_killed(pods: list[Mapping[str, Any]]) -> JobState | None:
    for pod in pods:
        for state in _container_states(pod):
            terminated = state.get("terminated") or {}
            if terminated.get("reason") == "OOMKilled":
                return JobState("failed", "OOMKilled", f"container {state['name']} was killed for exceeding its "
                                f"memory limit (exit code {terminated.get('exitCode')})")
    return None


def _stuck(pods: list[Mapping[str, Any]]) -> JobState | None:
    for pod in pods:
        for state in _container_states(pod):
            waiting = state.get("waiting") or {}
            if waiting.get("reason") in STUCK_REASONS:
                return JobState("pending", waiting["reason"], str(waiting.get("message") or ""))
        for condition in (pod.get("status") or {}).get("conditions") or []:
            if (condition.get("type") == "PodScheduled" and condition.get("status") == "False"
                    and condition.get("reason") == "Unschedulable"):
                return JobState("pending", "Unschedulable", str(condition.get("message") or ""))
    return None


def job_state(job: Mapping[str, Any], pods: list[Mapping[str, Any]]) -> JobState:
    """A Job's state from the Job and its pods (as the API serialises them: camelCase dicts).

    The Job's own conditions decide first (Failed: DeadlineExceeded, BackoffLimitExceeded; Complete);
    a container killed for memory is named as such (its Job says only BackoffLimitExceeded). A pod that
    is waiting for a reason that will not go away (STUCK_REASONS) is reported as pending with it: a Job
    does not fail a pod that never starts."""
    conditions = _true_conditions(job)
    oom = _oom_killed(pods)
    if "Failed" in conditions:
        failed = conditions["Failed"]
        return oom or JobState("failed", str(failed.get("reason") or "Failed"), str(failed.get("message") or ""))
    if "Complete" in conditions:
        return JobState("succeeded", "Complete")
    if oom is not None:
        return oom
    stuck = _stuck(pods)
    if stuck is not None:
        return stuck
    if any((pod.get("status") or {}).get("phase") == "Running" for pod in pods):
        return JobState("running")
    return JobState("pending")


# ---- reaching the cluster ---------------------------------------------------------


@dataclass(frozen=True)
class ClusterAccess:
    """Where a cluster's API server is and the credentials for one submission."""

    host: str
    token: str = field(repr=False)
    # Base64 PEM as EKS returns it; None means the system CAs (or plain HTTP in tests).
    ca_cert_data: str | None = field(default=None, repr=False)


def _retrieve_k8s_aws_id(params: dict, context: dict, **kwargs: Any) -> None:
    if K8S_AWS_ID_HEADER in params:
        context[K8S_AWS_ID_HEADER] = params.pop(K8S_AWS_ID_HEADER)


def _inject_k8s_aws_id_header(request: Any, **kwargs: Any) -> None:
    if K8S_AWS_ID_HEADER in request.context:
        request.headers[K8S_AWS_ID_HEADER] = request.context[K8S_AWS_ID_HEADER]


class EksTokenGenerator:
    """Makes the bearer token `aws eks get-token` makes, a new one on every call.

    The token is `k8s-aws-v1.` + base64url (unpadded) of a presigned STS
    GetCallerIdentity URL whose signature covers an `x-k8s-aws-id: <cluster>` header.
    Signing is local (no request to STS). The STS client is kept; tokens are not,
    because a warm Lambda would otherwise reuse an expired one.
    """

    def __init__(self, sts_client_factory: Callable[[], Any]) -> None:
        self._sts_client_factory = sts_client_factory
        self._sts = None

    def _client(self) -> Any:
        if self._sts is None:
            sts = self._sts_client_factory()
            # The cluster name is not a GetCallerIdentity parameter: take it out of the
            # params before validation and put it back as a signed header.
            sts.meta.events.register(
                "provide-client-params.sts.GetCallerIdentity", _retrieve_k8s_aws_id, unique_id="ml-models-k8s-aws-id"
            )
            sts.meta.events.register(
                "before-sign.sts.GetCallerIdentity", _inject_k8s_aws_id_header, unique_id="ml-models-k8s-aws-id-hdr"
            )
            self._sts = sts
        return self._sts

    def __call__(self, cluster_name: str) -> str:
        from botocore.exceptions import BotoCoreError

        try:
            url = self._client().generate_presigned_url(
                "get_caller_identity",
                Params={K8S_AWS_ID_HEADER: cluster_name},
                ExpiresIn=EKS_TOKEN_EXPIRES_SECONDS,
                HttpMethod="GET",
            )
        except BotoCoreError as exc:
            raise UpstreamFailed(
                f"could not sign a token for EKS cluster '{cluster_name}' ({type(exc).__name__})"
            ) from exc
        return EKS_TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


class EksClusterAccess:
    """`ClusterAccess` for an EKS cluster: DescribeCluster for endpoint and CA, a fresh token.

    DescribeCluster is asked on every call rather than cached: submissions are rare,
    and a warm Lambda must not keep using the endpoint of a cluster that was replaced.
    """

    def __init__(
        self, cluster_name: str, eks_client_factory: Callable[[], Any], token_factory: Callable[[str], str]
    ) -> None:
        self.cluster_name = cluster_name
        self._eks_client_factory = eks_client_factory
        self._eks = None
        self._token_factory = token_factory

    def _describe(self) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            if self._eks is None:
                self._eks = self._eks_client_factory()
            return self._eks.describe_cluster(name=self.cluster_name)["cluster"]
        except (ClientError, BotoCoreError) as exc:
            raise _translate_aws_error(exc, self.cluster_name) from exc

    def __call__(self) -> ClusterAccess:
        cluster = self._describe()
        endpoint = cluster.get("endpoint")
        ca_data = (cluster.get("certificateAuthority") or {}).get("data")
        if not endpoint or not ca_data:
            raise UpstreamUnavailable(
                f"EKS cluster '{self.cluster_name}' has no API endpoint yet (status {cluster.get('status', 'unknown')})"
            )
        token = self._token_factory(self.cluster_name)
        return ClusterAccess(host=endpoint.rstrip("/"), token=token, ca_cert_data=ca_data)


def _translate_aws_error(exc: Exception, cluster_name: str) -> DomainError:
    from botocore.exceptions import ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(exc, (BotoConnectionError, HTTPClientError)):
        return UpstreamUnavailable(f"could not reach EKS to describe cluster '{cluster_name}' ({type(exc).__name__})")
    if not isinstance(exc, ClientError):
        return UpstreamFailed(f"could not describe EKS cluster '{cluster_name}' ({type(exc).__name__})")
    code = exc.response.get("Error", {}).get("Code", "")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if code == "ResourceNotFoundException":
        return UpstreamFailed(f"EKS cluster '{cluster_name}' does not exist")
    if "Throttl" in code or code == "ServiceUnavailableException" or status >= 500:
        return UpstreamUnavailable(f"EKS could not describe cluster '{cluster_name}' right now ({code or status})")
    return UpstreamFailed(f"EKS refused to describe cluster '{cluster_name}' ({code or status})")


def _ca_file(ca_data: str, cluster_name: str) -> str:
    """Path of a file holding the cluster CA (the kubernetes client wants a path).

    Named by content, so a warm Lambda writes it once per CA and a rotated CA gets
    a new file.
    """
    try:
        pem = base64.b64decode(ca_data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UpstreamFailed(f"EKS cluster '{cluster_name}' returned an unreadable certificate authority") from exc
    path = os.path.join(tempfile.gettempdir(), f"eks-ca-{hashlib.sha256(pem).hexdigest()[:24]}.crt")
    if not os.path.exists(path):
        fd, partial = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".partial")
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        os.replace(partial, path)
    return path


# ---- the launcher -------------------------------------------------------------------


class EksJobLauncher:
    """`JobLauncher` that creates the run's Job and its token Secret in an EKS cluster.

    Seams for tests and other clusters: `cluster_access` (a callable returning
    `ClusterAccess`, called once per submission) replaces DescribeCluster + STS;
    `api_client_factory` (`ClusterAccess` -> `kubernetes.client.ApiClient`) replaces
    the client configuration. Without them, `eks_client_factory` / `sts_client_factory`
    make the boto3 clients (default: boto3 with the config's region and endpoint_url).
    """

    def __init__(
        self,
        config: EksLauncherConfig,
        eks_client_factory: Callable[[], Any] | None = None,
        sts_client_factory: Callable[[], Any] | None = None,
        api_client_factory: Callable[[ClusterAccess], Any] | None = None,
        cluster_access: Callable[[], ClusterAccess] | None = None,
    ) -> None:
        self.config = config
        if cluster_access is None:
            tokens = EksTokenGenerator(sts_client_factory or (lambda: _aws_client("sts", config)))
            cluster_access = EksClusterAccess(
                config.cluster_name, eks_client_factory or (lambda: _aws_client("eks", config)), tokens
            )
        self._cluster_access = cluster_access
        self._api_client_factory = api_client_factory or self._default_api_client

    def submit(self, job: TrainingJob) -> str:
        job_manifest = build_job_manifest(job, self.config)
        name = job_manifest["metadata"]["name"]
        access = self._cluster_access()  # a fresh token for every submission
        with _closing(self._api_client_factory(access)) as api_client:
            kube = _KubeSession(api_client, self.config, job, access)
            job_uid, created = kube.ensure("Job", job_manifest)
            # Job first, then its Secret with an ownerReference to the Job's uid, so the
            # Secret never exists without an owner: garbage collection removes it with the
            # Job. Until the Secret exists the pod waits (the kubelet retries the missing
            # secretKeyRef). The other order would need a patch afterwards, and a Lambda
            # dying in between would leave a live token no one owns. If this Job dies
            # without its Secret, activeDeadlineSeconds and the TTL still clean it up.
            try:
                kube.ensure("Secret", build_secret_manifest(job, self.config, job_uid))
            except Exception:
                if created:
                    kube.delete_job(name)  # never leave a Job that would wait for a token
                raise
        _log(logging.INFO, "training_job_submitted", job=name, namespace=self.config.namespace,
             model_id=job.model_id, run_id=job.run_id, job_created=created)
        return name

    def inspect(self, name: str) -> JobState:
        """The Job `name` and its pods, read with one fresh token (`job_state`); "missing" on 404."""
        access = self._cluster_access()
        with _closing(self._api_client_factory(access)) as api_client:
            return _KubeSession(api_client, self.config, None, access).job_state(name)

    def cancel(self, job_name: str, grace_seconds: int) -> None:
        """Stop a run's Job (see `_KubeSession.cancel_job`); raises UpstreamUnavailable / UpstreamFailed."""
        access = self._cluster_access()
        with _closing(self._api_client_factory(access)) as api_client:
            _KubeSession(api_client, self.config, None, access).cancel_job(job_name, grace_seconds)
        _log(logging.INFO, "training_job_cancelled", job=job_name, namespace=self.config.namespace,
             grace_seconds=grace_seconds)

    def _default_api_client(self, access: ClusterAccess) -> Any:
        import urllib3
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = access.host
        configuration.api_key = {"authorization": access.token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        if access.ca_cert_data:
            configuration.ssl_ca_cert = _ca_file(access.ca_cert_data, self.config.cluster_name)
        # One immediate reconnect at most; never re-send a request that reached the server.
        configuration.retries = urllib3.Retry(total=1, connect=1, read=0, status=0, redirect=0, other=0)
        return client.ApiClient(configuration)


@contextlib.contextmanager
def _closing(api_client: Any) -> Iterator[Any]:
    try:
        yield api_client
    finally:
        api_client.close()
        with contextlib.suppress(AttributeError):
            api_client.rest_client.pool_manager.clear()


# Names a LogRecord already has: passing them as `extra` raises KeyError.
_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def _log(level: int, event: str, **fields: Any) -> None:
    log.log(level, event, extra={(f"{k}_" if k in _RESERVED else k): v for k, v in fields.items()})


def _aws_client(service: str, config: EksLauncherConfig) -> Any:
    import boto3
    from botocore.config import Config

    # The same short timeouts as the Kubernetes calls, and at most one retry (DescribeCluster, STS).
    budget = Config(connect_timeout=config.connect_timeout_seconds, read_timeout=config.read_timeout_seconds,
                    retries={"total_max_attempts": 2, "mode": "standard"})
    return boto3.client(service, region_name=config.region, endpoint_url=config.endpoint_url, config=budget)


class _KubeSession:
    """The Kubernetes calls of one submission, with errors translated to domain errors."""

    def __init__(self, api_client: Any, config: EksLauncherConfig, job: TrainingJob | None,
                 access: ClusterAccess) -> None:
        """`job`: the run being submitted (None for calls that only name a Job, like a cancel)."""
        from kubernetes import client

        self._api_client = api_client
        self._batch = client.BatchV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self._config = config
        self._namespace = config.namespace
        self._timeout = (config.connect_timeout_seconds, config.read_timeout_seconds)
        job_secrets = job.secret_environment().values() if job is not None else ()
        self._secrets = [s for s in (*job_secrets, access.token) if s]
        self._log_fields = {"model_id": job.model_id, "run_id": job.run_id} if job is not None else {}

    def ensure(self, kind: str, manifest: dict[str, Any]) -> tuple[str, bool]:
        """Create the object, or adopt an existing one of the same run; returns (uid, created)."""
        from kubernetes.client.exceptions import ApiException

        name = manifest["metadata"]["name"]
        create, read = {
            "Job": (self._batch.create_namespaced_job, self._batch.read_namespaced_job),
            "Secret": (self._core.create_namespaced_secret, self._core.read_namespaced_secret),
        }[kind]
        try:
            with self._translated(f"create {kind} {self._namespace}/{name}", passthrough=409):
                return create(self._namespace, body=manifest, _request_timeout=self._timeout).metadata.uid, True
        except ApiException:  # 409: the name is taken
            pass
        with self._translated(f"read the existing {kind} {self._namespace}/{name}"):
            existing = read(name, self._namespace, _request_timeout=self._timeout).metadata
        self._check_same_run(kind, name, existing, manifest["metadata"]["labels"][RUN_ID_LABEL])
        return existing.uid, False

    def _check_same_run(self, kind: str, name: str, existing: Any, run_label: str) -> None:
        found = (existing.labels or {}).get(RUN_ID_LABEL)
        if found != run_label:
            raise UpstreamFailed(
                f"{kind} {self._namespace}/{name} already exists for another run ({RUN_ID_LABEL}={found!r})"
            )
        if existing.deletion_timestamp is not None:
            raise UpstreamUnavailable(
                f"{kind} {self._namespace}/{name} of an earlier attempt is still being deleted; retry shortly"
            )

    def delete_job(self, name: str) -> None:
        """Best effort: the caller is already failing; a Job left behind is logged."""
        try:
            with self._translated(f"delete Job {self._namespace}/{name}"):
                # Background: the Job's pods go too (the API's default for Jobs orphans them).
                self._batch.delete_namespaced_job(
                    name, self._namespace, propagation_policy="Background", _request_timeout=self._timeout
                )
        except DomainError as exc:
            _log(logging.ERROR, "training_job_cleanup_failed", job=name, namespace=self._namespace,
                 reason=exc.message, **self._log_fields)

    def job_state(self, name: str) -> JobState:
        from kubernetes.client.exceptions import ApiException

        try:
            with self._translated(f"read Job {self._namespace}/{name}", passthrough=404):
                job = self._batch.read_namespaced_job(name, self._namespace, _request_timeout=self._timeout)
        except ApiException:  # 404
            return JobState("missing", "NotFound", f"Job {self._namespace}/{name} does not exist")
        with self._translated(f"list the pods of Job {self._namespace}/{name}"):
            pods = self._core.list_namespaced_pod(self._namespace, label_selector=f"{JOB_NAME_LABEL}={name}",
                                                  _request_timeout=self._timeout).items
        serialise = self._api_client.sanitize_for_serialization
        return job_state(serialise(job), [serialise(pod) for pod in pods])

    def cancel_job(self, name: str, grace_seconds: int) -> None:
        """Delete the Job so its pod gets SIGTERM and `grace_seconds` before SIGKILL; a Job already gone is fine.

        Foreground: the Job stays visible (with a deletionTimestamp) until its pods are gone, so a
        reader of the cluster sees the run still stopping; its token Secret goes with it (ownerReference)."""
        from kubernetes.client.exceptions import ApiException

        try:
            with self._translated(f"delete Job {self._namespace}/{name}", passthrough=404):
                self._batch.delete_namespaced_job(
                    name, self._namespace, propagation_policy="Foreground", grace_period_seconds=grace_seconds,
                    _request_timeout=self._timeout,
                )
        except ApiException:  # 404: nothing left to stop
            _log(logging.INFO, "training_job_already_gone", job=name, namespace=self._namespace)

    @contextlib.contextmanager
    def _translated(self, action: str, passthrough: int | None = None) -> Iterator[None]:
        import urllib3
        from kubernetes.client.exceptions import ApiException

        try:
            yield
        except ApiException as exc:
            if exc.status == passthrough:
                raise
            raise self._api_error(action, exc) from exc
        except urllib3.exceptions.HTTPError as exc:
            reason = getattr(exc, "reason", None) or exc
            raise UpstreamUnavailable(
                f"could not reach the Kubernetes API of cluster '{self._config.cluster_name}' to {action} "
                f"({type(reason).__name__})"
            ) from exc

    def _api_error(self, action: str, exc: Any) -> DomainError:
        cluster = f"the Kubernetes API of cluster '{self._config.cluster_name}'"
        status = exc.status or 0
        if status == 0:  # the client reports TLS failures this way
            return UpstreamUnavailable(f"could not reach {cluster} to {action} (TLS error)")
        if status == 401:
            return UpstreamFailed(f"{cluster} did not accept our credentials (401) to {action}")
        if status == 403:
            return UpstreamFailed(
                f"{cluster} forbids the service to {action} (403); check its EKS access entry and RBAC"
            )
        if status in _TRANSIENT_STATUSES:
            return UpstreamUnavailable(f"{cluster} could not {action} right now ({status})")
        detail = self._status_message(exc)
        if status == 422:
            return UpstreamFailed(f"{cluster} rejected the spec to {action} (422): {detail}")
        return UpstreamFailed(f"{cluster} failed to {action} ({status}){': ' + detail if detail else ''}")

    def _status_message(self, exc: Any) -> str:
        """The API's own explanation, shortened, with anything secret blanked out."""
        try:
            message = str(json.loads(exc.body or "{}").get("message", ""))
        except (TypeError, ValueError, AttributeError):
            message = ""
        for secret in self._secrets:
            message = message.replace(secret, "***")
        return message[:300]
