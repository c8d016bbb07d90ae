"""The real TokenVerifier against a real JWKS over HTTP (the local issuer on a loopback port)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from chalicelib.auth.principal import EDITOR, VIEWER, ClaimRules
from chalicelib.auth.tokens import MAX_TOKEN_CHARS, TokenVerifier, VerifierConfig
from chalicelib.errors import Unauthorized, UpstreamFailed, UpstreamUnavailable
from scripts import local_issuer

ROOT = Path(__file__).resolve().parents[2]
AUDIENCE = local_issuer.LOCAL_AUDIENCE


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def key_dir(tmp_path):
    return tmp_path / "issuer"


@pytest.fixture
def issuer(key_dir):
    # Port 0: the OS picks a free port at bind time (no window for another process to take it).
    server = local_issuer.serve(0, key_dir)
    yield server
    server.stop()


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def verifier(issuer, clock):
    config = VerifierConfig(issuer=issuer.issuer, audience=AUDIENCE, jwks_url=issuer.jwks_url)
    return TokenVerifier(config, clock=clock)


def current_kid(key_dir) -> str:
    return local_issuer.public_jwk(local_issuer.ensure_key(key_dir))["kid"]


def sign(key_dir, claims, *, headers=None, key=None):
    """Claims signed RS256 with the issuer's current key (or `key`), kid of the current key unless overridden."""
    private = key or serialization.load_pem_private_key(local_issuer.ensure_key(key_dir).read_bytes(), None)
    header = {"kid": current_kid(key_dir), **(headers or {})}
    header = {k: v for k, v in header.items() if v is not None}
    return jwt.encode(claims, private, algorithm="RS256", headers=header)


def claims_for(issuer, **extra):
    now = int(time.time())
    return {"sub": "user-1", "iss": issuer.issuer, "aud": AUDIENCE, "iat": now, "exp": now + 600,
            "projects": {"proj-123": "editor"}, **extra}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def refused(verifier, token, reason):
    with pytest.raises(Unauthorized) as err:
        verifier.authenticate(f"Bearer {token}")
    assert err.value.status == 401 and err.value.field == "Authorization"
    assert reason in err.value.message
    for segment in token.split("."):
        if len(segment) > 8:
            assert segment not in err.value.message  # never echo the token
    return err.value


# ---- accepted -------------------------------------------------------------------------


def test_valid_token_gives_the_principal_its_roles(issuer, verifier, key_dir):
    token = local_issuer.mint("alice", {"proj-123": "editor", "proj-9": "viewer"}, issuer=issuer.issuer,
                              audience=AUDIENCE, key_dir=key_dir)

    principal = verifier.authenticate(f"Bearer {token}")

    assert principal.subject == "alice"
    assert dict(principal.roles) == {"proj-123": EDITOR, "proj-9": VIEWER}
    assert principal.admin is False
    assert principal.expires_at == jwt.decode(token, options={"verify_signature": False})["exp"]


def test_bearer_scheme_is_case_insensitive(issuer, verifier, key_dir):
    token = sign(key_dir, claims_for(issuer))

    assert verifier.authenticate(f"bearer {token}").subject == "user-1"
    assert verifier.authenticate(f"  BEARER   {token}  ").subject == "user-1"


def test_keys_are_fetched_once_and_cached(issuer, verifier, key_dir):
    assert issuer.jwks_requests == 0  # nothing is fetched before the first token
    for _ in range(3):
        verifier.verify(sign(key_dir, claims_for(issuer)))

    assert issuer.jwks_requests == 1


def test_cognito_shaped_claims_through_a_real_token(issuer, key_dir, clock):
    rules = ClaimRules(projects_claim="custom:projects")
    config = VerifierConfig(issuer=issuer.issuer, audience=AUDIENCE, jwks_url=issuer.jwks_url, rules=rules)
    token = sign(key_dir, claims_for(issuer, projects=None, **{
        "custom:projects": json.dumps({"proj-1": "viewer"}), "cognito:groups": ["project:proj-1:editor", "admin"]}))

    principal = TokenVerifier(config, clock=clock).verify(token)

    assert dict(principal.roles) == {"proj-1": EDITOR}
    assert principal.admin is True


def test_expiry_within_leeway_is_accepted(issuer, verifier, key_dir):
    now = int(time.time())
    token = sign(key_dir, claims_for(issuer, iat=now - 600, exp=now - 10))  # leeway is 30 s

    assert verifier.verify(token).subject == "user-1"


# ---- refused: claims ------------------------------------------------------------------


def test_expired_token_is_refused(issuer, verifier, key_dir):
    token = local_issuer.mint("alice", {"proj-123": "editor"}, issuer=issuer.issuer, audience=AUDIENCE,
                              key_dir=key_dir, issued_at=int(time.time()) - 7200)

    refused(verifier, token, "token expired")


def test_wrong_issuer_is_refused(issuer, verifier, key_dir):
    refused(verifier, sign(key_dir, claims_for(issuer, iss="https://evil.example.com")), "token issuer is not accepted")


def test_wrong_audience_is_refused(issuer, verifier, key_dir):
    refused(verifier, sign(key_dir, claims_for(issuer, aud="someone-else")), "token audience is not accepted")


@pytest.mark.parametrize("claim", ["exp", "iss", "aud"])
def test_required_claim_missing_is_refused(issuer, verifier, key_dir, claim):
    body = claims_for(issuer)
    del body[claim]

    refused(verifier, sign(key_dir, body), f"token has no '{claim}' claim")


def test_missing_subject_is_refused(issuer, verifier, key_dir):
    body = claims_for(issuer)
    del body["sub"]

    refused(verifier, sign(key_dir, body), "token has no subject")


def test_not_yet_valid_token_is_refused(issuer, verifier, key_dir):
    refused(verifier, sign(key_dir, claims_for(issuer, nbf=int(time.time()) + 600)), "not valid yet")


# ---- refused: signature, algorithm, key id -------------------------------------------


def test_signature_by_another_key_with_the_same_kid_is_refused(issuer, verifier, key_dir):
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    refused(verifier, sign(key_dir, claims_for(issuer), key=impostor), "token signature is not valid")


def test_tampered_payload_is_refused(issuer, verifier, key_dir):
    header, _, signature = sign(key_dir, claims_for(issuer)).split(".")
    forged = b64(json.dumps(claims_for(issuer, **{"cognito:groups": ["admin"]})).encode())

    refused(verifier, f"{header}.{forged}.{signature}", "token signature is not valid")


def test_alg_none_is_refused(issuer, verifier, key_dir):
    token = jwt.encode(claims_for(issuer, **{"cognito:groups": ["admin"]}), None, algorithm="none",
                       headers={"kid": current_kid(key_dir)})

    refused(verifier, token, "token algorithm 'none' is not accepted")


def test_hs256_signed_with_the_public_key_is_refused(issuer, verifier, key_dir):
    # The key-confusion attack: HMAC keyed with the issuer's public key PEM, which anyone can fetch.
    public_pem = serialization.load_pem_private_key(local_issuer.ensure_key(key_dir).read_bytes(), None) \
        .public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": current_kid(key_dir)}).encode())
    payload = b64(json.dumps(claims_for(issuer, **{"cognito:groups": ["admin"]})).encode())
    signature = b64(hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())

    refused(verifier, f"{header}.{payload}.{signature}", "token algorithm 'HS256' is not accepted")


@pytest.mark.parametrize("algorithms", [("HS256",), ("RS256", "none"), ()])
def test_config_refuses_symmetric_or_none_algorithms(algorithms):
    with pytest.raises(ValueError):
        VerifierConfig(issuer="https://i", audience="a", jwks_url="https://i/jwks", algorithms=algorithms)


def test_missing_kid_is_refused(issuer, verifier, key_dir):
    refused(verifier, sign(key_dir, claims_for(issuer), headers={"kid": None}), "token has no key id")
    assert issuer.jwks_requests == 0  # refused before any key lookup


def test_unknown_kid_refetches_once_then_is_paced(issuer, verifier, key_dir, clock):
    verifier.verify(sign(key_dir, claims_for(issuer)))
    assert issuer.jwks_requests == 1

    # The issuer rotates: a token from the new key makes the verifier refetch and accept it.
    local_issuer.rotate_key(key_dir)
    assert verifier.verify(sign(key_dir, claims_for(issuer))).subject == "user-1"
    assert issuer.jwks_requests == 2

    # Random kids within the refetch interval cost no further fetch.
    clock.now += 5
    for kid in ("made-up-1", "made-up-2"):
        refused(verifier, sign(key_dir, claims_for(issuer), headers={"kid": kid}), "not one of the issuer's keys")
    assert issuer.jwks_requests == 2

    # After the interval one more refetch is allowed.
    clock.now += 30
    refused(verifier, sign(key_dir, claims_for(issuer), headers={"kid": "made-up-3"}), "not one of the issuer's keys")
    assert issuer.jwks_requests == 3


def test_tokens_of_the_previous_key_still_verify_after_rotation(issuer, verifier, key_dir):
    old_token = sign(key_dir, claims_for(issuer))
    local_issuer.rotate_key(key_dir)

    assert verifier.verify(old_token).subject == "user-1"


# ---- refused: the header itself ------------------------------------------------------


@pytest.mark.parametrize("header, reason", [
    (None, "Authorization header is missing"),
    ("", "Authorization header is missing"),
    ("   ", "Authorization header is missing"),
    ("Basic dXNlcjpwYXNz", "must use the Bearer scheme"),
    ("eyJhbGciOi.eyJzdWIi.c2ln", "must use the Bearer scheme"),
    ("Bearer", "must be 'Bearer <token>'"),
    ("Bearer a.b.c extra", "must be 'Bearer <token>'"),
    ("Bearer not-a-jwt", "token is not a well-formed JWT"),
    ("Bearer a.b.c", "token is not a well-formed JWT"),
])
def test_bad_authorization_header_is_unauthorized(issuer, verifier, header, reason):
    with pytest.raises(Unauthorized) as err:
        verifier.authenticate(header)

    assert err.value.status == 401 and err.value.field == "Authorization"
    assert reason in err.value.message
    assert issuer.jwks_requests == 0


def test_token_over_the_length_cap_is_refused_without_any_fetch(issuer, verifier, key_dir):
    token = sign(key_dir, claims_for(issuer, padding="x" * MAX_TOKEN_CHARS))
    assert len(token) > MAX_TOKEN_CHARS

    refused(verifier, token, f"longer than {MAX_TOKEN_CHARS}")
    assert issuer.jwks_requests == 0


# ---- the issuer's keys are unavailable -----------------------------------------------


def test_jwks_server_down_is_upstream_unavailable(key_dir, clock):
    server = local_issuer.serve(0, key_dir)
    server.stop()  # nothing listens on its port any more
    verifier = TokenVerifier(VerifierConfig(issuer=server.issuer, audience=AUDIENCE, jwks_url=server.jwks_url),
                             clock=clock)
    token = sign(key_dir, claims_for(server))

    with pytest.raises(UpstreamUnavailable) as err:
        verifier.verify(token)
    assert err.value.status == 503
    assert token not in err.value.message


def test_jwks_that_never_answers_times_out_as_upstream_unavailable(key_dir, clock, issuer):
    with socket.socket() as silent:  # accepts connections (kernel backlog) but never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/.well-known/jwks.json"
        config = VerifierConfig(issuer=issuer.issuer, audience=AUDIENCE, jwks_url=url, jwks_timeout_seconds=0.3)
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable):
            TokenVerifier(config, clock=clock).verify(sign(key_dir, claims_for(issuer)))

    assert time.monotonic() - started < 3


def test_jwks_http_error_is_upstream_unavailable(issuer, key_dir, clock):
    config = VerifierConfig(issuer=issuer.issuer, audience=AUDIENCE, jwks_url=issuer.url + "/missing")

    with pytest.raises(UpstreamUnavailable):
        TokenVerifier(config, clock=clock).verify(sign(key_dir, claims_for(issuer)))


def test_jwks_without_keys_is_upstream_failed(issuer, key_dir, clock):
    # The discovery document is JSON but holds no key set.
    config = VerifierConfig(issuer=issuer.issuer, audience=AUDIENCE,
                            jwks_url=issuer.url + local_issuer.OPENID_CONFIGURATION_PATH)

    with pytest.raises(UpstreamFailed) as err:
        TokenVerifier(config, clock=clock).verify(sign(key_dir, claims_for(issuer)))
    assert err.value.status == 502


# ---- cold start ----------------------------------------------------------------------


def test_importing_the_auth_package_does_not_import_jwt():
    code = ("import sys, chalicelib.auth, chalicelib.auth.principal, chalicelib.auth.tokens; "
            "sys.exit(1 if 'jwt' in sys.modules else 0)")

    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=60).returncode == 0
