"""Must-show 2: every Kubernetes manifest in infra/ is valid in strict mode, the Role grants only
Job and Secret verbs in one namespace, and the namespace's Pod Security profile admits the Job
the launcher builds."""
from __future__ import annotations

import re

import kubernetes_validate
import pytest
import yaml
from infra_support import KUBERNETES

from chalicelib.adapters.eks import EksLauncherConfig, build_job_manifest
from chalicelib.adapters.launcher import TrainingJob

MANIFESTS = sorted(KUBERNETES.glob("*.yaml"))
# EKS versions in standard support when this was written, and the newest schemas shipped
# (as in tests/unit/test_eks_launcher.py).
K8S_VERSIONS = ("1.30", "1.33", kubernetes_validate.latest_version())
# The one placeholder a manifest may carry, filled in at `kubectl apply` time (docs/DEPLOY.md).
PLACEHOLDERS = {"TRAINER_ROLE_ARN": "arn:aws:iam::123456789012:role/ml-models-trainer-dev"}
MODEL_TYPES = ("decision_tree", "random_forest", "regression", "neural_network")


def documents(path) -> list[dict]:
    text = path.read_text()
    for name, value in PLACEHOLDERS.items():
        text = text.replace("${" + name + "}", value)
    assert "${" not in text, f"{path.name} has a placeholder other than {sorted(PLACEHOLDERS)}"
    return [doc for doc in yaml.safe_load_all(text) if doc]


def all_documents() -> list[dict]:
    return [doc for path in MANIFESTS for doc in documents(path)]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
def test_every_manifest_is_valid_in_strict_mode(path, version):
    docs = documents(path)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_manifests_are_a_namespace_a_service_account_a_role_and_its_binding():
    kinds = sorted(doc["kind"] for doc in all_documents())
    assert kinds == ["Namespace", "Role", "RoleBinding", "ServiceAccount"]


def test_the_role_grants_job_and_secret_verbs_only_without_wildcards():
    (role,) = [d for d in all_documents() if d["kind"] == "Role"]
    granted = {(group, resource): sorted(rule["verbs"])
               for rule in role["rules"] for group in rule["apiGroups"] for resource in rule["resources"]}
    assert granted == {("batch", "jobs"): ["create", "delete", "get"], ("", "secrets"): ["create", "delete", "get"],
                       ("", "pods"): ["list"]}
    assert not any("resourceNames" in rule or "nonResourceURLs" in rule for rule in role["rules"])


def test_the_service_account_carries_the_irsa_role_and_no_kubernetes_token():
    (account,) = [d for d in all_documents() if d["kind"] == "ServiceAccount"]
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == PLACEHOLDERS["TRAINER_ROLE_ARN"]
    assert account["automountServiceAccountToken"] is False
    assert re.fullmatch(r"arn:aws:iam::\d{12}:role/ml-models-trainer-[a-z0-9-]+", PLACEHOLDERS["TRAINER_ROLE_ARN"])


ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                   "projected", "secret"}


def _container_violations(container: dict, pod_context: dict) -> list[str]:
    context, name = container.get("securityContext", {}), container["name"]
    capabilities = context.get("capabilities", {})
    seccomp = context.get("seccompProfile", pod_context.get("seccompProfile", {})).get("type")
    checks = {
        "privilege escalation": context.get("privileged") or context.get("allowPrivilegeEscalation") is not False,
        "may run as root": not (context.get("runAsNonRoot") or pod_context.get("runAsNonRoot")),
        "runs as uid 0": context.get("runAsUser", pod_context.get("runAsUser")) == 0,
        "capabilities": capabilities.get("drop") != ["ALL"] or bool(capabilities.get("add")),
        "seccomp": seccomp not in ("RuntimeDefault", "Localhost"),
        "hostPort": any(port.get("hostPort") for port in container.get("ports", [])),
    }
    return [f"{name}: {check}" for check, failed in checks.items() if failed]


def _restricted_violations(pod: dict) -> list[str]:
    """The checks of Pod Security's "restricted" profile that a Job's pod template can fail."""
    problems = [name for name in ("hostNetwork", "hostPID", "hostIPC") if pod.get(name)]
    problems += [f"volume {v['name']}" for v in pod.get("volumes", []) if set(v) - {"name"} - ALLOWED_VOLUMES]
    for container in pod["containers"] + pod.get("initContainers", []):
        problems += _container_violations(container, pod.get("securityContext", {}))
    return problems


@pytest.mark.parametrize("gpu", [False, True])
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_the_namespace_enforces_restricted_and_the_launchers_job_meets_it(model_type, gpu):
    (namespace,) = [d for d in all_documents() if d["kind"] == "Namespace"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    (account,) = [d for d in all_documents() if d["kind"] == "ServiceAccount"]
    config = EksLauncherConfig(cluster_name="ml-models-dev", image="trainer:1", namespace=namespace["metadata"]["name"],
                               service_account=account["metadata"]["name"], gpu_for_neural_network=gpu)
    job = build_job_manifest(TrainingJob(run_id="run-1", model_id="model-1", project_id="p", model_type=model_type,
                                         callback_token="token"), config)
    pod = job["spec"]["template"]["spec"]
    assert job["metadata"]["namespace"] == namespace["metadata"]["name"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert _restricted_violations(pod) == []


def test_the_restricted_check_can_fail():
    pod = {"containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": True}}],
           "volumes": [{"name": "host", "hostPath": {"path": "/"}}]}
    assert len(_restricted_violations(pod)) == 5
