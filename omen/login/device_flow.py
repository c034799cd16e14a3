"""The device authorization grant (RFC 8628) as `omen login` runs it, against an OIDC issuer
(found by its discovery document) or GitHub, and the refresh token grant that keeps an access
token fresh.

It never opens a browser: the operator may be on the far side of SSH, so it prints where to
go and the code, then polls as slowly as the issuer asks. What it decodes from a token is for
display; the daemon verifies (`omen.oidc`). Nothing it prints or raises contains a token.
"""

from __future__ import annotations

import contextlib
import ipaddress
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt

from omen.login.token_file import GITHUB, SignedInAs, StoredLogin, TokenFile
from omen.oidc import groups_of

SCOPES = "openid email profile offline_access"
GITHUB_SCOPES = "read:org"  # the daemon checks org and team membership with the token
GITHUB_URL = "https://github.com"  # env OMEN_GITHUB_URL (tests, GitHub Enterprise)
GITHUB_API_URL = "https://api.github.com"  # env OMEN_GITHUB_API_URL
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SLOW_DOWN_STEP_S = 5.0  # RFC 8628 §3.5: each slow_down adds 5 s to the polling interval
DEFAULT_INTERVAL_S = 5.0
_NETWORK_TRIES = 3  # consecutive failed polls before giving up
_HTTP_TIMEOUT_S = 10.0
_JSON = {"accept": "application/json"}

Say = Callable[[str], None]


def say_line(line: str) -> None:
    print(line, flush=True)


class LoginError(Exception):
    """Signing in failed: one line for the operator, never containing a token."""


@dataclass(frozen=True, slots=True)
class DeviceCode:
    """The issuer's answer that starts a device flow (RFC 8628 §3.2)."""

    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: float
    interval: float


@dataclass(frozen=True, slots=True)
class Endpoints:
    issuer: str  # as the discovery document spells it (the key the tokens are stored under)
    device_authorization: str
    token: str
    scopes: tuple[str, ...] | None = None  # scopes_supported, when the issuer lists them


@dataclass(frozen=True, slots=True)
class Clock:
    """How a flow waits and tells the time; tests pass ones that do not sleep."""

    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    now: Callable[[], float] = time.time


# -- the flows -------------------------------------------------------------------------------


def oidc_login(
    issuer: str,
    client_id: str,
    *,
    audience: str | None = None,
    scopes: Sequence[str] = (),
    client_secret: str | None = None,
    groups_claim: str = "groups",
    tokens: TokenFile | None = None,
    http: httpx.Client | None = None,
    say: Say = say_line,
    clock: Clock = Clock(),
) -> StoredLogin:
    """Sign in at an OIDC issuer with the device authorization grant and store the tokens.
    `audience` is sent when it is not the client id (Auth0 picks the API by it; to others it
    is harmless); `scopes` are asked for besides SCOPES, and offline_access only of an
    issuer that lists it (Google refuses it, and hands out refresh tokens anyway)."""
    with _client(http) as client:
        endpoints = discover(client, issuer)
        wanted = [*SCOPES.split(), *(s for s in scopes if s not in SCOPES.split())]
        if endpoints.scopes is not None and "offline_access" not in endpoints.scopes:
            wanted.remove("offline_access")
        form = {"client_id": client_id, "scope": " ".join(wanted)}
        if audience and audience != client_id:
            form["audience"] = audience
        code = request_device_code(client, endpoints.device_authorization, form)
        show_code(code, say)
        poll = {"grant_type": DEVICE_GRANT, "device_code": code.device_code, "client_id": client_id}
        if client_secret:
            poll["client_secret"] = client_secret
        answer = wait_for_tokens(client, endpoints.token, poll, code, say=say, clock=clock)
    login = _stored(
        endpoints.issuer,
        client_id,
        answer,
        token_endpoint=endpoints.token,
        audience=audience,
        now=clock.now(),
        who=identity(answer, groups_claim),
        client_secret=client_secret,
    )
    _save(tokens, login)
    return login


def github_login(
    client_id: str,
    *,
    base_url: str = GITHUB_URL,
    api_url: str = GITHUB_API_URL,
    tokens: TokenFile | None = None,
    http: httpx.Client | None = None,
    say: Say = say_line,
    clock: Clock = Clock(),
) -> StoredLogin:
    """Sign in with GitHub's device flow; the token is opaque, so who it belongs to is asked
    of GitHub's API (for display; the daemon checks org and team membership itself)."""
    base = base_url.rstrip("/")
    if not _trusted(base):
        raise LoginError(f"GitHub URL {base} must be https:// (http:// only on loopback)")
    with _client(http) as client:
        form = {"client_id": client_id, "scope": GITHUB_SCOPES}
        code = request_device_code(client, f"{base}/login/device/code", form)
        show_code(code, say)
        poll = {"grant_type": DEVICE_GRANT, "device_code": code.device_code, "client_id": client_id}
        token_url = f"{base}/login/oauth/access_token"
        answer = wait_for_tokens(client, token_url, poll, code, say=say, clock=clock)
        who = _github_user(client, api_url, str(answer["access_token"]))
    # GitHub redeems a refresh token only with the app's client secret, which a CLI has not:
    # an expiring GitHub token means signing in again.
    login = _stored(GITHUB, client_id, answer, token_endpoint=None, now=clock.now(), who=who)
    login = replace(login, refresh_token=None)
    _save(tokens, login)
    return login


def discover(http: httpx.Client, issuer: str) -> Endpoints:
    """The issuer's device authorization and token endpoints, from its discovery document."""
    if not _trusted(issuer):
        raise LoginError(f"issuer {issuer} must be an https:// URL (http:// only on loopback)")
    url = _discovery_url(issuer)
    response = _request(http, "GET", url, "the issuer's discovery document")
    document = _json(response, "the issuer's discovery document")
    if response.status_code != 200:
        raise LoginError(f"{url} answered HTTP {response.status_code}; is the issuer right?")
    named = document.get("issuer")
    if not isinstance(named, str) or named.rstrip("/") != issuer.rstrip("/"):
        raise LoginError(f"the discovery document at {url} names another issuer ({named})")
    device, token = document.get("device_authorization_endpoint"), document.get("token_endpoint")
    if not isinstance(device, str) or not device:
        raise LoginError(
            f"{issuer} does not offer the device authorization grant (its discovery document "
            "has no device_authorization_endpoint)"
        )
    if not isinstance(token, str) or not token:
        raise LoginError(f"the discovery document of {issuer} has no token_endpoint")
    for endpoint in (device, token):
        if not _trusted(endpoint):
            raise LoginError(f"{issuer} names an endpoint that is not https: {endpoint}")
    listed = document.get("scopes_supported")
    scopes = tuple(str(s) for s in listed) if isinstance(listed, list) else None
    return Endpoints(named, device, token, scopes)


def revoke_at_issuer(login: StoredLogin, http: httpx.Client | None = None) -> str:
    """Ask the issuer to revoke a sign-in's tokens (RFC 7009: the refresh token, which also
    ends its access tokens at most issuers, then the access token); one line saying what came
    of it. Never raises: the local sign-in is gone whatever the issuer says."""
    if login.key == GITHUB:
        return "GitHub tokens are withdrawn in GitHub's settings (Applications)"
    until = time.strftime("%H:%M", time.localtime(login.expires_at)) if login.expires_at else None
    still = f"its access token stays valid until {until}" if until else "its tokens stay valid"
    try:
        with _client(http) as client:
            response = _request(client, "GET", _discovery_url(login.key), "the issuer")
            endpoint = _json(response, "the issuer's discovery document").get("revocation_endpoint")
            if not isinstance(endpoint, str) or not _trusted(endpoint):
                return f"the issuer offers no token revocation: {still}"
            form = {"client_id": login.client_id}
            if login.client_secret:
                form["client_secret"] = login.client_secret
            tokens = [("refresh_token", login.refresh_token), ("access_token", login.access_token)]
            for hint, token in tokens:
                if token:
                    answer = _request(
                        client, "POST", endpoint, "the revocation endpoint",
                        {**form, "token": token, "token_type_hint": hint},
                    )  # fmt: skip
                    if answer.status_code != 200:
                        return (
                            f"the issuer refused to revoke it (HTTP {answer.status_code}): {still}"
                        )
    except LoginError as exc:
        return f"could not revoke it at the issuer ({exc}): {still}"
    return "revoked at the issuer"


def _discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def request_device_code(http: httpx.Client, url: str, form: Mapping[str, str]) -> DeviceCode:
    response = _request(http, "POST", url, "the device authorization endpoint", form)
    answer = _json(response, "the device authorization endpoint")
    if response.status_code != 200 or "error" in answer:
        raise LoginError(f"the sign-in could not start: {_oauth_error(answer, response)}")
    device_code, user_code = answer.get("device_code"), answer.get("user_code")
    uri = answer.get("verification_uri") or answer.get("verification_url")  # Google's name
    if not all(isinstance(value, str) and value for value in (device_code, user_code, uri)):
        raise LoginError(f"{url} did not answer with a device code, a user code and a URI")
    complete = answer.get("verification_uri_complete")
    return DeviceCode(
        device_code=str(device_code),
        user_code=str(user_code),
        verification_uri=str(uri),
        verification_uri_complete=complete if isinstance(complete, str) and complete else None,
        expires_in=_seconds(answer.get("expires_in")) or 600.0,
        interval=_seconds(answer.get("interval")) or DEFAULT_INTERVAL_S,
    )


def show_code(code: DeviceCode, say: Say) -> None:
    if code.verification_uri_complete:
        say(f"Open {code.verification_uri_complete} in a browser on any device and approve.")
        say(f"Code: {code.user_code} (the page should show it; or enter it at "
            f"{code.verification_uri})")  # fmt: skip
    else:
        say(f"Open {code.verification_uri} in a browser on any device and enter the code.")
        say(f"Code: {code.user_code}")
    minutes = max(1, round(code.expires_in / 60))
    say(f"Waiting for approval (the code expires in {minutes} min; Ctrl-C gives up)…")


def wait_for_tokens(
    http: httpx.Client,
    token_url: str,
    form: Mapping[str, str],
    code: DeviceCode,
    *,
    say: Say = say_line,
    clock: Clock = Clock(),
) -> dict[str, Any]:
    """Poll the token endpoint every `interval` seconds until the operator approves (RFC 8628
    §3.4-3.5); anything but approval or "not yet" ends the sign-in with one line."""
    interval = code.interval
    deadline = clock.monotonic() + code.expires_in
    failures = 0
    while True:
        clock.sleep(interval)
        if clock.monotonic() >= deadline:
            raise LoginError("the code expired before it was approved; run `omen login` again")
        try:
            response = http.post(token_url, data=dict(form), headers=_JSON)
        except httpx.HTTPError as exc:
            failures += 1
            if failures >= _NETWORK_TRIES:
                raise LoginError(f"cannot reach {token_url}: {_why(exc)}") from None
            interval *= 2  # RFC 8628 §3.5: back off when the network fails
            continue
        failures = 0
        answer = _json(response, "the token endpoint")
        error = answer.get("error")
        if not error and response.status_code == 200:
            if not isinstance(answer.get("access_token"), str):
                raise LoginError(f"{token_url} approved the sign-in but sent no access token")
            return answer
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            given = _seconds(answer.get("interval"))  # GitHub says the new interval
            interval = given if given and given > interval else interval + SLOW_DOWN_STEP_S
            say(f"The issuer asked to be polled less often: every {interval:g} s now.")
            continue
        if error == "expired_token":
            raise LoginError("the code expired before it was approved; run `omen login` again")
        if error == "access_denied":
            raise LoginError("the sign-in was denied at the issuer")
        raise LoginError(f"the issuer refused the sign-in: {_oauth_error(answer, response)}")


def refresh(
    login: StoredLogin, *, http: httpx.Client | None = None, now: float | None = None
) -> StoredLogin | None:
    """The sign-in with new tokens from the refresh token grant, or None when the issuer
    cannot be reached or refuses (the refresh token expired or was revoked)."""
    if not (login.refresh_token and login.token_endpoint):
        return None
    form = {
        "grant_type": "refresh_token",
        "refresh_token": login.refresh_token,
        "client_id": login.client_id,
    }
    if login.client_secret:
        form["client_secret"] = login.client_secret
    try:
        with _client(http) as client:
            response = client.post(login.token_endpoint, data=form, headers=_JSON)
        answer = _json(response, "the token endpoint")
    except (httpx.HTTPError, LoginError):
        return None
    if response.status_code != 200 or not isinstance(answer.get("access_token"), str):
        return None
    renewed = _stored(
        login.key,
        login.client_id,
        answer,
        token_endpoint=login.token_endpoint,
        audience=login.audience,
        now=time.time() if now is None else now,
        who=login.who,
        client_secret=login.client_secret,
    )
    # An issuer that does not rotate refresh tokens sends none back: the old one still works.
    return replace(renewed, refresh_token=renewed.refresh_token or login.refresh_token)


# -- helpers ---------------------------------------------------------------------------------


def identity(answer: Mapping[str, Any], groups_claim: str = "groups") -> SignedInAs:
    """Who a token answer is about, from its ID token and (a JWT) access token, unverified:
    for display only. Groups are the access token's, which is what the daemon reads."""
    id_claims = _claims(answer.get("id_token"))
    access_claims = _claims(answer.get("access_token"))
    merged = access_claims | id_claims

    def text(name: str) -> str | None:
        value = merged.get(name)
        return value if isinstance(value, str) and value else None

    groups = groups_of(access_claims, groups_claim) or groups_of(id_claims, groups_claim)
    return SignedInAs(
        subject=text("sub"),
        email=text("email"),
        name=text("name") or text("preferred_username"),
        groups=groups,
    )


def _stored(
    key: str,
    client_id: str,
    answer: Mapping[str, Any],
    *,
    token_endpoint: str | None,
    now: float,
    who: SignedInAs,
    audience: str | None = None,
    client_secret: str | None = None,
) -> StoredLogin:
    def text(name: str) -> str | None:
        value = answer.get(name)
        return value if isinstance(value, str) and value else None

    login = StoredLogin(
        key=key,
        client_id=client_id,
        access_token=str(answer["access_token"]),
        refresh_token=text("refresh_token"),
        id_token=text("id_token"),
        client_secret=client_secret,
        token_endpoint=token_endpoint,
        audience=audience,
        who=who,
        signed_in_at=now,
    )
    # It expires when the token sent does, or the answer's expires_in says, whichever is first.
    ends = [now + lifetime] if (lifetime := _seconds(answer.get("expires_in"))) else []
    if exp := _seconds(_claims(login.bearer).get("exp")):
        ends.append(exp)
    return replace(login, expires_at=min(ends) if ends else None)


def _save(tokens: TokenFile | None, login: StoredLogin) -> None:
    try:
        tokens = tokens or TokenFile()
        with tokens.editing() as logins:
            logins.put(login, last=True)
    except OSError as exc:
        raise LoginError(f"signed in, but the tokens cannot be stored: {exc}") from None


def _github_user(http: httpx.Client, api_url: str, token: str) -> SignedInAs:
    """GitHub's login, name and public e-mail of the token's user (empty when GitHub does not
    answer: the sign-in stands, it is only shown without a name)."""
    headers = {"authorization": f"Bearer {token}", "accept": "application/vnd.github+json"}
    try:
        response = http.get(f"{api_url.rstrip('/')}/user", headers=headers)
        user = response.json() if response.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        user = {}
    if not isinstance(user, dict):
        user = {}

    def text(name: str) -> str | None:
        value = user.get(name)
        return value if isinstance(value, str) and value else None

    return SignedInAs(subject=text("login"), email=text("email"), name=text("name"))


@contextlib.contextmanager
def _client(http: httpx.Client | None) -> Iterator[httpx.Client]:
    if http is not None:
        yield http
        return
    with httpx.Client(timeout=_HTTP_TIMEOUT_S, follow_redirects=False) as client:
        yield client


def _request(
    http: httpx.Client, method: str, url: str, what: str, form: Mapping[str, str] | None = None
) -> httpx.Response:
    try:
        return http.request(
            method, url, data=dict(form) if form is not None else None, headers=_JSON
        )
    except httpx.HTTPError as exc:
        raise LoginError(f"cannot reach {what} at {url}: {_why(exc)}") from None


def _json(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise LoginError(f"{what} at {response.request.url} did not answer with JSON "
                         f"(HTTP {response.status_code})")  # fmt: skip
    return answer


def _oauth_error(answer: Mapping[str, Any], response: httpx.Response) -> str:
    error = answer.get("error") or f"HTTP {response.status_code}"
    description = answer.get("error_description")
    return (
        f"{error} ({description})" if isinstance(description, str) and description else str(error)
    )


def _why(exc: httpx.HTTPError) -> str:
    return str(exc) or type(exc).__name__


def _claims(token: object) -> dict[str, Any]:
    if not isinstance(token, str) or token.count(".") != 2:
        return {}
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return claims if isinstance(claims, dict) else {}


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return float(value)


def _trusted(url: str) -> bool:
    """https, or http to this machine (a test issuer): tokens never cross a network in clear."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    if not host or parts.scheme not in ("https", "http"):
        return False
    if parts.scheme == "https" or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
