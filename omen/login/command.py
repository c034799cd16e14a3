"""`omen login` and `omen logout` (their arguments are in `omen.cli`): which flow the arguments
and the config ask for, and what the operator is told — who signed in, and the role the daemon
gives them.
"""

from __future__ import annotations

import argparse
import os
import sys

import httpx

from omen.config import LoadedConfig
from omen.login.credentials import config_value, github_table, logout
from omen.login.device_flow import (
    GITHUB_API_URL,
    GITHUB_URL,
    LoginError,
    github_login,
    oidc_login,
    revoke_at_issuer,
    say_line,
)
from omen.login.token_file import GITHUB, StoredLogin


def run_login(args: argparse.Namespace, loaded: LoadedConfig, daemon: str) -> int:
    """`omen login`: the flow the arguments and config ask for, then the daemon's word on
    the role it gives this sign-in."""
    try:
        login = _login(args, loaded)
    except LoginError as exc:
        print(f"omen login: {exc}", file=sys.stderr)
        return 1
    where = "with GitHub" if login.key == GITHUB else f"at {login.key}"
    groups = f" (groups: {', '.join(login.who.groups)})" if login.who.groups else ""
    say_line(f"Signed in {where} as {login.who.label}{groups}.")
    say_line(daemon_role(daemon, login.bearer))
    return 0


def run_logout(args: argparse.Namespace) -> int:
    key = GITHUB if args.github else args.issuer
    try:
        removed = logout(key)
    except OSError as exc:
        print(f"omen logout: {exc}", file=sys.stderr)
        return 1
    if not removed:
        say_line(f"Not signed in{' at ' + key if key else ''}: nothing to sign out of.")
    for login in removed:
        where = "GitHub" if login.key == GITHUB else login.key
        say_line(f"Signed out {login.who.label} ({where}); {revoke_at_issuer(login)}.")
    return 0


def daemon_role(url: str, token: str) -> str:
    """One line: the role the daemon at `url` gives this token (GET /admin/whoami)."""
    try:
        response = httpx.get(
            f"{url}/admin/whoami", headers={"authorization": f"Bearer {token}"}, timeout=5
        )
    except httpx.HTTPError:
        return f"No daemon answered at {url} to say which role you have (try --url)."
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        return f"{url} did not answer like Omen's admin API; is --url right?"
    if response.status_code == 404:
        return f"The daemon at {url} cannot say which role you have (it predates /admin/whoami)."
    if response.status_code != 200:
        error = answer.get("error")
        message = error.get("message") if isinstance(error, dict) else None
        return (
            f"warning: the daemon at {url} refuses this sign-in "
            f"(HTTP {response.status_code}: {message or 'no reason given'})"
        )
    who = answer.get("email") or answer.get("subject") or "you"
    role = answer.get("role")
    rights = "drain, budgets, replay" if role == "admin" else "look, not act"
    return f"The daemon at {url} knows you as {who}: {role} (may {rights})."


def _login(args: argparse.Namespace, loaded: LoadedConfig) -> StoredLogin:
    oidc = getattr(loaded.config.auth, "oidc", None)
    configured = config_value(oidc, "issuer")
    github = github_table(loaded)
    # A daemon that takes GitHub sign-ins only: `omen login` means GitHub.
    if args.github or (github is not None and not (args.issuer or configured)):
        client_id = args.client_id or config_value(github, "client_id")
        if not client_id:
            raise LoginError(
                "--github needs the client id of Omen's GitHub OAuth app: pass --client-id "
                "or set client_id in [auth.github]"
            )
        api_url = (
            os.environ.get("OMEN_GITHUB_API_URL")
            or config_value(github, "api_url")
            or GITHUB_API_URL
        )
        base_url = os.environ.get("OMEN_GITHUB_URL") or github_web_url(api_url)
        return github_login(client_id, base_url=base_url, api_url=api_url)
    issuer = args.issuer or configured
    if not issuer:
        raise LoginError("no issuer: pass --issuer URL or set issuer in [auth.oidc]")
    # The config's client, audience and groups claim belong to its issuer, not another one.
    ours = configured is not None and configured.rstrip("/") == issuer.rstrip("/")
    client_id = args.client_id or (config_value(oidc, "client_id") if ours else None)
    if not client_id:
        raise LoginError("no client id: pass --client-id ID or set client_id in [auth.oidc]")
    scopes = getattr(oidc, "scopes", None) if ours else None
    return oidc_login(
        issuer,
        client_id,
        audience=config_value(oidc, "audience") if ours else None,
        scopes=[s for s in scopes or [] if isinstance(s, str)],
        client_secret=(
            os.environ.get("OMEN_OIDC_CLIENT_SECRET")
            or (config_value(oidc, "client_secret") if ours else None)
        ),
        groups_claim=(config_value(oidc, "groups_claim") if ours else None) or "groups",
    )


def github_web_url(api_url: str) -> str:
    """Where GitHub's device flow is, from its API's URL: github.com for api.github.com,
    https://HOST for a GitHub Enterprise Server's https://HOST/api/v3."""
    api = api_url.rstrip("/")
    if api == GITHUB_API_URL:
        return GITHUB_URL
    return api.removesuffix("/api/v3")
