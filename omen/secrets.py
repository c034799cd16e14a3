"""Omen's own secrets kept out of everything upstreams say back.

An upstream error text may echo the request it refused — `Authorization: Bearer <Omen's key>`
included. Every upstream text passes through `Redactor` before it reaches a client, a log
line, the store or `/providers`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from omen.config import OmenConfig

REDACTED = "[redacted]"
_MIN_LENGTH = 6  # shorter "secrets" would redact ordinary words
_ENV_SECRETS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK")


class Redactor:
    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a key that contains another is removed whole.
        self.secrets = sorted({s for s in secrets if len(s) >= _MIN_LENGTH}, key=len, reverse=True)

    @classmethod
    def from_config(cls, config: OmenConfig) -> Redactor:
        values = [os.environ.get(name, "") for name in _ENV_SECRETS]
        values += [p.api_key.get_secret_value() for p in config.providers.values() if p.api_key]
        values += [k.key.get_secret_value() for k in config.auth.api_keys if k.key]
        values += [c.api_key.get_secret_value() for c in config.containers.values() if c.api_key]
        return cls(values)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text
