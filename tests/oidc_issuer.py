"""A real OIDC issuer for tests: discovery and JWKS over HTTP from keys made in the test, keys
that rotate on demand, and tokens minted with whatever claims, kid, alg and key a test needs,
forged ones included. It also signs operators in as a real one does for `omen login`: a device
authorization endpoint (RFC 8628) and a token endpoint for the device-code and refresh-token
grants, whose access tokens are JWTs signed with its keys. A test plays the operator's browser
with `approve(user_code, user)` or `deny(user_code)`.

Serve it on a real socket with `running_issuer()`, or in process with `in_process_client()`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import RunningFake

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

AUDIENCE = "omen-admin"
CLIENT_ID = "omen-console"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass(frozen=True)
class IssuerKey:
    """A signing key the issuer holds; only its public half is ever published."""

    kid: str
    alg: str
    private_key: PrivateKey
    declare_alg: bool = True  # publish "alg" in the JWK (most issuers do)

    def public_jwk(self) -> dict[str, Any]:
        public = self.private_key.public_key()
        jwk: dict[str, Any]
        if isinstance(public, rsa.RSAPublicKey):
            jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            jwk = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
        jwk.update({"kid": self.kid, "use": "sig"})
        if self.declare_alg:
            jwk["alg"] = self.alg
        return jwk

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def rsa_key(kid: str, alg: str = "RS256", bits: int = 2048) -> IssuerKey:
    return IssuerKey(kid, alg, rsa.generate_private_key(public_exponent=65537, key_size=bits))


def ec_key(kid: str) -> IssuerKey:
    return IssuerKey(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


def ed25519_key(kid: str) -> IssuerKey:
    return IssuerKey(kid, "EdDSA", ed25519.Ed25519PrivateKey.generate())


@dataclass(frozen=True)
class IssuerUser:
    """Someone who may approve a sign-in at the issuer: what its tokens say about them."""

    sub: str
    email: str
    name: str = ""
    groups: tuple[str, ...] = ()


ADMIN_USER = IssuerUser("operator-1", "ops@example.com", "Ada Operator", ("omen-admins",))
VIEWER_USER = IssuerUser("viewer-1", "ann@example.com", "Ann Viewer", ("omen-viewers",))


@dataclass
class DeviceGrant:
    """One `omen login` waiting at the issuer: its codes and what the operator did."""

    device_code: str
    user_code: str
    client_id: str
    scope: str
    audience: str | None
    expires_at: float
    user: IssuerUser | None = None
    denied: bool = False
    redeemed: bool = False
    polls: int = 0


@dataclass(frozen=True)
class RefreshGrant:
    client_id: str
    scope: str
    audience: str | None
    user: IssuerUser


@dataclass
class OidcIssuer:
    """The issuer's state; the HTTP app reads it on every request, so a test changes keys or
    documents between calls and the next fetch sees the change."""

    url: str = ""
    audience: str = AUDIENCE
    keys: list[IssuerKey] = field(default_factory=list)
    # Replace fields of the discovery document (e.g. another "issuer").
    discovery_overrides: dict[str, Any] = field(default_factory=dict)
    jwks_status: int = 200
    discovery_fetches: int = 0
    jwks_fetches: int = 0
    # Signing operators in (the device authorization grant and refresh tokens).
    device_interval: float = 5  # seconds between polls the issuer asks for
    device_expires_in: float = 600
    complete_uri: bool = True  # offer verification_uri_complete (most issuers do)
    slow_down_polls: int = 0  # answer the next this many polls with slow_down
    access_token_ttl: int = 300
    rotate_refresh_tokens: bool = True  # each refresh hands out a new refresh token
    # Google's ways: access tokens that are not JWTs (the ID token is what can be verified),
    # and a client secret wanted at the token endpoint even from a device.
    opaque_access_tokens: bool = False
    client_secret: str | None = None
    refresh_grants: int = 0  # refresh_token grants answered with new tokens
    token_requests: list[dict[str, str]] = field(default_factory=list)  # every form posted
    device_grants: dict[str, DeviceGrant] = field(default_factory=dict)  # by device_code
    refresh_tokens: dict[str, RefreshGrant] = field(default_factory=dict)
    revocations: list[str] = field(default_factory=list)  # token_type_hint of each revocation
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def routes(self) -> list[Route]:
        return [
            Route("/.well-known/openid-configuration", self._discovery),
            Route("/jwks", self._jwks),
            Route("/device/code", self._device_authorization, methods=["POST"]),
            Route("/token", self._token, methods=["POST"]),
            Route("/revoke", self._revoke, methods=["POST"]),
        ]

    def app(self) -> Starlette:
        return Starlette(routes=self.routes())

    def reset(self, keys: list[IssuerKey]) -> None:
        """Back to a well-behaved issuer holding `keys`, counters at zero (same URL)."""
        self.keys = list(keys)
        self.discovery_overrides = {}
        self.jwks_status = 200
        self.discovery_fetches = 0
        self.jwks_fetches = 0
        self.device_interval = 5
        self.device_expires_in = 600
        self.complete_uri = True
        self.slow_down_polls = 0
        self.access_token_ttl = 300
        self.rotate_refresh_tokens = True
        self.opaque_access_tokens = False
        self.client_secret = None
        self.refresh_grants = 0
        self.token_requests = []
        self.device_grants = {}
        self.refresh_tokens = {}
        self.revocations = []

    def add_key(self, key: IssuerKey) -> IssuerKey:
        self.keys.append(key)
        return key

    def remove_key(self, kid: str) -> None:
        self.keys = [key for key in self.keys if key.kid != kid]

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """A valid access token's claims; an override of None leaves that claim out."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": self.audience,
            "sub": "operator-1",
            "iat": now,
            "exp": now + 300,
            "email": "ops@example.com",
            "name": "Ada Operator",
            "groups": ["omen-admins"],
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def mint(
        self,
        *,
        key: IssuerKey | None = None,
        kid: str | None = None,
        alg: str | None = None,
        **claims: Any,
    ) -> str:
        """A token signed by `key` (default: the issuer's first key) with its kid and alg
        unless told otherwise; `claims` override `self.claims()`."""
        key = key or self.keys[0]
        return jwt.encode(
            self.claims(**claims),
            key.private_key,
            algorithm=alg or key.alg,
            headers={"kid": kid or key.kid},
        )

    # -- the operator's side of a sign-in (what a browser at the issuer would do) -----------

    def grant(self, user_code: str) -> DeviceGrant:
        """The waiting sign-in with this user code (KeyError when there is none)."""
        with self._lock:
            for grant in self.device_grants.values():
                if grant.user_code == user_code:
                    return grant
        raise KeyError(user_code)

    def approve(self, user_code: str, user: IssuerUser = ADMIN_USER) -> None:
        """The operator entered the code and approved the sign-in as `user`."""
        self.grant(user_code).user = user

    def deny(self, user_code: str) -> None:
        self.grant(user_code).denied = True

    def expire(self, user_code: str) -> None:
        """The code ran out before anyone approved it."""
        self.grant(user_code).expires_at = time.time() - 1

    def access_token(self, user: IssuerUser, audience: str | None, client_id: str) -> str:
        now = int(time.time())
        return self.mint(
            aud=audience or self.audience,
            sub=user.sub,
            email=user.email,
            name=user.name or None,
            groups=list(user.groups),
            iat=now,
            exp=now + self.access_token_ttl,
            client_id=client_id,
        )

    def id_token(self, user: IssuerUser, client_id: str) -> str:
        now = int(time.time())
        return self.mint(
            aud=client_id,
            sub=user.sub,
            email=user.email,
            name=user.name or None,
            groups=None,
            iat=now,
            exp=now + self.access_token_ttl,
        )

    # -- HTTP --------------------------------------------------------------------------------

    async def _discovery(self, request: Request) -> Response:
        self.discovery_fetches += 1
        document = {
            "issuer": self.url,
            "jwks_uri": f"{self.url}/jwks",
            "device_authorization_endpoint": f"{self.url}/device/code",
            "token_endpoint": f"{self.url}/token",
            "revocation_endpoint": f"{self.url}/revoke",
            "grant_types_supported": [DEVICE_GRANT, "refresh_token"],
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": sorted({key.alg for key in self.keys}),
        }
        document.update(self.discovery_overrides)
        return JSONResponse(document)

    async def _revoke(self, request: Request) -> Response:
        """RFC 7009: a refresh token presented here is redeemable no more; 200 whatever it
        was (the RFC's answer to an unknown token too)."""
        form = dict(parse_qsl((await request.body()).decode()))
        self.revocations.append(form.get("token_type_hint", ""))
        self.refresh_tokens.pop(form.get("token", ""), None)
        return Response(status_code=200)

    async def _jwks(self, request: Request) -> Response:
        self.jwks_fetches += 1
        if self.jwks_status != 200:
            return JSONResponse({"error": "unavailable"}, status_code=self.jwks_status)
        return JSONResponse({"keys": [key.public_jwk() for key in self.keys]})

    async def _device_authorization(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        client_id = form.get("client_id")
        if not client_id:
            return _oauth_error("invalid_client", "client_id is required", 401)
        grant = DeviceGrant(
            device_code=secrets.token_urlsafe(24),
            user_code=_user_code(),
            client_id=client_id,
            scope=form.get("scope", ""),
            audience=form.get("audience"),
            expires_at=time.time() + self.device_expires_in,
        )
        with self._lock:
            self.device_grants[grant.device_code] = grant
        answer: dict[str, Any] = {
            "device_code": grant.device_code,
            "user_code": grant.user_code,
            "verification_uri": f"{self.url}/device",
            "expires_in": self.device_expires_in,
            "interval": self.device_interval,
        }
        if self.complete_uri:
            answer["verification_uri_complete"] = f"{self.url}/device?user_code={grant.user_code}"
        return JSONResponse(answer)

    async def _token(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        self.token_requests.append(form)
        kind = form.get("grant_type")
        if self.client_secret is not None and form.get("client_secret") != self.client_secret:
            return _oauth_error("invalid_client", "client_secret is missing or wrong", 401)
        if kind == DEVICE_GRANT:
            return self._device_token(form)
        if kind == "refresh_token":
            return self._refresh_token(form)
        return _oauth_error("unsupported_grant_type", f"grant_type {kind!r} is not supported")

    def _device_token(self, form: dict[str, str]) -> Response:
        with self._lock:
            grant = self.device_grants.get(form.get("device_code", ""))
            if grant is None or grant.redeemed:
                return _oauth_error("invalid_grant", "unknown or used device_code")
            if grant.client_id != form.get("client_id"):
                return _oauth_error("invalid_client", "device_code was issued to another client")
            grant.polls += 1
            if time.time() >= grant.expires_at:
                return _oauth_error("expired_token", "the device code has expired")
            if grant.denied:
                return _oauth_error("access_denied", "the user denied the request")
            if self.slow_down_polls > 0:
                self.slow_down_polls -= 1
                return _oauth_error("slow_down", "polling too fast")
            if grant.user is None:
                return _oauth_error("authorization_pending", "waiting for the user")
            grant.redeemed = True
        return self._tokens(grant.client_id, grant.scope, grant.audience, grant.user)

    def _refresh_token(self, form: dict[str, str]) -> Response:
        with self._lock:
            presented = form.get("refresh_token", "")
            grant = self.refresh_tokens.get(presented)
            if grant is None:
                return _oauth_error("invalid_grant", "unknown or revoked refresh token")
            if grant.client_id != form.get("client_id"):
                return _oauth_error("invalid_client", "refresh token of another client")
            if self.rotate_refresh_tokens:
                del self.refresh_tokens[presented]
            self.refresh_grants += 1
        return self._tokens(
            grant.client_id, grant.scope, grant.audience, grant.user, refresh=presented
        )

    def _tokens(
        self,
        client_id: str,
        scope: str,
        audience: str | None,
        user: IssuerUser,
        *,
        refresh: str | None = None,
    ) -> Response:
        access = self.access_token(user, audience, client_id)
        if self.opaque_access_tokens:
            access = "ya29." + secrets.token_urlsafe(32)
        answer: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.access_token_ttl,
            "scope": scope,
        }
        if "openid" in scope.split():
            answer["id_token"] = self.id_token(user, client_id)
        if "offline_access" in scope.split():
            if refresh is None or self.rotate_refresh_tokens:
                refresh = secrets.token_urlsafe(32)
                with self._lock:
                    self.refresh_tokens[refresh] = RefreshGrant(client_id, scope, audience, user)
            answer["refresh_token"] = refresh
        return JSONResponse(answer, headers={"cache-control": "no-store"})


def _oauth_error(error: str, description: str, status: int = 400) -> Response:
    """RFC 6749 §5.2: an error code the client acts on, and words for people."""
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def _user_code() -> str:
    """Eight letters without vowels or look-alikes, as RFC 8628 §6.1 suggests: WDJB-MJHT."""
    letters = "BCDFGHJKLMNPQRSTVWXZ"
    code = "".join(secrets.choice(letters) for _ in range(8))
    return f"{code[:4]}-{code[4:]}"


@contextmanager
def running_issuer(issuer: OidcIssuer) -> Iterator[OidcIssuer]:
    """Serve `issuer` with uvicorn on 127.0.0.1 (a free port) in a background thread."""
    fake = RunningFake(issuer.app())
    issuer.url = fake.url
    with fake.start():
        yield issuer


def in_process_client(issuer: OidcIssuer, url: str = "https://issuer.test") -> httpx.AsyncClient:
    """An httpx client that reaches `issuer` through the ASGI transport, no socket."""
    issuer.url = url
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=issuer.app()))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(claims))}"


def unsigned_token(claims: dict[str, Any], kid: str) -> str:
    """alg "none": no signature at all."""
    return _segments({"alg": "none", "typ": "JWT", "kid": kid}, claims) + "."


def hmac_token(claims: dict[str, Any], secret: bytes, kid: str) -> str:
    """HS256 keyed with `secret`: the classic forgery keys it with the issuer's public key.
    Built by hand because PyJWT (rightly) refuses a PEM as an HMAC secret."""
    signing_input = _segments({"alg": "HS256", "typ": "JWT", "kid": kid}, claims)
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"
