"""Operator sign-in, the verification half: an OIDC issuer's discovery document and signing
keys, and the check that turns a bearer access token into an `Identity` with a role.

Signatures and claim checks are PyJWT's (with cryptography). This module decides which key
and which algorithm a token may use, when the issuer is asked again, and what a refusal says.
A refusal never contains the token.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import jwt
import orjson
from jwt.exceptions import InvalidSubjectError

log = logging.getLogger("omen.oidc")

Role = Literal["admin", "viewer"]

# Asymmetric algorithms only, by key type. HS* would let a public key act as an HMAC secret
# and "none" has no signature, so neither is ever accepted whatever a key or token says.
_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_ALGORITHM_BY_CURVE = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
_EDDSA_CURVES = frozenset({"Ed25519", "Ed448"})
ALLOWED_ALGORITHMS = _RSA_ALGORITHMS | frozenset(_EC_ALGORITHM_BY_CURVE.values()) | {"EdDSA"}

# Named in a refusal; any other header value is not repeated back.
_REFUSED_ALGORITHM_NAMES = frozenset({"none", "HS256", "HS384", "HS512", "ES256K", "ES521"})

_REQUIRED_CLAIMS = ["iss", "aud", "sub", "exp", "iat"]
_GOOGLE = "https://accounts.google.com"
_MAX_TOKEN_CHARS = 16 * 1024
_MAX_DOCUMENT_BYTES = 512 * 1024


class OidcError(Exception):
    """A token was refused (401). `reason` names what failed and never contains the token."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OidcForbidden(OidcError):
    """The token is valid but its user is in no group mapped to a role (403)."""


class OidcUnavailable(OidcError):
    """The issuer's discovery document or keys could not be had or are not trustworthy, so
    no token can be checked; the API may answer 503 rather than 401."""


@dataclass(frozen=True, slots=True)
class OidcSettings:
    issuer: str
    audience: str
    admin_groups: frozenset[str] = frozenset()
    viewer_groups: frozenset[str] = frozenset()
    groups_claim: str = "groups"
    leeway_s: float = 60.0
    jwks_ttl_s: float = 3600.0
    # An unknown kid asks the issuer again at most this often, so a flood of made-up kids
    # costs the issuer one request per interval.
    jwks_refetch_interval_s: float = 30.0
    http_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if not _is_trusted_url(self.issuer):
            raise ValueError("OIDC issuer must be an https:// URL (http:// only on loopback)")
        if not self.audience:
            raise ValueError("OIDC audience must not be empty")
        if not self.groups_claim:
            raise ValueError("OIDC groups_claim must not be empty")
        for name in ("admin_groups", "viewer_groups"):
            groups = getattr(self, name)
            if isinstance(groups, str):
                raise ValueError(f"OIDC {name} must be a collection of group names")
            object.__setattr__(self, name, frozenset(groups))
        if not (self.admin_groups or self.viewer_groups):
            raise ValueError("OIDC maps no group to a role: nobody could sign in")
        for name in ("leeway_s", "jwks_ttl_s", "jwks_refetch_interval_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"OIDC {name} must not be negative")
        if self.http_timeout_s <= 0:
            raise ValueError("OIDC http_timeout_s must be positive")

    @property
    def discovery_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"

    @property
    def accepted_issuers(self) -> tuple[str, ...]:
        """The `iss` values a token may carry: the issuer, exactly; Google's ID tokens may
        also name it without the scheme (its documentation says either is valid)."""
        if self.issuer == _GOOGLE:
            return (self.issuer, _GOOGLE.removeprefix("https://"))
        return (self.issuer,)


@dataclass(frozen=True, slots=True)
class Identity:
    subject: str
    role: Role
    email: str | None
    name: str | None
    groups: tuple[str, ...]
    expires_at: int  # the token's exp, seconds since the epoch


@dataclass(frozen=True, slots=True)
class _KeySet:
    by_kid: dict[str, list[dict[str, Any]]]
    fetched_at: float


class OidcVerifier:
    """Checks bearer access tokens against one issuer. Owns that issuer's cached keys; the
    HTTP client is the caller's (it is not closed here)."""

    def __init__(
        self,
        settings: OidcSettings,
        client: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._client = client
        self._clock = clock
        self._lock = asyncio.Lock()
        self._jwks_uri: str | None = None
        self._keyset: _KeySet | None = None
        self._last_fetch: float | None = None
        self._prepared: dict[tuple[str, str], jwt.PyJWK] = {}

    async def refresh_keys(self) -> None:
        """Fetch the discovery document and keys now (at startup, to fail fast)."""
        async with self._lock:
            await self._fetch_keys()

    async def verify(self, token: str) -> Identity:
        alg, kid = _peek(token, self.settings.accepted_issuers)
        key = await self._key_for(kid, alg)
        claims = self._decode(token, key, alg)
        return self._identity(claims)

    def _decode(self, token: str, key: jwt.PyJWK, alg: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.settings.audience,
                issuer=self.settings.accepted_issuers,
                leeway=self.settings.leeway_s,
                options={"require": _REQUIRED_CLAIMS, "enforce_minimum_key_length": True},
            )
        except jwt.MissingRequiredClaimError as exc:
            raise OidcError(f"missing {exc.claim} claim") from None
        except jwt.PyJWTError as exc:
            raise OidcError(_refusal(exc)) from None

    def _identity(self, claims: dict[str, Any]) -> Identity:
        groups = groups_of(claims, self.settings.groups_claim)
        role: Role
        if self.settings.admin_groups.intersection(groups):
            role = "admin"
        elif self.settings.viewer_groups.intersection(groups):
            role = "viewer"
        else:
            raise OidcForbidden("user is in no group mapped to a role")
        name = claims.get("name") or claims.get("preferred_username")
        email = claims.get("email")
        return Identity(
            subject=claims["sub"],
            role=role,
            email=email if isinstance(email, str) else None,
            name=name if isinstance(name, str) else None,
            groups=groups,
            expires_at=int(claims["exp"]),
        )

    async def _key_for(self, kid: str, alg: str) -> jwt.PyJWK:
        candidates = await self._candidates(kid)
        allowed = [jwk for jwk in candidates if alg in _algorithms_for(jwk)]
        if not allowed:
            raise OidcError("algorithm does not match the signing key")
        prepared = self._prepared.get((kid, alg))
        if prepared is not None:
            return prepared
        for jwk in allowed:
            try:
                prepared = jwt.PyJWK(jwk, algorithm=alg)
            except jwt.PyJWTError:
                continue
            self._prepared[(kid, alg)] = prepared
            return prepared
        raise OidcError("signing key unusable")

    async def _candidates(self, kid: str) -> list[dict[str, Any]]:
        keyset = self._keyset
        if keyset is not None and kid in keyset.by_kid and not self._stale(keyset):
            return keyset.by_kid[kid]
        async with self._lock:
            # Another request may have fetched while this one waited for the lock.
            keyset = self._keyset
            wanted = keyset is None or kid not in keyset.by_kid or self._stale(keyset)
            if wanted and self._may_fetch():
                try:
                    await self._fetch_keys()
                except OidcUnavailable as exc:
                    if self._keyset is None:
                        raise
                    # Keep verifying with the keys we have rather than lock everyone out.
                    log.warning("OIDC key refresh failed; keeping cached keys: %s", exc.reason)
            keyset = self._keyset
        if keyset is None:
            raise OidcUnavailable("issuer keys not fetched yet; retrying shortly")
        found = keyset.by_kid.get(kid)
        if not found:
            raise OidcError("unknown signing key")
        return found

    def _stale(self, keyset: _KeySet) -> bool:
        return self._clock() - keyset.fetched_at >= self.settings.jwks_ttl_s

    def _may_fetch(self) -> bool:
        if self._last_fetch is None:
            return True
        return self._clock() - self._last_fetch >= self.settings.jwks_refetch_interval_s

    async def _fetch_keys(self) -> None:
        self._last_fetch = self._clock()
        if self._jwks_uri is None:
            self._jwks_uri = await self._discover()
        try:
            document = await self._get_json(self._jwks_uri, "JWKS")
            by_kid = _index_keys(document)
        except OidcUnavailable:
            self._jwks_uri = None  # the issuer may have moved its keys: discover again
            raise
        self._keyset = _KeySet(by_kid, self._clock())
        self._prepared.clear()

    async def _discover(self) -> str:
        document = await self._get_json(self.settings.discovery_url, "discovery document")
        if document.get("issuer") != self.settings.issuer:
            raise OidcUnavailable("discovery document names another issuer")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not _is_trusted_url(jwks_uri):
            raise OidcUnavailable("discovery document has no usable jwks_uri")
        return jwks_uri

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        body = bytearray()
        timeout = self.settings.http_timeout_s
        try:
            async with asyncio.timeout(timeout):
                async with self._client.stream(
                    "GET", url, headers={"accept": "application/json"}, timeout=timeout
                ) as response:
                    if response.status_code != 200:
                        raise OidcUnavailable(f"{what} fetch failed: HTTP {response.status_code}")
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > _MAX_DOCUMENT_BYTES:
                            raise OidcUnavailable(f"{what} too large")
        except TimeoutError:
            raise OidcUnavailable(f"{what} fetch timed out") from None
        except httpx.HTTPError as exc:
            raise OidcUnavailable(f"{what} fetch failed: {type(exc).__name__}") from exc
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise OidcUnavailable(f"{what} is not JSON") from None
        if not isinstance(document, dict):
            raise OidcUnavailable(f"{what} is not a JSON object")
        return document


def _peek(token: str, issuers: tuple[str, ...]) -> tuple[str, str]:
    """The token's alg and kid, read before any key is fetched: a token that could never pass
    costs the issuer nothing."""
    if not token or len(token) > _MAX_TOKEN_CHARS:
        raise OidcError("malformed token")
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise OidcError("malformed token") from None
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
        named = alg if isinstance(alg, str) and alg in _REFUSED_ALGORITHM_NAMES else None
        raise OidcError(f"algorithm {named} not allowed" if named else "algorithm not allowed")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise OidcError("token names no signing key (kid)")
    if claims.get("iss") not in issuers:
        raise OidcError("wrong issuer")
    return alg, kid


_REFUSALS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.InvalidSignatureError, "bad signature"),  # before DecodeError, its base class
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.InvalidIssuedAtError, "malformed iat claim"),
    (InvalidSubjectError, "malformed sub claim"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed"),
    (jwt.InvalidKeyError, "signing key unusable or too weak"),
    (jwt.DecodeError, "malformed token"),
)


def _refusal(exc: jwt.PyJWTError) -> str:
    for kind, reason in _REFUSALS:
        if isinstance(exc, kind):
            return reason
    return "invalid token"


def _index_keys(document: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    keys = document.get("keys")
    if not isinstance(keys, list):
        raise OidcUnavailable("JWKS has no keys list")
    by_kid: dict[str, list[dict[str, Any]]] = {}
    for jwk in keys:
        if not isinstance(jwk, dict):
            continue
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid:
            continue
        ops = jwk.get("key_ops")
        usable = (
            jwk.get("use", "sig") == "sig"
            and (ops is None or (isinstance(ops, list) and "verify" in ops))
            and "d" not in jwk  # private material published by mistake: not a key to trust
            and _algorithms_for(jwk)
        )
        if usable:
            by_kid.setdefault(kid, []).append(jwk)
    return by_kid


def _algorithms_for(jwk: dict[str, Any]) -> frozenset[str]:
    """The algorithms a public key may verify: those of its type and curve, narrowed to the
    one it declares. A symmetric ("oct") key gets none."""
    kty, crv = jwk.get("kty"), jwk.get("crv")
    family: frozenset[str] = frozenset()
    if kty == "RSA":
        family = _RSA_ALGORITHMS
    elif kty == "EC" and crv in _EC_ALGORITHM_BY_CURVE:
        family = frozenset({_EC_ALGORITHM_BY_CURVE[crv]})
    elif kty == "OKP" and crv in _EDDSA_CURVES:
        family = frozenset({"EdDSA"})
    declared = jwk.get("alg")
    if declared is None:
        return family
    return family & {declared} if isinstance(declared, str) else frozenset()


def groups_of(claims: Mapping[str, Any], claim: str) -> tuple[str, ...]:
    """Group names from the claim, by exact name first (Auth0's claims are URLs with dots),
    then as a dotted path (Keycloak's realm_access.roles)."""
    value: Any = claims.get(claim)
    if value is None and "." in claim:
        value = claims
        for part in claim.split("."):
            value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(group for group in value if isinstance(group, str))
    return ()


def _is_trusted_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    if not host:
        return False
    if parts.scheme == "https":
        return True
    if parts.scheme != "http":
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
