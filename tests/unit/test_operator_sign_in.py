"""Operator sign-in's parts without a daemon: the [auth.oidc] / [auth.github] tables as
`omen config check` sees them, GitHub team checks against a fake GitHub API (roles, the verdict
cache, GitHub down or rate-limited), which tokens go where, and the audit line `omen logs
--audit` prints."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from omen.config import check_config
from omen.github_teams import (
    GitHubForbidden,
    GitHubRefused,
    GitHubSettings,
    GitHubTeams,
    GitHubUnavailable,
)
from omen.logview import format_audit
from omen.operators import Operator, looks_like_jwt
from omen_store import AuditRow
from tests.fakes.github_api import FakeGitHub, GitHubUser
from tests.oidc_issuer import OidcIssuer, rsa_key

TOKEN = "gho_0123456789abcdefghijklmnopqrstuvwxyz"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- configuration ----------------------------------------------------------------------------


def problems_of(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "omen.toml"
    path.write_text(text)
    problems, _ = check_config(path, {})
    return {p.path: p.message for p in problems if p.severity == "error"}


def test_an_oidc_issuer_must_be_https_unless_on_loopback(tmp_path: Path) -> None:
    table = '[auth.oidc]\nissuer = "{}"\naudience = "omen"\nadmin_groups = ["ops"]\n'

    plain = problems_of(tmp_path, table.format("http://login.example.org"))
    local = problems_of(tmp_path, table.format("http://127.0.0.1:9000/realms/omen"))

    assert "https://" in plain["auth.oidc.issuer"]
    assert local == {}


def test_oidc_without_groups_or_audience_is_an_error(tmp_path: Path) -> None:
    no_groups = problems_of(tmp_path, '[auth.oidc]\nissuer = "https://i.example"\naudience = "a"\n')
    no_audience = problems_of(
        tmp_path, '[auth.oidc]\nissuer = "https://i.example"\nadmin_groups = ["ops"]\n'
    )

    assert "nobody could sign in" in no_groups["auth.oidc"]
    assert "audience" in no_audience["auth.oidc"]


def test_the_audience_defaults_to_the_client_id(tmp_path: Path) -> None:
    path = tmp_path / "omen.toml"
    path.write_text(
        '[auth.oidc]\nissuer = "https://i.example"\nclient_id = "omen-cli"\n'
        'viewer_groups = ["ops"]\n'
    )

    _, loaded = check_config(path, {})

    assert loaded is not None and loaded.config.auth.oidc is not None
    assert loaded.config.auth.oidc.audience == "omen-cli"


def test_github_needs_a_team_and_a_trusted_api_url(tmp_path: Path) -> None:
    no_team = problems_of(tmp_path, '[auth.github]\norg = "acme"\n')
    plain = problems_of(
        tmp_path,
        '[auth.github]\norg = "acme"\nadmin_teams = ["ops"]\napi_url = "http://ghe.example"\n',
    )

    assert "nobody could sign in" in no_team["auth.github"]
    assert "https://" in plain["auth.github.api_url"]


# --- which tokens go where --------------------------------------------------------------------


def test_only_jwts_are_sent_to_the_oidc_issuer() -> None:
    issuer = OidcIssuer(url="https://i.example", keys=[rsa_key("k")])

    assert looks_like_jwt(issuer.mint())
    assert not looks_like_jwt("sk-omen-admin-0123456789")
    assert not looks_like_jwt(TOKEN)
    assert not looks_like_jwt("a.b.c")


def test_a_key_operator_acts_as_admin_and_a_viewer_may_not_write() -> None:
    key = Operator("key_0123456789ab", "", "key_0123456789ab")
    viewer = Operator("ann@example.com", "viewer", via="oidc", subject="u-1")

    assert key.may_write and key.whoami()["role"] == "admin"
    assert not viewer.may_write
    assert viewer.whoami() == {
        "subject": "u-1",
        "email": None,
        "name": None,
        "role": "viewer",
        "via": "oidc",
        "key_id": None,
    }


# --- GitHub teams -----------------------------------------------------------------------------


@pytest.fixture
def github() -> FakeGitHub:
    return FakeGitHub(
        tokens={
            TOKEN: GitHubUser(
                "octo", "octo@example.com", "Octo", (("Acme", "sre"), ("acme", "omen-admins"))
            )
        }
    )


@pytest.fixture
async def client(github: FakeGitHub) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=github.app())) as client:
        yield client


def teams(
    client: httpx.AsyncClient, clock: FakeClock | None = None, **settings: object
) -> GitHubTeams:
    defaults: dict[str, object] = {
        "org": "acme",
        "admin_teams": frozenset({"omen-admins"}),
        "viewer_teams": frozenset({"sre"}),
        "api_url": "https://github.test/",
    }
    defaults.update(settings)
    return GitHubTeams(GitHubSettings(**defaults), client, clock=clock or FakeClock())  # type: ignore[arg-type]


async def test_the_admin_team_wins_over_the_viewer_team(client: httpx.AsyncClient) -> None:
    identity = await teams(client).verify(TOKEN)

    assert (identity.login, identity.role, identity.email) == ("octo", "admin", "octo@example.com")
    assert identity.teams == ("omen-admins", "sre")


async def test_teams_are_read_across_pages(client: httpx.AsyncClient, github: FakeGitHub) -> None:
    many = (*(("other", f"team-{n}") for n in range(250)), ("acme", "sre"))
    github.tokens[TOKEN] = GitHubUser("octo", teams=many)

    identity = await teams(client).verify(TOKEN)

    assert identity.role == "viewer"
    assert github.teams_calls == 3


async def test_a_verdict_is_kept_for_the_ttl_then_asked_again(
    client: httpx.AsyncClient, github: FakeGitHub
) -> None:
    clock = FakeClock()
    checker = teams(client, clock, cache_ttl_s=300.0)

    for _ in range(3):
        await checker.verify(TOKEN)
    clock.now += 301
    await checker.verify(TOKEN)

    assert github.user_calls == 2


async def test_concurrent_requests_with_one_token_ask_github_once(
    client: httpx.AsyncClient, github: FakeGitHub
) -> None:
    checker = teams(client)

    identities = await asyncio.gather(*(checker.verify(TOKEN) for _ in range(8)))

    assert {identity.login for identity in identities} == {"octo"}
    assert github.user_calls == 1


async def test_a_refusal_is_cached_briefly(client: httpx.AsyncClient, github: FakeGitHub) -> None:
    clock = FakeClock()
    checker = teams(client, clock)
    stranger = "gho_stranger00000000000000000000000000"

    for _ in range(3):
        with pytest.raises(GitHubRefused, match="does not accept the token") as refused:
            await checker.verify(stranger)
        assert stranger not in str(refused.value)
    clock.now += 31
    with pytest.raises(GitHubRefused):
        await checker.verify(stranger)

    assert github.user_calls == 2


async def test_a_user_in_no_mapped_team_is_forbidden(
    client: httpx.AsyncClient, github: FakeGitHub
) -> None:
    github.tokens[TOKEN] = GitHubUser("octo", teams=(("other-org", "omen-admins"),))

    with pytest.raises(GitHubForbidden, match="octo is in no team of acme"):
        await teams(client).verify(TOKEN)


async def test_a_token_that_cannot_read_teams_is_forbidden_naming_the_scope(
    client: httpx.AsyncClient, github: FakeGitHub
) -> None:
    github.teams_status = 403

    with pytest.raises(GitHubForbidden, match="read:org"):
        await teams(client).verify(TOKEN)


@pytest.mark.parametrize("failure", ["down", "rate-limited"])
async def test_github_unavailable_is_not_cached(
    client: httpx.AsyncClient, github: FakeGitHub, failure: str
) -> None:
    checker = teams(client)
    if failure == "down":
        github.status = 502
    else:
        github.rate_limited = True

    with pytest.raises(GitHubUnavailable):
        await checker.verify(TOKEN)
    github.status, github.rate_limited = None, False

    assert (await checker.verify(TOKEN)).role == "admin"


async def test_github_unreachable_is_unavailable() -> None:
    async with httpx.AsyncClient() as client:
        checker = teams(client, api_url="http://127.0.0.1:9", http_timeout_s=2.0)
        with pytest.raises(GitHubUnavailable, match="unreachable"):
            await checker.verify(TOKEN)


async def test_a_token_github_never_issued_is_not_sent(
    client: httpx.AsyncClient, github: FakeGitHub
) -> None:
    with pytest.raises(GitHubRefused, match="not a GitHub token"):
        await teams(client).verify("sk-omen-admin-0123456789")

    assert github.user_calls == 0


# --- the audit trail, as `omen logs --audit` prints it ----------------------------------------


def test_an_audit_line_names_who_with_the_role_and_what_changed() -> None:
    drain = AuditRow(
        1,
        0.0,
        "ada@example.com",
        "drain",
        "ollama/gpu-a",
        {"drained": False, "reason": None},
        {"drained": True, "reason": "driver update"},
        "driver update",
        "omen-1",
        "admin",
    )
    budget = AuditRow(
        2,
        60.0,
        "key_0123456789ab",
        "budget",
        "app",
        {"daily": 10.0, "weekly": None},
        {"daily": 12.5, "weekly": None},
        None,
    )
    replay = AuditRow(3, 120.0, "octo", "replay", "r_1", None, {"status": 200}, None, "", "viewer")

    assert format_audit(drain) == (
        "1970-01-01 00:00:00 ada@example.com (admin) drain ollama/gpu-a "
        "drained false→true, reason -→driver update | driver update"
    )
    assert format_audit(budget) == "1970-01-01 00:01:00 key_0123456789ab budget app daily 10.0→12.5"
    assert format_audit(replay) == "1970-01-01 00:02:00 octo (viewer) replay r_1 -→status=200"
