"""Stage settings that cannot serve safely are refused before any request is served."""
from __future__ import annotations

import pytest


def test_a_lambda_without_an_issuer_refuses_to_start():
    from chalicelib.config import ConfigurationError, check_lambda_environment

    deployed = {"AWS_LAMBDA_FUNCTION_NAME": "ml-models-dev-APIHandler", "APP_STAGE": "dev",
                "TRAINING_LAUNCHER": "eks", "TRAINER_RUN_ROLE_ARN": "arn:aws:iam::1:role/r"}
    with pytest.raises(ConfigurationError, match="no token issuer"):
        check_lambda_environment(deployed)
    with pytest.raises(ConfigurationError, match="local stage"):
        check_lambda_environment({**deployed, "AUTH_MODE": "off"})
    with pytest.raises(ConfigurationError, match="TRAINER_RUN_ROLE_ARN"):
        check_lambda_environment({**deployed, "TRAINER_RUN_ROLE_ARN": "", "AUTH_ISSUER": "https://i",
                                  "AUTH_AUDIENCE": "a", "AUTH_JWKS_URL": "https://i/jwks"})
    check_lambda_environment({**deployed, "AUTH_ISSUER": "https://i", "AUTH_AUDIENCE": "a",
                              "AUTH_JWKS_URL": "https://i/jwks"})
    check_lambda_environment({"APP_STAGE": "dev"})  # not in Lambda: nothing checked at import
