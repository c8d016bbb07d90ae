"""Helpers of the infra tier: where things are, reading CloudFormation YAML, resolving Fn::Sub."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CLOUDFORMATION = ROOT / "infra" / "cloudformation"
KUBERNETES = ROOT / "infra" / "kubernetes"
CHALICE_CONFIG = ROOT / ".chalice" / "config.json"

# moto's default account: resources moto creates have ARNs in it.
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
# Values of the app stack's parameters and of the resources it creates, as a deployment
# in ACCOUNT_ID/REGION would resolve them.
STACK_VALUES = {
    "AWS::AccountId": ACCOUNT_ID,
    "AWS::Region": REGION,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "CallbackBaseUrl": "https://api.ml-models.example.com/api",
    "TrainerImageTag": "2026.11.28-abc1234",
    # identity.yaml's outputs, as a deployment in us-east-1 gives them.
    "AuthIssuer": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Ab12Cd34E",
    "AuthAudience": "4ab5cd6ef7gh8ij9kl0mn1op2q",
    "AuthJwksUrl": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Ab12Cd34E/.well-known/jwks.json",
    "WebsocketAPI": "wsapi12345",
    "RestAPI": "restapi123",
}


def stack_values(stage: str) -> dict[str, str]:
    """Values of `${...}` names in stage `stage`'s app stack (named ml-models-<stage>, docs/DEPLOY.md)."""
    return {**STACK_VALUES, "AWS::StackName": f"ml-models-{stage}"}


_SUB_NAME = re.compile(r"\$\{([^}!][^}]*)\}")


def resolve(value: Any, names: dict[str, str]) -> Any:
    """`value` with Fn::Sub and Ref resolved from `names` (a KeyError names what is missing)."""
    if isinstance(value, dict) and len(value) == 1:
        (key, arg), = value.items()
        if key == "Fn::Sub":
            template, extra = (arg, {}) if isinstance(arg, str) else arg
            scope = {**names, **{k: resolve(v, names) for k, v in extra.items()}}
            return _SUB_NAME.sub(lambda m: scope[m.group(1)], template).replace("${!", "${")
        if key == "Ref":
            return names[arg]
        if key == "Fn::Join":
            delimiter, parts = arg
            return delimiter.join(_flatten(resolve(parts, names)))
        if key == "Fn::Split":
            delimiter, source = arg
            return resolve(source, names).split(delimiter)
    if isinstance(value, dict):
        return {k: resolve(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, names) for v in value]
    return value


def _flatten(parts: Any) -> list[str]:
    """Fn::Join's list, where a resolved Ref of a CommaDelimitedList is itself a list."""
    if isinstance(parts, str):
        return [parts]
    return [p for part in parts for p in _flatten(part)]


class CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation YAML: short-form intrinsics (!Sub, !Ref, ...) become their long form."""


def _intrinsic(loader: CfnLoader, suffix: str, node: yaml.Node) -> dict:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=CfnLoader)  # noqa: S506 - a SafeLoader subclass


def chalice_stages() -> dict[str, dict]:
    return json.loads(CHALICE_CONFIG.read_text())["stages"]


def deployable_stages() -> list[str]:
    from scripts.package import deployable_stages as stages

    return stages()


def chalice_test_client(environment: dict[str, str], project_dir: Path, stage: str = "infra-test"):
    """The Chalice test client, applying exactly `environment` to the app's requests.

    The test client applies a stage's environment_variables from .chalice/config.json; this
    one reads a config written for the test, so the app sees the environment under test (a
    stack's outputs, a packaged template's variables) rather than a stage of the project.
    """
    from chalice.test import Client

    from app import app

    (project_dir / ".chalice").mkdir(parents=True, exist_ok=True)
    (project_dir / ".chalice" / "config.json").write_text(json.dumps(
        {"version": "2.0", "app_name": "ml-models", "stages": {stage: {"environment_variables": environment}}}))
    return Client(app, stage_name=stage, project_dir=str(project_dir))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
