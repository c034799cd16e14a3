"""A real OIDC issuer for tests: discovery and JWKS over HTTP from keys made in the test, keys
that rotate on demand, and tokens minted with whatever claims, kid, alg and key a test needs,
forged ones included. Device-authorization and token endpoints will join `routes()` later.

Serve it on a real socket with `running_issuer()`, or in process with `in_process_client()`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

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

    def routes(self) -> list[Route]:
        return [
            Route("/.well-known/openid-configuration", self._discovery),
            Route("/jwks", self._jwks),
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

    async def _discovery(self, request: Request) -> Response:
        self.discovery_fetches += 1
        document = {
            "issuer": self.url,
            "jwks_uri": f"{self.url}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": sorted({key.alg for key in self.keys}),
        }
        document.update(self.discovery_overrides)
        return JSONResponse(document)

    async def _jwks(self, request: Request) -> Response:
        self.jwks_fetches += 1
        if self.jwks_status != 200:
            return JSONResponse({"error": "unavailable"}, status_code=self.jwks_status)
        return JSONResponse({"keys": [key.public_jwk() for key in self.keys]})


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
