"""Bearer-token verification against an OIDC issuer's JSON Web Key Set.

Hides PyJWT (imported lazily, so routes that never see a token do not pay for it at cold
start), the JWKS client and its cache, and the bounds that keep a hostile caller from
making us expensive: a token length cap, a required `kid`, only the configured
algorithms, and at most one forced JWKS refetch per `refetch_interval_seconds` however
many unknown `kid`s arrive. Tokens are never logged or echoed in error messages.
"""
from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chalicelib.auth.principal import ClaimRules, Principal, principal_from_claims
from chalicelib.errors import Unauthorized, UpstreamFailed, UpstreamUnavailable

MAX_TOKEN_CHARS = 8192
MAX_KID_CHARS = 256
_FIELD = "Authorization"
# Only short, plain header values are quoted back in messages (never any part of the token body).
_QUOTABLE = re.compile(r"^[A-Za-z0-9._-]{1,32}$")


@dataclass(frozen=True)
class VerifierConfig:
    issuer: str
    audience: str
    jwks_url: str
    algorithms: tuple[str, ...] = ("RS256",)
    leeway_seconds: int = 30
    jwks_timeout_seconds: float = 3.0
    jwks_cache_seconds: int = 3600
    rules: ClaimRules = field(default_factory=ClaimRules)
    # An unknown kid forces a JWKS refetch at most this often (per verifier, i.e. per Lambda instance).
    refetch_interval_seconds: float = 30.0

    def __post_init__(self) -> None:
        if not (self.issuer and self.audience and self.jwks_url):
            raise ValueError("issuer, audience and jwks_url are all required")
        if not self.algorithms or any(alg.lower() == "none" or alg.startswith("HS") for alg in self.algorithms):
            # A symmetric algorithm next to a public JWKS is the classic key-confusion hole.
            raise ValueError("algorithms must be asymmetric (e.g. RS256); 'none' and HS* are refused")


class TokenVerifier:
    def __init__(self, config: VerifierConfig, clock: Callable[[], float] = time.time) -> None:
        """`clock` paces forced JWKS refetches; `exp`/`nbf`/`iat` are checked by PyJWT against the wall clock."""
        self.config = config
        self._clock = clock
        self._client: Any = None  # jwt.PyJWKClient, built on first use
        self._last_forced_refetch: float | None = None
        self._lock = threading.Lock()

    def authenticate(self, authorization: str | None) -> Principal:
        """The caller named by an `Authorization: Bearer <jwt>` header value."""
        if authorization is None or not authorization.strip():
            raise Unauthorized("Authorization header is missing; send 'Authorization: Bearer <token>'", field=_FIELD)
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise Unauthorized("Authorization header must use the Bearer scheme", field=_FIELD)
        token = token.strip()
        if not token or " " in token:
            raise Unauthorized("Authorization header must be 'Bearer <token>'", field=_FIELD)
        return self.verify(token)

    def verify(self, token: str) -> Principal:
        import jwt

        if len(token) > MAX_TOKEN_CHARS:
            raise Unauthorized(f"token is longer than {MAX_TOKEN_CHARS} characters", field=_FIELD)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("token is not a well-formed JWT", field=_FIELD) from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self.config.algorithms:
            shown = f" {alg!r}" if isinstance(alg, str) and _QUOTABLE.match(alg) else ""
            raise Unauthorized(f"token algorithm{shown} is not accepted", field=_FIELD)
        if not isinstance(kid, str) or not kid or len(kid) > MAX_KID_CHARS:
            raise Unauthorized("token has no key id (kid) header", field=_FIELD)
        key = self._signing_key(kid)
        try:
            claims = jwt.decode(
                token, key, algorithms=list(self.config.algorithms), audience=self.config.audience,
                issuer=self.config.issuer, leeway=self.config.leeway_seconds,
                options={"require": ["exp", "iss", "aud"], "enforce_minimum_key_length": True},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(_reason(exc), field=_FIELD) from None
        return principal_from_claims(claims, self.config.rules)

    # ---- the issuer's keys -----------------------------------------------------------

    def _signing_key(self, kid: str) -> Any:
        with self._lock:
            key = _match(self._keys(refresh=False), kid)
            if key is None and self._may_force_refetch():
                self._last_forced_refetch = self._clock()
                key = _match(self._keys(refresh=True), kid)
        if key is None:
            raise Unauthorized("token key id (kid) is not one of the issuer's keys", field=_FIELD)
        return key

    def _may_force_refetch(self) -> bool:
        last = self._last_forced_refetch
        return last is None or self._clock() - last >= self.config.refetch_interval_seconds

    def _keys(self, *, refresh: bool) -> list[Any]:
        import jwt

        if self._client is None:
            # Our own refetch pacing (on the injectable clock) replaces the client's cooldown.
            self._client = jwt.PyJWKClient(
                self.config.jwks_url, cache_jwk_set=True, lifespan=self.config.jwks_cache_seconds,
                timeout=self.config.jwks_timeout_seconds, cooldown_duration=0,
            )
        try:
            return self._client.get_signing_keys(refresh=refresh)
        except (jwt.PyJWKClientConnectionError, OSError) as exc:
            raise UpstreamUnavailable("the token issuer's keys (JWKS) could not be fetched; retry later",
                                      field=_FIELD) from exc
        except (jwt.PyJWTError, ValueError) as exc:
            # Reachable but unusable: not JSON, or no signing keys in the set.
            raise UpstreamFailed("the token issuer's key set (JWKS) is not usable", field=_FIELD) from exc


def _match(keys: list[Any], kid: str) -> Any:
    return next((key for key in keys if key.key_id == kid), None)


def _reason(exc: Exception) -> str:
    """A message naming what is wrong with the token, from PyJWT's exception type (never its text)."""
    import jwt

    reasons: list[tuple[type[Exception], str]] = [
        (jwt.ExpiredSignatureError, "token expired"),
        (jwt.InvalidIssuerError, "token issuer is not accepted"),
        (jwt.InvalidAudienceError, "token audience is not accepted"),
        (jwt.InvalidSignatureError, "token signature is not valid"),
        (jwt.ImmatureSignatureError, "token is not valid yet (nbf or iat is in the future)"),
        (jwt.InvalidIssuedAtError, "token issued-at (iat) is not a number"),
        (jwt.InvalidAlgorithmError, "token algorithm does not match the issuer's key"),
        (jwt.InvalidKeyError, "the issuer's key for this token is not acceptable"),
        (jwt.DecodeError, "token is not a well-formed JWT"),
    ]
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"token has no '{exc.claim}' claim"
    return next((message for kind, message in reasons if isinstance(exc, kind)), "token is not valid")
