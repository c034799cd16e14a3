"""Operators sign in to the admin API as themselves: OIDC access tokens from a real local issuer
and GitHub tokens checked against a fake GitHub API, both over real sockets, beside the keys;
`omen serve` as a process on a real SQLite file, and the audit trail naming the person."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from omen_store import AuditRow, StoreReader
from tests.fakes import FakeState, RunningFake, make_ollama_app, refusing_url, run_fake
from tests.fakes.github_api import FakeGitHub, GitHubUser
from tests.integration.conftest import ADMIN_KEY, APP_KEY, Omen, Upstreams, start_omen
from tests.oidc_issuer import AUDIENCE, OidcIssuer, rsa_key, running_issuer

GITHUB_ADMIN = "gho_admin0000000000000000000000000000"
GITHUB_VIEWER = "gho_viewer000000000000000000000000000"
GITHUB_OUTSIDER = "gho_outsider0000000000000000000000000"
GITHUB_UNKNOWN = "gho_revoked0000000000000000000000000"


@dataclass
class SignedIn:
    omen: Omen
    issuer: OidcIssuer
    github: FakeGitHub
    endpoint: str  # the Ollama endpoint's name, for drains


def sign_in_config(issuer_url: str, github_url: str, ollama_url: str, *, keys: bool = True) -> str:
    auth = '[auth]\napi_keys = [{ key = "env:TEST_ADMIN_KEY", scope = "admin" }]\n' if keys else ""
    containers = '[containers.app]\napi_key = "env:TEST_APP_KEY"\n' if keys else ""
    return f"""
{auth}
[auth.oidc]
issuer = "{issuer_url}"
client_id = "omen-console"
audience = "{AUDIENCE}"
admin_groups = ["omen-admins"]
viewer_groups = ["omen-viewers"]
timeout = "2s"

[auth.github]
org = "acme"
admin_teams = ["omen-admins"]
viewer_teams = ["sre"]
api_url = "{github_url}"

[providers.ollama]
endpoints = ["{ollama_url}"]
models = ["llama3.1:8b"]
health_check_interval = "1h"

{containers}
"""


@pytest.fixture(scope="module")
def signed_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignedIn]:
    github = FakeGitHub(
        tokens={
            GITHUB_ADMIN: GitHubUser(
                "octo-admin",
                "octo@example.com",
                "Octo Admin",
                (("acme", "omen-admins"), ("other-org", "sre")),
            ),
            GITHUB_VIEWER: GitHubUser("octo-viewer", None, None, (("ACME", "sre"),)),
            GITHUB_OUTSIDER: GitHubUser("octo-outsider", teams=(("other-org", "omen-admins"),)),
        }
    )
    ollama = FakeState(models=["llama3.1:8b"], loaded=["llama3.1:8b"])
    issuer = OidcIssuer(keys=[rsa_key("key-1")])
    with (
        running_issuer(issuer),
        run_fake(github.app()) as github_server,
        run_fake(make_ollama_app(ollama)) as ollama_server,
    ):
        config = sign_in_config(issuer.url, github_server.url, ollama_server.url)
        omen = start_omen(tmp_path_factory.mktemp("signed-in"), config)
        try:
            yield SignedIn(omen, issuer, github, f"127.0.0.1:{ollama_server.port}")
        finally:
            omen.stop()


def call(
    omen: Omen, method: str, path: str, token: str | None, body: object = None
) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.request(method, f"{omen.url}{path}", json=body, headers=headers, timeout=10)


def audit_rows(database: Path, wanted: Callable[[AuditRow], bool]) -> list[AuditRow]:
    """The audit rows `wanted` picks, newest first, once the writer has committed one."""
    deadline = time.monotonic() + 5
    while True:
        reader = StoreReader(database)
        try:
            rows = [row for row in reader.audit_rows(limit=1000) if wanted(row)]
        finally:
            reader.close()
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


# --- OIDC: roles ------------------------------------------------------------------------------


def test_an_admin_token_drains_and_the_audit_row_names_the_person(signed_in: SignedIn) -> None:
    omen, issuer = signed_in.omen, signed_in.issuer
    token = issuer.mint(email="ada@example.com", groups=["omen-admins"])
    target = {"provider": "ollama", "endpoint": signed_in.endpoint, "reason": "oidc drill"}

    assert call(omen, "GET", "/admin/endpoints", token).status_code == 200
    drained = call(omen, "POST", "/admin/endpoints/drain", token, target)
    undrained = call(omen, "POST", "/admin/endpoints/undrain", token, target)

    assert (drained.status_code, drained.json()["drained"]) == (200, True)
    assert undrained.status_code == 200
    (row,) = audit_rows(omen.database, lambda r: r.detail == "oidc drill" and r.action == "drain")
    assert (row.actor, row.role, row.target) == (
        "ada@example.com",
        "admin",
        f"ollama/{target['endpoint']}",
    )
    listing = omen.omen("logs", "--audit", "--json").stdout
    rows = [json.loads(line) for line in listing.splitlines()]
    assert {"actor": "ada@example.com", "role": "admin", "action": "drain"}.items() <= next(
        r for r in rows if r["detail"] == "oidc drill"
    ).items()
    text = omen.omen("logs", "--audit").stdout
    assert f"ada@example.com (admin) drain ollama/{signed_in.endpoint} drained false→true" in text
    assert token not in listing and token not in text


def test_a_token_without_an_email_is_audited_by_its_subject(signed_in: SignedIn) -> None:
    omen = signed_in.omen
    token = signed_in.issuer.mint(sub="svc-7f3a", email=None)

    response = call(omen, "PUT", "/admin/containers/app/budget", token, {"daily": "12.50"})

    assert response.status_code == 200
    (raised,) = audit_rows(omen.database, lambda r: r.action == "budget")
    assert (raised.actor, raised.role) == ("svc-7f3a", "admin")
    assert raised.after == {"daily": 12.5, "weekly": None, "monthly": None}


def test_a_viewer_token_reads_but_may_not_act(signed_in: SignedIn) -> None:
    omen = signed_in.omen
    token = signed_in.issuer.mint(email="ann@example.com", groups=["omen-viewers"])
    target = {"provider": "ollama", "endpoint": signed_in.endpoint}

    assert call(omen, "GET", "/admin/endpoints", token).status_code == 200
    assert call(omen, "GET", "/admin/containers", token).status_code == 200
    refused = [
        call(omen, "POST", "/admin/endpoints/drain", token, target),
        call(omen, "PUT", "/admin/containers/app/budget", token, {"daily": 1}),
        call(omen, "POST", "/admin/requests/r_nothing/replay", token, {}),
    ]

    for response in refused:
        assert response.status_code == 403
        error = response.json()["error"]
        assert (error["code"], error["type"]) == ("admin_required", "permission_error")
        assert "ann@example.com" in error["message"] and "viewer" in error["message"]
    reader = StoreReader(omen.database)
    assert not [row for row in reader.audit_rows(limit=1000) if row.actor == "ann@example.com"]
    reader.close()


def test_a_token_in_no_mapped_group_is_forbidden(signed_in: SignedIn) -> None:
    token = signed_in.issuer.mint(groups=["marketing"])

    response = call(signed_in.omen, "GET", "/admin/endpoints", token)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "no_operator_role"
    assert "no group mapped to a role" in response.json()["error"]["message"]


# --- OIDC: refusals ---------------------------------------------------------------------------


def _wrong_audience(issuer: OidcIssuer) -> str:
    return issuer.mint(aud="grafana")


def _expired(issuer: OidcIssuer) -> str:
    now = int(time.time())
    return issuer.mint(iat=now - 7200, exp=now - 3600)


def _not_yet_valid(issuer: OidcIssuer) -> str:
    return issuer.mint(nbf=int(time.time()) + 3600)


def _unknown_key(issuer: OidcIssuer) -> str:
    return issuer.mint(key=rsa_key("never-published"))


def _wrong_signature(issuer: OidcIssuer) -> str:
    return issuer.mint(key=rsa_key("impostor"), kid=issuer.keys[0].kid)


def _another_issuer(issuer: OidcIssuer) -> str:
    return issuer.mint(iss="https://login.example.org")


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        (_wrong_audience, "wrong audience"),
        (_expired, "token expired"),
        (_not_yet_valid, "token not yet valid"),
        (_unknown_key, "unknown signing key"),
        (_wrong_signature, "bad signature"),
        (_another_issuer, "wrong issuer"),
    ],
    ids=["audience", "expired", "not-yet-valid", "unknown-key", "signature", "issuer"],
)
def test_a_bad_token_is_refused_with_its_reason(
    signed_in: SignedIn, forge: Callable[[OidcIssuer], str], reason: str
) -> None:
    token = forge(signed_in.issuer)

    response = call(signed_in.omen, "GET", "/admin/endpoints", token)

    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "invalid_token"
    assert error["message"] == f"access token refused: {reason}"
    assert token not in response.text
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_no_credential_at_all_is_refused(signed_in: SignedIn) -> None:
    response = call(signed_in.omen, "GET", "/admin/endpoints", None)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"


# --- keys beside sign-in ----------------------------------------------------------------------


def test_keys_keep_working_beside_sign_in(signed_in: SignedIn) -> None:
    omen = signed_in.omen
    target = {"provider": "ollama", "endpoint": signed_in.endpoint, "reason": "key drill"}
    admin_token = signed_in.issuer.mint()

    drained = call(omen, "POST", "/admin/endpoints/drain", ADMIN_KEY, target)
    call(omen, "POST", "/admin/endpoints/undrain", ADMIN_KEY, target)
    container_key = call(omen, "GET", "/admin/endpoints", APP_KEY)
    chat = {"model": "llama3.1:8b", "messages": [{"role": "user", "content": "hi"}]}
    served = call(omen, "POST", "/v1/chat/completions", APP_KEY, chat)
    token_on_v1 = call(omen, "POST", "/v1/chat/completions", admin_token, chat)

    assert drained.status_code == 200
    (row,) = audit_rows(omen.database, lambda r: r.detail == "key drill" and r.action == "drain")
    assert row.actor.startswith("key_") and row.role == ""
    assert (container_key.status_code, container_key.json()["error"]["code"]) == (
        403,
        "admin_required",
    )
    assert served.status_code == 200
    # Sign-in is for operators on /admin; the proxied routes know only keys.
    assert token_on_v1.status_code == 401


def test_whoami_says_who_the_caller_is_taken_for(signed_in: SignedIn) -> None:
    omen = signed_in.omen
    token = signed_in.issuer.mint(sub="operator-9", email="eve@example.com", name="Eve")

    by_key = call(omen, "GET", "/admin/whoami", ADMIN_KEY).json()
    by_oidc = call(omen, "GET", "/admin/whoami", token).json()
    by_github = call(omen, "GET", "/admin/whoami", GITHUB_VIEWER).json()

    assert by_key["via"] == "key" and by_key["role"] == "admin"
    assert by_key["key_id"].startswith("key_") and by_key["subject"] == by_key["key_id"]
    assert by_oidc == {
        "subject": "operator-9",
        "email": "eve@example.com",
        "name": "Eve",
        "role": "admin",
        "via": "oidc",
        "key_id": None,
    }
    assert by_github == {
        "subject": "octo-viewer",
        "email": None,
        "name": None,
        "role": "viewer",
        "via": "github",
        "key_id": None,
    }


# --- GitHub -----------------------------------------------------------------------------------


def test_a_github_admin_team_member_acts_as_admin(signed_in: SignedIn) -> None:
    omen = signed_in.omen
    target = {"provider": "ollama", "endpoint": signed_in.endpoint, "reason": "github drill"}

    whoami = call(omen, "GET", "/admin/whoami", GITHUB_ADMIN).json()
    drained = call(omen, "POST", "/admin/endpoints/drain", GITHUB_ADMIN, target)
    call(omen, "POST", "/admin/endpoints/undrain", GITHUB_ADMIN, target)

    assert (whoami["role"], whoami["email"], whoami["name"]) == (
        "admin",
        "octo@example.com",
        "Octo Admin",
    )
    assert drained.status_code == 200
    (row,) = audit_rows(omen.database, lambda r: r.detail == "github drill" and r.action == "drain")
    assert (row.actor, row.role) == ("octo-admin", "admin")


def test_a_github_viewer_team_member_may_only_read(signed_in: SignedIn) -> None:
    omen = signed_in.omen
    target = {"provider": "ollama", "endpoint": signed_in.endpoint}

    assert call(omen, "GET", "/admin/endpoints", GITHUB_VIEWER).status_code == 200
    refused = call(omen, "POST", "/admin/endpoints/drain", GITHUB_VIEWER, target)

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "admin_required"


def test_a_github_user_in_no_team_of_the_org_is_forbidden(signed_in: SignedIn) -> None:
    response = call(signed_in.omen, "GET", "/admin/endpoints", GITHUB_OUTSIDER)

    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "no_operator_role"
    assert "octo-outsider is in no team of acme" in error["message"]


def test_a_token_github_refuses_is_401(signed_in: SignedIn) -> None:
    response = call(signed_in.omen, "GET", "/admin/endpoints", GITHUB_UNKNOWN)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"
    assert GITHUB_UNKNOWN not in response.text


def test_a_github_verdict_is_cached_and_other_tokens_never_reach_github(
    signed_in: SignedIn,
) -> None:
    omen, github = signed_in.omen, signed_in.github
    token = "github_pat_cache0000000000000000000000000"
    github.tokens[token] = GitHubUser("octo-cache", teams=(("acme", "sre"),))
    before = github.user_calls

    answers = [call(omen, "GET", "/admin/endpoints", token).status_code for _ in range(5)]
    typo = call(omen, "GET", "/admin/endpoints", "sk-omen-admin-typo")

    assert answers == [200] * 5
    assert github.user_calls - before == 1
    assert typo.status_code == 401 and github.user_calls - before == 1
    assert not any("sk-omen" in seen for seen in github.seen_authorization)


# --- the issuer down, and keyless loopback ----------------------------------------------------


def test_an_issuer_that_is_down_at_first_use_is_a_503_and_keys_still_work(
    omen_factory: Callable[..., Omen], upstreams: Upstreams
) -> None:
    issuer = OidcIssuer(keys=[rsa_key("key-1")])
    issuer.url = refusing_url()
    omen = omen_factory(sign_in_config(issuer.url, refusing_url(), upstreams.ollama_server.url))

    response = call(omen, "GET", "/admin/endpoints", issuer.mint())
    github = call(omen, "GET", "/admin/endpoints", GITHUB_ADMIN)

    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "identity_provider_unavailable"
    assert "OIDC issuer" in error["message"]
    assert response.headers["retry-after"]
    assert github.status_code == 503 and "GitHub" in github.json()["error"]["message"]
    assert call(omen, "GET", "/admin/endpoints", ADMIN_KEY).status_code == 200
    assert "operators cannot sign in until it answers" in omen.log.read_text()


def test_a_keyless_loopback_daemon_with_sign_in_wants_a_sign_in_on_admin_routes(
    omen_factory: Callable[..., Omen], upstreams: Upstreams
) -> None:
    issuer = OidcIssuer(keys=[rsa_key("key-1")])
    with running_issuer(issuer), RunningFake(FakeGitHub().app()).start() as github:
        omen = omen_factory(
            sign_in_config(issuer.url, github.url, upstreams.ollama_server.url, keys=False)
        )
        anonymous = call(omen, "GET", "/admin/endpoints", None)
        signed = call(omen, "GET", "/admin/whoami", issuer.mint())
        chat = {"model": "llama3.1:8b", "messages": [{"role": "user", "content": "hi"}]}
        served = call(omen, "POST", "/v1/chat/completions", None, chat)

    assert anonymous.status_code == 401
    assert (signed.status_code, signed.json()["via"]) == (200, "oidc")
    assert served.status_code == 200  # the proxied routes stay keyless on loopback


def test_a_reload_applies_new_group_mappings_at_once(
    omen_factory: Callable[..., Omen], upstreams: Upstreams
) -> None:
    issuer = OidcIssuer(keys=[rsa_key("key-1")])
    with running_issuer(issuer):
        omen = omen_factory(sign_in_config(issuer.url, refusing_url(), upstreams.ollama_server.url))
        token = issuer.mint(groups=["omen-admins"])
        before = call(omen, "GET", "/admin/whoami", token).json()["role"]
        omen.config.write_text(
            omen.config.read_text()
            .replace('admin_groups = ["omen-admins"]', 'admin_groups = ["root"]')
            .replace('viewer_groups = ["omen-viewers"]', 'viewer_groups = ["omen-admins"]')
        )
        omen.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        after = before
        while after == before and time.monotonic() < deadline:
            time.sleep(0.1)
            after = call(omen, "GET", "/admin/whoami", token).json()["role"]

    assert (before, after) == ("admin", "viewer")
