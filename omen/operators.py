"""Who is calling the admin API: an admin key, an operator signed in through OIDC or GitHub,
or whoever is on the box of a keyless loopback daemon.

`SignIn` owns the sign-in verifiers ([auth.oidc], [auth.github]) and the HTTP client they
share; it turns a bearer token that is not a key into an `Operator`, or an `ApiError` in the
API's own shape. Keys never come here: the /v1 routes pay nothing for sign-in.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Literal

import httpx

from omen.config import AuthConfig
from omen.errors import ApiError
from omen.github_teams import (
    GitHubForbidden,
    GitHubRefused,
    GitHubSettings,
    GitHubTeams,
    GitHubUnavailable,
    looks_like_github_token,
)
from omen.oidc import OidcError, OidcForbidden, OidcSettings, OidcUnavailable, OidcVerifier

log = logging.getLogger("omen.operators")

Via = Literal["key", "oidc", "github", "loopback"]
_RETRY_AFTER_S = "5"


@dataclass(frozen=True, slots=True)
class Operator:
    """Who is calling an admin route. For a key, `actor` is its key id and `role` is ''; for
    an operator signed in through OIDC or GitHub, `actor` is the e-mail (else the subject) or
    the GitHub login, and `role` is admin or viewer. Audit rows record both."""

    actor: str
    role: str
    key_id: str | None = None  # the key's id when a key was presented
    via: Via = "key"
    subject: str | None = None
    email: str | None = None
    name: str | None = None

    @property
    def may_write(self) -> bool:
        """Keys reach here only with admin scope; a signed-in operator needs the admin role."""
        return self.role in ("", "admin")

    def whoami(self) -> dict[str, object]:
        return {
            "subject": self.subject if self.subject is not None else self.actor,
            "email": self.email,
            "name": self.name,
            "role": self.role or "admin",
            "via": self.via,
            "key_id": self.key_id,
        }


def looks_like_jwt(token: str) -> bool:
    """Three dot-separated parts whose header is a JSON object: worth an OIDC check."""
    header, _, rest = token.partition(".")
    payload, dot, _signature = rest.partition(".")
    return header.startswith("eyJ") and bool(payload) and bool(dot)


class SignIn:
    """Operator sign-in for the admin API. Built from [auth]; `start()` fetches the issuer's
    keys in the background (a failure is a warning: the daemon serves keys and asks again on
    the first token), `aclose()` closes the HTTP client."""

    def __init__(self, auth: AuthConfig) -> None:
        self.auth = auth
        self.oidc: OidcVerifier | None = None
        self.github: GitHubTeams | None = None
        self._client: httpx.AsyncClient | None = None
        self._warmup: asyncio.Task[None] | None = None
        if auth.oidc is None and auth.github is None:
            return
        self._client = httpx.AsyncClient(follow_redirects=False)
        if auth.oidc is not None:
            oidc = auth.oidc
            settings = OidcSettings(
                issuer=oidc.issuer,
                audience=oidc.audience,
                admin_groups=frozenset(oidc.admin_groups),
                viewer_groups=frozenset(oidc.viewer_groups),
                groups_claim=oidc.groups_claim,
                leeway_s=oidc.leeway,
                jwks_ttl_s=oidc.jwks_cache,
                jwks_refetch_interval_s=oidc.jwks_refetch_interval,
                http_timeout_s=oidc.timeout,
            )
            self.oidc = OidcVerifier(settings, self._client)
        if auth.github is not None:
            github = auth.github
            self.github = GitHubTeams(
                GitHubSettings(
                    org=github.org,
                    admin_teams=frozenset(github.admin_teams),
                    viewer_teams=frozenset(github.viewer_teams),
                    api_url=github.api_url,
                    cache_ttl_s=github.cache_ttl,
                    http_timeout_s=github.timeout,
                ),
                self._client,
            )

    @property
    def configured(self) -> bool:
        return self._client is not None

    def start(self) -> None:
        if self.oidc is not None:
            self._warmup = asyncio.create_task(self._fetch_issuer_keys(self.oidc))

    @staticmethod
    async def _fetch_issuer_keys(verifier: OidcVerifier) -> None:
        try:
            await verifier.refresh_keys()
        except OidcError as exc:
            log.warning(
                "OIDC issuer %s: %s; operators cannot sign in until it answers",
                verifier.settings.issuer,
                exc.reason,
            )
        else:
            log.info("OIDC issuer %s: signing keys fetched", verifier.settings.issuer)

    async def aclose(self) -> None:
        if self._warmup is not None:
            self._warmup.cancel()
            await asyncio.gather(self._warmup, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    async def operator(self, token: str) -> Operator:
        """The operator a token that is no key belongs to; 401, 403 or 503 otherwise."""
        if self.oidc is not None and looks_like_jwt(token):
            return await self._oidc_operator(self.oidc, token)
        if self.github is not None and looks_like_github_token(token):
            return await self._github_operator(self.github, token)
        raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")

    @staticmethod
    async def _oidc_operator(verifier: OidcVerifier, token: str) -> Operator:
        try:
            identity = await verifier.verify(token)
        except OidcUnavailable as exc:
            raise _unavailable("the OIDC issuer", exc.reason) from None
        except OidcForbidden as exc:
            raise _forbidden(exc.reason) from None
        except OidcError as exc:
            raise _refused("access token", exc.reason) from None
        return Operator(
            actor=identity.email or identity.subject,
            role=identity.role,
            via="oidc",
            subject=identity.subject,
            email=identity.email,
            name=identity.name,
        )

    @staticmethod
    async def _github_operator(teams: GitHubTeams, token: str) -> Operator:
        try:
            identity = await teams.verify(token)
        except GitHubUnavailable as exc:
            raise _unavailable("GitHub", exc.reason) from None
        except GitHubForbidden as exc:
            raise _forbidden(exc.reason) from None
        except GitHubRefused as exc:
            raise _refused("GitHub token", exc.reason) from None
        return Operator(
            actor=identity.login,
            role=identity.role,
            via="github",
            subject=identity.login,
            email=identity.email,
            name=identity.name,
        )


def _refused(what: str, reason: str) -> ApiError:
    log.info("operator sign-in refused: %s", reason)
    return ApiError(
        401,
        f"{what} refused: {reason}",
        code="invalid_token",
        headers={"www-authenticate": 'Bearer error="invalid_token"'},
    )


def _forbidden(reason: str) -> ApiError:
    log.info("operator sign-in forbidden: %s", reason)
    return ApiError(403, f"signed in, but {reason}", code="no_operator_role")


def _unavailable(who: str, reason: str) -> ApiError:
    log.warning("operator sign-in unavailable: %s: %s", who, reason)
    return ApiError(
        503,
        f"cannot check the sign-in now: {who}: {reason}",
        code="identity_provider_unavailable",
        headers={"retry-after": _RETRY_AFTER_S},
    )
