"""A fake GitHub REST API for operator sign-in: `GET /user` and `GET /user/teams` (paged as
GitHub pages them) for the tokens a test hands out, counting every call.

Serve it on a real socket with `run_fake(github.app())`, or in process through
`httpx.ASGITransport(app=github.app())`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass(frozen=True)
class GitHubUser:
    login: str
    email: str | None = None
    name: str | None = None
    teams: tuple[tuple[str, str], ...] = ()  # (org login, team slug)


@dataclass
class FakeGitHub:
    tokens: dict[str, GitHubUser] = field(default_factory=dict)
    # Answer every request with this status instead (500, or 403 with the rate limit spent).
    status: int | None = None
    rate_limited: bool = False
    teams_status: int | None = None  # only /user/teams (403: the token lacks read:org)
    user_calls: int = 0
    teams_calls: int = 0
    seen_authorization: list[str] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(
            routes=[Route("/user", self._user), Route("/user/teams", self._teams)],
        )

    def _caller(self, request: Request) -> GitHubUser | Response:
        header = request.headers.get("authorization", "")
        self.seen_authorization.append(header)
        if self.rate_limited:
            return JSONResponse(
                {"message": "API rate limit exceeded"},
                status_code=403,
                headers={"x-ratelimit-remaining": "0"},
            )
        if self.status is not None:
            return JSONResponse({"message": "fake failure"}, status_code=self.status)
        scheme, _, token = header.partition(" ")
        user = self.tokens.get(token) if scheme.lower() in ("bearer", "token") else None
        if user is None:
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        return user

    async def _user(self, request: Request) -> Response:
        self.user_calls += 1
        user = self._caller(request)
        if isinstance(user, Response):
            return user
        return JSONResponse({"login": user.login, "id": 1, "email": user.email, "name": user.name})

    async def _teams(self, request: Request) -> Response:
        self.teams_calls += 1
        user = self._caller(request)
        if isinstance(user, Response):
            return user
        if self.teams_status is not None:
            return JSONResponse({"message": "Resource not accessible"}, self.teams_status)
        per_page = int(request.query_params.get("per_page", "30"))
        page = int(request.query_params.get("page", "1"))
        teams = [
            {"slug": slug, "name": slug.title(), "organization": {"login": org, "id": 7}}
            for org, slug in user.teams
        ]
        return JSONResponse(teams[(page - 1) * per_page : page * per_page])
