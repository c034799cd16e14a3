"""What an admin caller (the console, `omen replay`, `omen keys`) sends as its bearer: an
admin-scope key when one is configured, else the operator's own sign-in, refreshed when its
access token is about to expire; and forgetting sign-ins (`omen logout`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import httpx

from omen.config import LoadedConfig
from omen.login.device_flow import refresh
from omen.login.token_file import GITHUB, Logins, StoredLogin, TokenFile

REFRESH_MARGIN_S = 60.0  # an access token closer than this to its expiry is refreshed first


def current_token(
    issuer: str,
    *,
    tokens: TokenFile | None = None,
    http: httpx.Client | None = None,
    now: Callable[[], float] = time.time,
) -> str | None:
    """A usable access token of the sign-in at `issuer` ("github" for GitHub): the stored one,
    or, when it expires within 60 s, a new one from its refresh token (stored at once). None
    when not signed in there, or when the sign-in has run out (`omen login` again)."""
    tokens = tokens or TokenFile()
    stored = tokens.read().by_key.get(issuer)
    if stored is None:
        return None
    if not stored.expires_within(REFRESH_MARGIN_S, now()):
        return stored.bearer
    if not (stored.refresh_token and stored.token_endpoint):
        return _unexpired(stored, now())
    try:
        with tokens.editing() as logins:
            login = logins.by_key.get(issuer)
            if login is None:
                return None
            if not login.expires_within(REFRESH_MARGIN_S, now()):
                return login.bearer  # another process refreshed while this one waited
            refreshed = refresh(login, http=http, now=now())
            if refreshed is None:
                return _unexpired(login, now())
            logins.put(refreshed)
            return refreshed.bearer
    except OSError:  # the token file cannot be locked or written: use what is there
        return _unexpired(stored, now())


def admin_credentials(loaded: LoadedConfig, *, tokens: TokenFile | None = None) -> str | None:
    """What an admin caller sends as the bearer: the admin-scope key of the config or
    $OMEN_ADMIN_KEY, else the operator's own sign-in (refreshed when due), else None."""
    for entry in loaded.config.auth.api_keys:
        if entry.scope == "admin" and entry.key is not None:
            return entry.key.get_secret_value()
    key = os.environ.get("OMEN_ADMIN_KEY")
    if key:
        return key
    try:
        tokens = tokens or TokenFile()
    except OSError:  # nowhere to look for a sign-in
        return None
    chosen = signed_in_key(loaded, tokens.read())
    return current_token(chosen, tokens=tokens) if chosen else None


def signed_in_key(loaded: LoadedConfig, logins: Logins) -> str | None:
    """The sign-in to use with this config's daemon: the one at its issuer (or GitHub when it
    takes GitHub sign-ins); with no [auth.oidc], the last one made."""
    oidc = getattr(loaded.config.auth, "oidc", None)
    issuer = config_value(oidc, "issuer")
    github = github_table(loaded) is not None
    if issuer is None and not github:
        return logins.last
    found = _find(logins, issuer) if issuer else None
    if found is None and github and GITHUB in logins.by_key:
        found = GITHUB
    return found


def logout(key: str | None = None, *, tokens: TokenFile | None = None) -> list[StoredLogin]:
    """Forget the sign-in stored under `key` (an issuer, or "github"), or every one."""
    tokens = tokens or TokenFile()
    if not tokens.path.exists():
        return []
    with tokens.editing() as logins:
        keys = list(logins.by_key) if key is None else [_find(logins, key) or key]
        return [login for login in map(logins.pop, keys) if login is not None]


def github_table(loaded: LoadedConfig) -> Any:
    """The config's GitHub table (the daemon's check of org and team membership), if any."""
    oidc = getattr(loaded.config.auth, "oidc", None)
    return getattr(oidc, "github", None) or getattr(loaded.config.auth, "github", None)


def _find(logins: Logins, issuer: str) -> str | None:
    """The stored key of `issuer`, however its trailing slash is written."""
    if issuer in logins.by_key:
        return issuer
    wanted = issuer.rstrip("/")
    return next((key for key in logins.by_key if key.rstrip("/") == wanted), None)


def _unexpired(login: StoredLogin, now: float) -> str | None:
    return None if login.expires_within(0, now) else login.bearer


def config_value(table: Any, name: str) -> str | None:
    value = getattr(table, name, None) if table is not None else None
    return value if isinstance(value, str) and value else None
