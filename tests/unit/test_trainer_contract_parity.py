"""The API and the trainer image each keep a copy of the trainer's environment contract
(neither deployable contains the other's package); these tests hold the copies equal."""
from __future__ import annotations

import pytest

from chalicelib import trainer_contract as api
from chalicelib.trainer_contract import credential_secrets, process_environment, trainer_environment
from trainer import contract as trainer
from trainer.config import Settings
from trainer.errors import TrainingFailed


def constants(module) -> dict[str, str]:
    return {k: v for k, v in vars(module).items() if k.isupper() and isinstance(v, str)}


def test_both_sides_name_the_same_variables():
    assert api.NAMES == trainer.NAMES
    assert constants(api).keys() - {"PROCESS_BASICS"} >= constants(trainer).keys()
    assert {k: v for k, v in constants(api).items() if k in constants(trainer)} == constants(trainer)
    assert set(constants(trainer).values()) - {trainer.CREDENTIALS_PATH} == trainer.NAMES


@pytest.mark.parametrize("name", ["REQUIRED", "SECRET", "TUNING", "SPEC_SOURCES", "AWS_CREDENTIALS",
                                  "CREDENTIALS_PATH"])
def test_both_sides_agree_on(name):
    assert getattr(api, name) == getattr(trainer, name)


def test_the_secrets_are_the_token_and_the_aws_keys():
    assert trainer.SECRET == {"TRAINER_CALLBACK_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                              "AWS_SESSION_TOKEN"}
    assert trainer.SECRET <= trainer.NAMES and trainer.REQUIRED <= trainer.NAMES


def run_environment(**overrides) -> dict[str, str]:
    values = {"model_id": "model-1", "run_id": "run-1", "callback_url": "https://api.example.com/",
              "spec_uri": "s3://artifacts/runs/model-1/run-1/spec.json", "artifact_bucket": "artifacts",
              "artifact_prefix": "models", "region": "eu-west-1"}
    return trainer_environment(**{**values, **overrides})


def test_what_the_api_builds_the_trainer_accepts():
    env = {**run_environment(endpoint_url="http://127.0.0.1:5000"), api.CALLBACK_TOKEN: "run-token"}

    settings = Settings.from_env(env)

    assert (settings.model_id, settings.run_id) == ("model-1", "run-1")
    assert settings.callback_url == "https://api.example.com" and settings.callback_token == "run-token"
    assert settings.spec_uri == "s3://artifacts/runs/model-1/run-1/spec.json" and settings.spec_json is None
    assert (settings.artifact_bucket, settings.artifact_prefix) == ("artifacts", "models")
    assert settings.endpoint_url == "http://127.0.0.1:5000" and settings.region == "eu-west-1"
    assert settings.credentials_expiration is None  # no per-run credentials: the default chain


def test_the_api_builds_every_required_variable_but_the_token():
    assert set(run_environment()) >= trainer.REQUIRED - {trainer.CALLBACK_TOKEN}
    assert not set(run_environment()) & trainer.SECRET
    with pytest.raises(TrainingFailed, match="TRAINER_CALLBACK_TOKEN"):
        Settings.from_env(run_environment())


@pytest.mark.parametrize("expiry_with", ["environment", "secrets"])
def test_per_run_credentials_as_the_local_launcher_hands_them_over_are_accepted(expiry_with):
    expiry = "2030-01-01T00:00:00Z"
    job_env = run_environment(credentials_expiration=expiry if expiry_with == "environment" else None)
    secrets = {api.CALLBACK_TOKEN: "run-token",
               **credential_secrets(access_key_id="ASIAX", secret_access_key="sk", session_token="st",
                                    expiration=expiry if expiry_with == "secrets" else None)}

    settings = Settings.from_env(process_environment(job_env, secrets, base={"PATH": "/usr/bin", "MODELS_TABLE": "t"}))

    assert settings.aws_credentials == ("ASIAX", "sk", "st")
    assert settings.credentials_expiration.isoformat() == "2030-01-01T00:00:00+00:00"
    assert "sk" not in repr(settings) and "run-token" not in repr(settings)


def test_the_process_environment_keeps_only_the_contract_and_the_basics():
    env = process_environment(run_environment(), {api.CALLBACK_TOKEN: "t"},
                              base={"PATH": "/bin", "HOME": "/home/x", "LANG": "C.UTF-8", "MODELS_TABLE": "t",
                                    "AWS_SECRET_ACCESS_KEY": "api-own", "AUTH_SIGNING_KEY": "k",
                                    "TRAINER_FIT_SAMPLE_ROWS": "100", "TRAINER_MODEL_ID": "not-from-base"})

    assert env["PATH"] == "/bin" and env["HOME"] == "/home/x" and env["LANG"] == "C.UTF-8"
    assert env["TRAINER_FIT_SAMPLE_ROWS"] == "100" and env["TRAINER_MODEL_ID"] == "model-1"
    assert not {"MODELS_TABLE", "AWS_SECRET_ACCESS_KEY", "AUTH_SIGNING_KEY"} & set(env)
    assert set(env) <= trainer.NAMES | set(api.PROCESS_BASICS)


def test_the_trainer_refuses_an_expiration_without_credentials():
    env = {**run_environment(credentials_expiration="2030-01-01T00:00:00Z"), api.CALLBACK_TOKEN: "t"}
    with pytest.raises(TrainingFailed, match="AWS_SECRET_ACCESS_KEY"):
        Settings.from_env({k: v for k, v in env.items() if not k.startswith("AWS_")} | {"AWS_ACCESS_KEY_ID": "a"})
    with pytest.raises(TrainingFailed, match="ISO-8601"):
        Settings.from_env({**env, **credential_secrets(access_key_id="a", secret_access_key="b", session_token="c"),
                           api.CREDENTIALS_EXPIRATION: "tomorrow"})
