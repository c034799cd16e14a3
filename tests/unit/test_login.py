"""`omen login`: the device authorization grant against a real local issuer over HTTP (pending,
approved, slow_down, expired, denied), GitHub's device flow against a fake GitHub, a token
file only its owner can read and that is never half-written, refresh before expiry, logout,
and the admin callers sending the stored token — which nothing ever prints."""

from __future__ import annotations

import logging
import os
import re
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl

import jwt
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omen.login import (
    GITHUB,
    LoginError,
    StoredLogin,
    TokenFile,
    admin_credentials,
    current_token,
    github_login,
    logout,
    oidc_login,
)
from omen.login.device_flow import Clock
from omen.login.token_file import SignedInAs, default_path
from tests.fakes.server import RunningFake
from tests.oidc_issuer import (
    ADMIN_USER,
    AUDIENCE,
    CLIENT_ID,
    VIEWER_USER,
    IssuerKey,
    OidcIssuer,
    rsa_key,
    running_issuer,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def signing_key() -> IssuerKey:
    return rsa_key("login-key")


@pytest.fixture(scope="module")
def served_issuer(signing_key: IssuerKey) -> Iterator[OidcIssuer]:
    with running_issuer(OidcIssuer(keys=[signing_key])) as issuer:
        yield issuer


@pytest.fixture
def issuer(served_issuer: OidcIssuer, signing_key: IssuerKey) -> OidcIssuer:
    served_issuer.reset([signing_key])
    return served_issuer


@pytest.fixture
def tokens(tmp_path: Path) -> TokenFile:
    return TokenFile(tmp_path / "config" / "omen" / "tokens.json")


class Operator:
    """The person at the terminal: reads what `omen login` prints, and once `after_polls`
    polls were answered does something at the issuer (approve, deny, let it expire). Time is
    fake: no test waits the interval for real."""

    def __init__(self, after_polls: int = 2, act: Callable[[str], None] | None = None) -> None:
        self.lines: list[str] = []
        self.sleeps: list[float] = []
        self.after_polls = after_polls
        self.act = act
        self.elapsed = 0.0

    def say(self, line: str) -> None:
        self.lines.append(line)

    @property
    def user_code(self) -> str:
        found = re.search(r"Code: ([A-Z]{4}-[A-Z]{4})", "\n".join(self.lines))
        assert found, self.lines
        return found.group(1)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.elapsed += seconds
        if len(self.sleeps) == self.after_polls + 1 and self.act is not None:
            self.act(self.user_code)

    @property
    def clock(self) -> Clock:
        return Clock(sleep=self.sleep, monotonic=lambda: self.elapsed, now=time.time)


def sign_in(issuer: OidcIssuer, tokens: TokenFile, operator: Operator) -> StoredLogin:
    return oidc_login(
        issuer.url,
        CLIENT_ID,
        audience=AUDIENCE,
        tokens=tokens,
        say=operator.say,
        clock=operator.clock,
    )


# -- the device flow -------------------------------------------------------------------------


def test_the_sign_in_waits_while_pending_and_stores_the_tokens_once_approved(
    issuer: OidcIssuer, tokens: TokenFile
) -> None:
    operator = Operator(after_polls=3, act=lambda code: issuer.approve(code, VIEWER_USER))
    login = sign_in(issuer, tokens, operator)

    shown = "\n".join(operator.lines)
    assert f"{issuer.url}/device?user_code={operator.user_code}" in shown
    assert "Waiting for approval" in shown
    assert operator.sleeps == [5, 5, 5, 5]  # the issuer's interval, before every poll
    (grant,) = issuer.device_grants.values()
    assert grant.polls == 4 and grant.scope == "openid email profile offline_access"
    assert grant.audience == AUDIENCE and grant.client_id == CLIENT_ID

    assert login.key == issuer.url
    assert login.who == SignedInAs("viewer-1", "ann@example.com", "Ann Viewer", ("omen-viewers",))
    claims = jwt.decode(
        login.access_token,
        issuer.keys[0].public_pem(),
        algorithms=["RS256"],
        audience=AUDIENCE,
        issuer=issuer.url,
    )
    assert claims["groups"] == ["omen-viewers"] and claims["email"] == "ann@example.com"
    assert login.refresh_token and login.token_endpoint == f"{issuer.url}/token"
    assert login.expires_at is not None and login.expires_at - time.time() > 250
    stored = tokens.read()
    assert stored.by_key == {issuer.url: login} and stored.last == issuer.url


def test_slow_down_makes_every_later_poll_five_seconds_slower(
    issuer: OidcIssuer, tokens: TokenFile
) -> None:
    issuer.slow_down_polls = 2
    operator = Operator(after_polls=3, act=issuer.approve)
    sign_in(issuer, tokens, operator)
    assert operator.sleeps == [5, 10, 15, 15]
    slow = [line for line in operator.lines if "less often" in line]
    assert slow == [
        "The issuer asked to be polled less often: every 10 s now.",
        "The issuer asked to be polled less often: every 15 s now.",
    ]


def test_a_code_that_expires_at_the_issuer_ends_the_sign_in_with_one_line(
    issuer: OidcIssuer, tokens: TokenFile
) -> None:
    operator = Operator(after_polls=1, act=issuer.expire)
    with pytest.raises(LoginError) as refused:
        sign_in(issuer, tokens, operator)
    assert str(refused.value) == "the code expired before it was approved; run `omen login` again"
    assert not tokens.path.exists()


def test_the_code_running_out_here_stops_polling(issuer: OidcIssuer, tokens: TokenFile) -> None:
    issuer.device_expires_in = 12  # nobody approves: the third wait passes the expiry
    operator = Operator()
    with pytest.raises(LoginError, match="expired before it was approved"):
        sign_in(issuer, tokens, operator)
    (grant,) = issuer.device_grants.values()
    assert grant.polls == 2 and operator.sleeps == [5, 5, 5]


def test_a_denied_sign_in_says_so(issuer: OidcIssuer, tokens: TokenFile) -> None:
    operator = Operator(after_polls=2, act=issuer.deny)
    with pytest.raises(LoginError) as refused:
        sign_in(issuer, tokens, operator)
    assert str(refused.value) == "the sign-in was denied at the issuer"
    assert tokens.read().by_key == {}


def test_an_issuer_without_the_device_grant_is_named(issuer: OidcIssuer, tokens: TokenFile) -> None:
    issuer.discovery_overrides = {"device_authorization_endpoint": None}
    with pytest.raises(LoginError, match="does not offer the device authorization grant"):
        sign_in(issuer, tokens, Operator())


def test_a_plain_http_issuer_off_this_machine_is_refused(tokens: TokenFile) -> None:
    with pytest.raises(LoginError, match="https"):
        oidc_login("http://login.example.com", CLIENT_ID, tokens=tokens, say=lambda _: None)


def test_without_verification_uri_complete_the_code_is_to_be_typed(
    issuer: OidcIssuer, tokens: TokenFile
) -> None:
    issuer.complete_uri = False
    operator = Operator(after_polls=1, act=issuer.approve)
    sign_in(issuer, tokens, operator)
    assert operator.lines[0] == (
        f"Open {issuer.url}/device in a browser on any device and enter the code."
    )
    assert operator.lines[1] == f"Code: {operator.user_code}"


def test_an_issuer_like_google_gets_its_secret_and_is_sent_the_id_token(
    issuer: OidcIssuer, tokens: TokenFile
) -> None:
    """Google: no offline_access in scopes_supported, a client secret at the token endpoint
    even for a device, and opaque access tokens; its ID token is the JWT the daemon checks."""
    issuer.discovery_overrides = {"scopes_supported": ["openid", "email", "profile"]}
    issuer.opaque_access_tokens = True
    issuer.client_secret = "GOCSPX-not-secret"
    operator = Operator(after_polls=1, act=issuer.approve)
    login = oidc_login(
        issuer.url,
        CLIENT_ID,
        audience=CLIENT_ID,
        client_secret="GOCSPX-not-secret",
        tokens=tokens,
        say=operator.say,
        clock=operator.clock,
    )
    (grant,) = issuer.device_grants.values()
    assert grant.scope == "openid email profile" and grant.audience is None
    assert login.access_token.startswith("ya29.") and login.id_token is not None
    assert login.bearer == login.id_token
    assert current_token(issuer.url, tokens=tokens) == login.id_token
    claims = jwt.decode(login.bearer, issuer.keys[0].public_pem(), algorithms=["RS256"],
                        audience=CLIENT_ID)  # fmt: skip
    assert claims["email"] == login.who.email == "ops@example.com"
    assert login.expires_at is not None and login.expires_at <= claims["exp"]
    assert "GOCSPX" not in repr(login)


# -- the token file --------------------------------------------------------------------------


def test_the_token_file_is_its_owners_alone(issuer: OidcIssuer, tokens: TokenFile) -> None:
    before = os.umask(0o022)
    try:
        sign_in(issuer, tokens, Operator(after_polls=1, act=issuer.approve))
    finally:
        os.umask(before)
    assert stat.S_IMODE(tokens.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(tokens.path.parent.stat().st_mode) == 0o700
    lock = tokens.path.with_name("tokens.json.lock")
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600
    assert sorted(p.name for p in tokens.path.parent.iterdir()) == [
        "tokens.json",
        "tokens.json.lock",
    ]  # no temporary file left behind


def test_the_token_file_lives_in_the_xdg_config_home(tmp_path: Path) -> None:
    assert default_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "omen" / "tokens.json"
    home = Path.home() / ".config" / "omen" / "tokens.json"
    assert default_path({}) == home
    assert default_path({"XDG_CONFIG_HOME": "relative/dir"}) == home  # ignored, as XDG says


def stored(key: str, token: str = "at-1", **fields: Any) -> StoredLogin:
    return StoredLogin(key=key, client_id=CLIENT_ID, access_token=token, **fields)


def test_a_failed_write_leaves_the_old_file_whole(
    tokens: TokenFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    with tokens.editing() as logins:
        logins.put(stored("https://a.example"), last=True)
    before = tokens.path.read_bytes()

    def crash(source: str, target: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"), tokens.editing() as logins:
        logins.put(stored("https://b.example"), last=True)
    assert tokens.path.read_bytes() == before
    assert [p.name for p in tokens.path.parent.iterdir() if p.name.startswith(".tokens-")] == []


def test_a_reader_never_sees_half_a_file(tokens: TokenFile) -> None:
    with tokens.editing() as logins:
        logins.put(stored("https://a.example"))
    big = "x" * 200_000  # a write that takes more than one syscall
    done = threading.Event()
    torn: list[int] = []

    def writer() -> None:
        for round in range(40):
            with tokens.editing() as logins:
                logins.put(stored("https://a.example", token=f"{round}{big}"))
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    while not done.is_set():
        if "https://a.example" not in tokens.read().by_key:
            torn.append(1)
    thread.join()
    assert torn == []


def test_a_file_that_is_not_a_token_file_reads_as_no_sign_in(tokens: TokenFile) -> None:
    tokens.path.parent.mkdir(parents=True)
    tokens.path.write_text("{not json")
    assert tokens.read().by_key == {}
    assert current_token("https://a.example", tokens=tokens) is None


# -- refresh ---------------------------------------------------------------------------------


def test_an_access_token_about_to_expire_is_refreshed_and_the_file_rewritten(
    issuer: OidcIssuer, tokens: TokenFile
) -> None:
    issuer.access_token_ttl = 30  # inside the 60 s margin from the start
    first = sign_in(issuer, tokens, Operator(after_polls=1, act=issuer.approve))
    issuer.access_token_ttl = 300

    token = current_token(issuer.url, tokens=tokens)
    assert issuer.refresh_grants == 1
    assert token is not None and token != first.access_token
    now = tokens.read().by_key[issuer.url]
    assert now.access_token == token
    assert now.refresh_token != first.refresh_token  # the issuer rotated it; the new one kept
    assert now.who == first.who
    assert stat.S_IMODE(tokens.path.stat().st_mode) == 0o600

    assert current_token(issuer.url, tokens=tokens) == token  # fresh now: no second grant
    assert issuer.refresh_grants == 1
    refresh = [form for form in issuer.token_requests if form["grant_type"] == "refresh_token"]
    assert refresh == [
        {
            "grant_type": "refresh_token",
            "refresh_token": first.refresh_token,
            "client_id": CLIENT_ID,
        }
    ]


def test_a_token_far_from_expiry_is_used_as_it_is(issuer: OidcIssuer, tokens: TokenFile) -> None:
    login = sign_in(issuer, tokens, Operator(after_polls=1, act=issuer.approve))
    assert current_token(issuer.url, tokens=tokens) == login.access_token
    assert issuer.refresh_grants == 0


def test_a_refused_refresh_gives_the_old_token_until_it_expires_then_none(
    issuer: OidcIssuer, tokens: TokenFile
) -> None:
    issuer.access_token_ttl = 30
    login = sign_in(issuer, tokens, Operator(after_polls=1, act=issuer.approve))
    issuer.refresh_tokens.clear()  # revoked at the issuer
    assert current_token(issuer.url, tokens=tokens) == login.access_token
    later = time.time() + 31
    assert current_token(issuer.url, tokens=tokens, now=lambda: later) is None
    assert issuer.refresh_grants == 0


def test_two_callers_refreshing_at_once_redeem_the_refresh_token_once(
    issuer: OidcIssuer, tokens: TokenFile
) -> None:
    issuer.access_token_ttl = 30
    sign_in(issuer, tokens, Operator(after_polls=1, act=issuer.approve))
    issuer.access_token_ttl = 300
    got: list[str | None] = []
    callers = [
        threading.Thread(target=lambda: got.append(current_token(issuer.url, tokens=tokens)))
        for _ in range(4)
    ]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert issuer.refresh_grants == 1  # the others found it refreshed once they had the lock
    assert len(set(got)) == 1 and got[0] is not None


def test_nothing_prints_or_logs_a_token(
    issuer: OidcIssuer,
    tokens: TokenFile,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    issuer.access_token_ttl = 30
    operator = Operator(after_polls=1, act=issuer.approve)
    first = sign_in(issuer, tokens, operator)
    second = current_token(issuer.url, tokens=tokens)
    assert second is not None
    refreshed = tokens.read().by_key[issuer.url]
    secrets = [first.access_token, first.refresh_token, second, refreshed.refresh_token]
    out, err = capfd.readouterr()
    shown = [out, err, caplog.text, "\n".join(operator.lines), repr(first), repr(refreshed)]
    for secret in secrets:
        assert secret and not any(secret in text for text in shown)


# -- logout ----------------------------------------------------------------------------------


def test_logout_forgets_the_sign_in_and_says_who(
    issuer: OidcIssuer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tokens = TokenFile(tmp_path / "omen" / "tokens.json")
    sign_in(issuer, tokens, Operator(after_polls=1, act=lambda c: issuer.approve(c, ADMIN_USER)))
    with tokens.editing() as logins:
        logins.put(stored(GITHUB, who=SignedInAs(subject="octocat")))

    removed = logout(issuer.url + "/", tokens=tokens)  # however the slash is written
    assert [login.who.label for login in removed] == ["ops@example.com"]
    assert list(tokens.read().by_key) == [GITHUB]
    assert current_token(issuer.url, tokens=tokens) is None

    done = omen("logout", env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "Signed out octocat (GitHub); GitHub tokens are withdrawn in GitHub's settings "
        "(Applications).\n"
    )
    assert tokens.read().by_key == {}
    again = omen("logout", env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert again.stdout == "Not signed in: nothing to sign out of.\n"


def test_logout_revokes_the_refresh_token_at_the_issuer(issuer: OidcIssuer, tmp_path: Path) -> None:
    tokens = TokenFile(tmp_path / "omen" / "tokens.json")
    login = sign_in(
        issuer, tokens, Operator(after_polls=1, act=lambda c: issuer.approve(c, ADMIN_USER))
    )
    assert login.refresh_token in issuer.refresh_tokens

    done = omen("logout", env={"XDG_CONFIG_HOME": str(tmp_path)})

    assert done.returncode == 0, done.stderr
    assert done.stdout == f"Signed out ops@example.com ({issuer.url}); revoked at the issuer.\n"
    assert issuer.revocations == ["refresh_token", "access_token"]
    assert login.refresh_token not in issuer.refresh_tokens  # redeemable no more


def test_logout_says_so_when_the_issuer_cannot_revoke(issuer: OidcIssuer, tmp_path: Path) -> None:
    issuer.discovery_overrides = {"revocation_endpoint": None}
    tokens = TokenFile(tmp_path / "omen" / "tokens.json")
    sign_in(issuer, tokens, Operator(after_polls=1, act=lambda c: issuer.approve(c, ADMIN_USER)))

    done = omen("logout", env={"XDG_CONFIG_HOME": str(tmp_path)})

    assert done.returncode == 0, done.stderr
    assert "the issuer offers no token revocation: its access token stays valid until" in (
        done.stdout
    )
    assert tokens.read().by_key == {}  # forgotten here whatever the issuer says


def omen(
    *args: str, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "omen", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": "/nonexistent"} | env,
    )


# -- GitHub ----------------------------------------------------------------------------------


class FakeGitHub:
    """github.com's device flow and api.github.com's /user, as their docs describe them: the
    token endpoint answers 200 with an `error` until the user approves."""

    def __init__(self, interval: int = 5) -> None:
        self.interval = interval
        self.approved = False
        self.polls = 0
        self.accepts: list[str] = []
        self.forms: list[dict[str, str]] = []
        self.seen_token: str | None = None

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/login/device/code", self._device_code, methods=["POST"]),
                Route("/login/oauth/access_token", self._access_token, methods=["POST"]),
                Route("/user", self._user),
            ]
        )

    async def _form(self, request: Request) -> dict[str, str]:
        self.accepts.append(request.headers.get("accept", ""))
        form = dict(parse_qsl((await request.body()).decode()))
        self.forms.append(form)
        return form

    async def _device_code(self, request: Request) -> Response:
        form = await self._form(request)
        assert form == {"client_id": "Iv1.omen", "scope": "read:org"}
        return JSONResponse(
            {
                "device_code": "dc-123",
                "user_code": "WDJB-MJHT",
                "verification_uri": "https://github.com/login/device",
                "expires_in": 899,
                "interval": self.interval,
            }
        )

    async def _access_token(self, request: Request) -> Response:
        form = await self._form(request)
        self.polls += 1
        if not self.approved:
            return JSONResponse({"error": "authorization_pending"})
        assert form["device_code"] == "dc-123"
        return JSONResponse({"access_token": "gho_16C7e42F292c6912E7710c8", "token_type": "bearer",
                             "scope": "read:org"})  # fmt: skip

    async def _user(self, request: Request) -> Response:
        self.seen_token = request.headers.get("authorization")
        return JSONResponse({"login": "octocat", "id": 1, "name": "The Octocat", "email": None})


def test_github_device_flow_stores_the_token_under_github(tokens: TokenFile) -> None:
    github = FakeGitHub()
    with RunningFake(github.app()).start() as served:
        operator = Operator(after_polls=2, act=lambda code: setattr(github, "approved", True))
        login = github_login(
            "Iv1.omen",
            base_url=served.url,
            api_url=served.url,
            tokens=tokens,
            say=operator.say,
            clock=operator.clock,
        )
    assert operator.user_code == "WDJB-MJHT"
    assert "https://github.com/login/device" in operator.lines[0]
    assert github.polls == 3 and set(github.accepts) == {"application/json"}
    assert github.seen_token == "Bearer gho_16C7e42F292c6912E7710c8"
    assert login.key == GITHUB and login.who.label == "octocat"
    assert login.refresh_token is None and login.expires_at is None
    assert tokens.read().by_key[GITHUB].access_token == "gho_16C7e42F292c6912E7710c8"
    assert current_token(GITHUB, tokens=tokens) == "gho_16C7e42F292c6912E7710c8"


def test_omen_login_with_only_github_configured_uses_github(tmp_path: Path) -> None:
    github = FakeGitHub(interval=1)
    (tmp_path / "omen.toml").write_text(
        '[server]\nbind = "127.0.0.1:1"\n\n[auth.github]\norg = "example"\n'
        'client_id = "Iv1.omen"\nadmin_teams = ["omen-admins"]\n'
    )
    with RunningFake(github.app()).start() as served:
        env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
               "OMEN_GITHUB_URL": served.url, "OMEN_GITHUB_API_URL": served.url}  # fmt: skip
        with subprocess.Popen(
            [sys.executable, "-m", "omen", "login", "--config", str(tmp_path / "omen.toml")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
        ) as login:  # fmt: skip
            assert login.stdout is not None
            lines = [login.stdout.readline() for _ in range(3)]
            assert lines[:2] == [
                "Open https://github.com/login/device in a browser on any device and enter "
                "the code.\n",
                "Code: WDJB-MJHT\n",
            ]
            github.approved = True
            rest, errors = login.communicate(timeout=30)
    assert login.returncode == 0, errors
    assert rest.splitlines() == [
        "Signed in with GitHub as octocat.",
        "No daemon answered at http://127.0.0.1:1 to say which role you have (try --url).",
    ]
    stored = TokenFile(tmp_path / ".config" / "omen" / "tokens.json").read()
    assert stored.by_key[GITHUB].access_token == "gho_16C7e42F292c6912E7710c8"


# -- what admin callers send -----------------------------------------------------------------


def config(api_keys: list[Any] | None = None, **auth: Any) -> Any:
    """A loaded config's shape, as far as admin_credentials reads it."""
    return SimpleNamespace(
        config=SimpleNamespace(auth=SimpleNamespace(api_keys=api_keys or [], **auth))
    )


def test_an_admin_key_wins_over_a_sign_in(
    tokens: TokenFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    with tokens.editing() as logins:
        logins.put(stored("https://a.example", token="signed-in"), last=True)
    monkeypatch.delenv("OMEN_ADMIN_KEY", raising=False)
    key = SimpleNamespace(scope="admin", key=SecretStr("sk-admin"))
    assert admin_credentials(config([key]), tokens=tokens) == "sk-admin"
    monkeypatch.setenv("OMEN_ADMIN_KEY", "sk-env")
    assert admin_credentials(config(), tokens=tokens) == "sk-env"
    monkeypatch.delenv("OMEN_ADMIN_KEY")
    assert admin_credentials(config(), tokens=tokens) == "signed-in"


def test_the_sign_in_at_the_configured_issuer_is_the_one_sent(
    tokens: TokenFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OMEN_ADMIN_KEY", raising=False)
    with tokens.editing() as logins:
        logins.put(stored("https://a.example/", token="at-a"))
        logins.put(stored("https://b.example", token="at-b"))
        logins.put(stored(GITHUB, token="gho-c"), last=True)
    oidc = SimpleNamespace(issuer="https://a.example")
    assert admin_credentials(config(oidc=oidc), tokens=tokens) == "at-a"
    other = SimpleNamespace(issuer="https://c.example")
    assert admin_credentials(config(oidc=other), tokens=tokens) is None  # not ours to send
    github = SimpleNamespace(org="example", client_id="Iv1.omen")
    assert admin_credentials(config(oidc=other, github=github), tokens=tokens) == "gho-c"
    assert admin_credentials(config(), tokens=tokens) == "gho-c"  # no [auth.oidc]: the last


def test_omen_replay_sends_the_stored_token_as_its_bearer(tmp_path: Path) -> None:
    seen: list[str | None] = []

    async def replay(request: Request) -> Response:
        seen.append(request.headers.get("authorization"))
        return JSONResponse({"error": {"message": "no request req_x"}}, status_code=404)

    tokens = TokenFile(tmp_path / "omen" / "tokens.json")
    with tokens.editing() as logins:
        logins.put(stored("https://a.example", token="at-signed-in"), last=True)
    app = Starlette(routes=[Route("/admin/requests/{id}/replay", replay, methods=["POST"])])
    (tmp_path / "omen.toml").write_text('[server]\nbind = "127.0.0.1:1"\n')
    with RunningFake(app).start() as daemon:
        done = omen(
            "replay", "req_x", "--url", daemon.url, "--config", str(tmp_path / "omen.toml"),
            env={"XDG_CONFIG_HOME": str(tmp_path)},
        )  # fmt: skip
    assert done.returncode == 1 and "no request req_x" in done.stderr
    assert seen == ["Bearer at-signed-in"]
    assert "at-signed-in" not in done.stdout + done.stderr


def test_omen_login_without_an_issuer_says_what_to_pass(tmp_path: Path) -> None:
    done = omen("login", env={"XDG_CONFIG_HOME": str(tmp_path)}, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == (
        "omen login: no issuer: pass --issuer URL or set issuer in [auth.oidc]\n"
    )
    assert not (tmp_path / "omen").exists()


def test_omen_login_over_ssh_prints_the_code_waits_and_names_the_role(
    issuer: OidcIssuer, tmp_path: Path
) -> None:
    """The real command: nothing opens a browser; the operator reads the code off the
    terminal, approves elsewhere, and is told who they are to the daemon."""
    issuer.device_interval = 1

    async def whoami(request: Request) -> Response:
        token = request.headers["authorization"].removeprefix("Bearer ")
        claims = jwt.decode(token, options={"verify_signature": False})
        role = "viewer" if "omen-viewers" in claims["groups"] else "admin"
        return JSONResponse(
            {"subject": claims["sub"], "email": claims["email"], "role": role, "via": "oidc"}
        )

    daemon = RunningFake(Starlette(routes=[Route("/admin/whoami", whoami)])).start()
    command = [sys.executable, "-m", "omen", "login", "--issuer", issuer.url,
               "--client-id", CLIENT_ID, "--url", daemon.url]  # fmt: skip
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "XDG_CONFIG_HOME": str(tmp_path),
           "DISPLAY": ":0", "BROWSER": "false"}  # fmt: skip
    with (
        daemon,
        subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        ) as login,
    ):
        assert login.stdout is not None
        lines = [login.stdout.readline() for _ in range(3)]
        code = re.search(r"^Code: ([A-Z]{4}-[A-Z]{4})", lines[1])
        assert code, lines
        issuer.approve(code.group(1), VIEWER_USER)
        rest, errors = login.communicate(timeout=30)
    assert login.returncode == 0, errors
    assert lines[0] == (
        f"Open {issuer.url}/device?user_code={code.group(1)} in a browser on any device "
        "and approve.\n"
    )
    assert lines[2].startswith("Waiting for approval (the code expires in 10 min")
    assert rest.splitlines() == [
        f"Signed in at {issuer.url} as ann@example.com (groups: omen-viewers).",
        f"The daemon at {daemon.url} knows you as ann@example.com: viewer (may look, not act).",
    ]
    assert errors == ""
    file = tmp_path / "omen" / "tokens.json"
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert TokenFile(file).read().by_key[issuer.url].who.email == "ann@example.com"
