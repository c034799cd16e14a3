"""Credential redaction for request bodies before they are stored for replay.

A key whose name looks like a credential has its value replaced at any depth; so does any
string that looks like a bearer token or a provider API key, wherever it appears.
"""

from __future__ import annotations

import functools
import re
from typing import Any

REDACTED = "[REDACTED]"

# Compared after lower-casing and dropping "-" and "_": "X-Api-Key" -> "xapikey".
_CREDENTIAL_NAMES = frozenset(
    {
        "apikey",
        "xapikey",
        "apitoken",
        "authorization",
        "proxyauthorization",
        "auth",
        "password",
        "passwd",
        "secret",
        "clientsecret",
        "token",
        "accesstoken",
        "refreshtoken",
        "idtoken",
        "sessiontoken",
        "bearer",
        "privatekey",
        "secretkey",
        "awssecretaccesskey",
        "awssessiontoken",
        "cookie",
        "setcookie",
    }
)
_CREDENTIAL_SUFFIXES = ("apikey", "secret", "password", "accesstoken", "authtoken", "secretkey")

# "Bearer abc...", OpenAI/Anthropic "sk-..."/"sk-ant-...", xAI "xai-...", Google "AIza...",
# AWS access key ids, GitHub tokens, Slack tokens.
_SECRET_VALUE = re.compile(
    r"""
    (?:\b(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,})
    | (?:\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{16,})
    | (?:\bxai-[A-Za-z0-9_-]{16,})
    | (?:\bAIza[0-9A-Za-z_-]{30,})
    | (?:\b(?:AKIA|ASIA)[0-9A-Z]{16}\b)
    | (?:\bgh[pousr]_[A-Za-z0-9]{30,})
    | (?:\bxox[abposr]-[A-Za-z0-9-]{10,})
    """,
    re.VERBOSE,
)


@functools.lru_cache(maxsize=4096)
def is_credential_name(name: str) -> bool:
    folded = name.lower().replace("-", "").replace("_", "")
    return folded in _CREDENTIAL_NAMES or folded.endswith(_CREDENTIAL_SUFFIXES)


def redact_body(body: dict[str, Any]) -> dict[str, Any]:
    """A copy of `body` with credentials replaced by "[REDACTED]"; `body` is not touched.

    Any string (in metadata, headers or a prompt) that looks like a key has that part
    replaced too: a prompt that pasted a key is stored, and replayed, without it.
    """
    return _redact_mapping(body)


# Every pattern above contains one of these; plain `in` checks are far cheaper than the regex
# on long prompts, and most strings contain none of them.
_MARKERS = (
    "earer",
    "EARER",
    "sk-",
    "xai-",
    "AIza",
    "AKIA",
    "ASIA",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "xox",
)


def redact_text(text: str) -> str:
    if any(marker in text for marker in _MARKERS):
        return _SECRET_VALUE.sub(REDACTED, text)
    return text


def _redact_mapping(mapping: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(key, str) and is_credential_name(key) and value is not None:
            out[key] = REDACTED
        else:
            out[key] = _redact_value(value)
    return out


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return _redact_mapping(value)
    if isinstance(value, list | tuple):
        return [_redact_value(item) for item in value]
    return value
