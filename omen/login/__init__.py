"""Operator sign-in, the client half: `omen login` signs the operator in with a device flow
(an OIDC issuer's, or GitHub's) and keeps the tokens in their token file; `admin_credentials`
hands the admin callers what to send as the bearer. The daemon verifies (`omen.oidc`).

`device_flow` talks to the issuer, `token_file` keeps the tokens, `credentials` chooses and
refreshes what is sent, `command` is the CLI's part.
"""

from omen.login.credentials import admin_credentials, current_token, logout, signed_in_key
from omen.login.device_flow import LoginError, github_login, oidc_login, refresh
from omen.login.token_file import GITHUB, SignedInAs, StoredLogin, TokenFile

__all__ = [
    "GITHUB",
    "LoginError",
    "SignedInAs",
    "StoredLogin",
    "TokenFile",
    "admin_credentials",
    "current_token",
    "github_login",
    "logout",
    "oidc_login",
    "refresh",
    "signed_in_key",
]
