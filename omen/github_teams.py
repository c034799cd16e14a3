"""Operator sign-in through GitHub, the verification half: a GitHub token (from `omen login`'s
device flow, or a personal access token) becomes the user's login and a role from their team
membership in one organisation.

GitHub tokens are opaque, so each one is checked by asking GitHub (`GET /user`, `GET
/user/teams`). Verdicts are cached by the token's SHA-256 digest, never the token: accepted
ones for the configured TTL, refused ones briefly; "GitHub is unreachable" is never cached.
A refusal never contains the token.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import orjson

log = logging.getLogger("omen.github")

Role = Literal["admin", "viewer"]

# The prefixes GitHub gives its tokens (OAuth app, GitHub App user, classic and fine-grained
# personal access tokens). Nothing else is sent to GitHub: a mistyped Omen key must not be.
TOKEN_PREFIXES = ("gho_", "ghu_", "ghp_", "github_pat_")
_MAX_TOKEN_CHARS = 1024
_MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
_MAX_TEAM_PAGES = 10  # 1,000 teams; a user in more is in none of ours as far as Omen knows
_MAX_CACHED = 4096
_API_VERSION = "2022-11-28"


class GitHubRefused(Exception):
    """GitHub does not accept the token (401). `reason` never contains the token."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GitHubForbidden(GitHubRefused):
    """The token is good but its user is in no team mapped to a role, or the token may not
    read team membership (403)."""


class GitHubUnavailable(GitHubRefused):
    """GitHub could not be asked (down, slow, rate-limited): answer 503, not 401."""


def looks_like_github_token(token: str) -> bool:
    return token.startswith(TOKEN_PREFIXES) and len(token) <= _MAX_TOKEN_CHARS


@dataclass(frozen=True, slots=True)
class GitHubSettings:
    org: str
    admin_teams: frozenset[str] = frozenset()
    viewer_teams: frozenset[str] = frozenset()
    api_url: str = "https://api.github.com"
    cache_ttl_s: float = 300.0
    negative_ttl_s: float = 30.0
    http_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if not self.org:
            raise ValueError("GitHub org must not be empty")
        for name in ("admin_teams", "viewer_teams"):
            teams = getattr(self, name)
            if isinstance(teams, str):
                raise ValueError(f"GitHub {name} must be a collection of team slugs")
            object.__setattr__(self, name, frozenset(team.lower() for team in teams))
        if not (self.admin_teams or self.viewer_teams):
            raise ValueError("GitHub maps no team to a role: nobody could sign in")
        object.__setattr__(self, "api_url", self.api_url.rstrip("/"))


@dataclass(frozen=True, slots=True)
class GitHubIdentity:
    login: str
    role: Role
    email: str | None
    name: str | None
    teams: tuple[str, ...]  # the user's teams in the org that map to a role


@dataclass(frozen=True, slots=True)
class _Verdict:
    expires_at: float
    identity: GitHubIdentity | None
    refusal: tuple[type[GitHubRefused], str] | None = None


class GitHubTeams:
    """Checks GitHub tokens against one org's teams. Owns the verdict cache; the HTTP client is
    the caller's (it is not closed here)."""

    def __init__(
        self,
        settings: GitHubSettings,
        client: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._client = client
        self._clock = clock
        self._verdicts: dict[bytes, _Verdict] = {}
        # One question to GitHub per token at a time: concurrent requests wait for it.
        self._asking: dict[bytes, asyncio.Task[_Verdict]] = {}

    async def verify(self, token: str) -> GitHubIdentity:
        if not looks_like_github_token(token):
            raise GitHubRefused("not a GitHub token")
        digest = hashlib.sha256(token.encode()).digest()
        verdict = self._verdicts.get(digest)
        if verdict is None or verdict.expires_at <= self._clock():
            verdict = await self._ask_once(digest, token)
        if verdict.identity is not None:
            return verdict.identity
        assert verdict.refusal is not None
        kind, reason = verdict.refusal
        raise kind(reason)

    async def _ask_once(self, digest: bytes, token: str) -> _Verdict:
        asking = self._asking.get(digest)
        if asking is None:
            # A task of its own, so a caller that goes away does not cancel the others' answer.
            asking = asyncio.create_task(self._ask(token))
            self._asking[digest] = asking
            asking.add_done_callback(lambda done: self._settled(digest, done))
        return await asyncio.shield(asking)

    def _settled(self, digest: bytes, done: asyncio.Task[_Verdict]) -> None:
        self._asking.pop(digest, None)
        if not done.cancelled() and done.exception() is None:
            self._remember(digest, done.result())

    async def _ask(self, token: str) -> _Verdict:
        settings = self.settings
        try:
            identity = await self._identity(token)
        except GitHubUnavailable:
            raise  # not cached: the next request asks again
        except GitHubRefused as exc:
            log.info("GitHub sign-in refused: %s", exc.reason)
            negative = min(settings.negative_ttl_s, settings.cache_ttl_s)
            return _Verdict(self._clock() + negative, None, (type(exc), exc.reason))
        return _Verdict(self._clock() + settings.cache_ttl_s, identity)

    def _remember(self, digest: bytes, verdict: _Verdict) -> None:
        if len(self._verdicts) >= _MAX_CACHED:
            now = self._clock()
            for key in [k for k, v in self._verdicts.items() if v.expires_at <= now]:
                del self._verdicts[key]
            while len(self._verdicts) >= _MAX_CACHED:  # still full: the oldest go first
                del self._verdicts[next(iter(self._verdicts))]
        self._verdicts[digest] = verdict

    async def _identity(self, token: str) -> GitHubIdentity:
        user = await self._get_json(token, "/user", "user")
        login = user.get("login") if isinstance(user, dict) else None
        if not isinstance(login, str) or not login:
            raise GitHubUnavailable("GitHub's /user answer names no login")
        teams = await self._teams(token)
        settings = self.settings
        admin = sorted(settings.admin_teams & teams)
        viewer = sorted(settings.viewer_teams & teams)
        role: Role
        if admin:
            role = "admin"
        elif viewer:
            role = "viewer"
        else:
            raise GitHubForbidden(
                f"GitHub user {login} is in no team of {settings.org} mapped to a role"
            )
        email, name = user.get("email"), user.get("name")
        return GitHubIdentity(
            login=login,
            role=role,
            email=email if isinstance(email, str) and email else None,
            name=name if isinstance(name, str) and name else None,
            teams=tuple(admin + viewer),
        )

    async def _teams(self, token: str) -> set[str]:
        """Slugs of the user's teams in the configured org (lower-case)."""
        org = self.settings.org.lower()
        found: set[str] = set()
        for page in range(1, _MAX_TEAM_PAGES + 1):
            teams = await self._get_json(token, f"/user/teams?per_page=100&page={page}", "teams")
            if not isinstance(teams, list):
                raise GitHubUnavailable("GitHub's /user/teams answer is not a list")
            for team in teams:
                if not isinstance(team, dict):
                    continue
                owner = team.get("organization")
                owner_login = owner.get("login") if isinstance(owner, dict) else None
                slug = team.get("slug")
                in_org = isinstance(owner_login, str) and owner_login.lower() == org
                if in_org and isinstance(slug, str):
                    found.add(slug.lower())
            if len(teams) < 100:
                break
        return found

    async def _get_json(self, token: str, path: str, what: str) -> Any:
        body = bytearray()
        timeout = self.settings.http_timeout_s
        headers = {
            "accept": "application/vnd.github+json",
            "authorization": f"Bearer {token}",
            "x-github-api-version": _API_VERSION,
        }
        try:
            async with asyncio.timeout(timeout):
                async with self._client.stream(
                    "GET", self.settings.api_url + path, headers=headers, timeout=timeout
                ) as response:
                    _check_status(response, what)
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > _MAX_DOCUMENT_BYTES:
                            raise GitHubUnavailable(f"GitHub's {what} answer is too large")
        except TimeoutError:
            raise GitHubUnavailable(f"GitHub did not answer ({what}) in time") from None
        except httpx.HTTPError as exc:
            raise GitHubUnavailable(f"GitHub unreachable ({type(exc).__name__})") from None
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise GitHubUnavailable(f"GitHub's {what} answer is not JSON") from None


def _check_status(response: httpx.Response, what: str) -> None:
    status = response.status_code
    if status == 200:
        return
    if status == 401:
        raise GitHubRefused("GitHub does not accept the token (bad, expired or revoked)")
    rate_limited = status == 429 or (
        status == 403 and response.headers.get("x-ratelimit-remaining") == "0"
    )
    if rate_limited:
        raise GitHubUnavailable("GitHub's rate limit is reached; try again shortly")
    if status in (403, 404) and what == "teams":
        raise GitHubForbidden(
            "the token may not read team membership (an OAuth token needs the read:org scope)"
        )
    if status == 403:
        raise GitHubForbidden("GitHub refuses this token access to the user's profile")
    raise GitHubUnavailable(f"GitHub answered HTTP {status} ({what})")
