"""API keys: who is calling, with which scope, on behalf of which container.

Keys are kept only as SHA-256 digests from the moment the config is loaded; a presented key
is hashed and compared against every digest in constant time. `key_id` (a digest prefix) is
what logs, the store and the audit trail name — never the key.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass

from omen.config import OmenConfig


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str | None
    scope: str  # "admin" | "user" | "anonymous"
    container: str | None  # bound container, None when the key may act for any


ANONYMOUS = Principal(None, "anonymous", None)


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class KeyRing:
    def __init__(self, config: OmenConfig) -> None:
        self._entries: list[tuple[bytes, Principal]] = []
        for entry in config.auth.api_keys:
            if entry.key is not None:
                self._add(entry.key.get_secret_value(), entry.scope, entry.container)
        for name, container in config.containers.items():
            if container.api_key is not None:
                self._add(container.api_key.get_secret_value(), "user", name)

    def _add(self, key: str, scope: str, container: str | None) -> None:
        digest = key_digest(key)
        self._entries.append((digest, Principal(f"key_{digest.hex()[:12]}", scope, container)))

    @property
    def empty(self) -> bool:
        return not self._entries

    def authenticate(self, presented: str) -> Principal | None:
        digest = key_digest(presented)
        found: Principal | None = None
        for known, principal in self._entries:
            # No early exit: the time taken does not depend on which key matched.
            if hmac.compare_digest(known, digest):
                found = principal
        return found


def bearer_token(authorization: str | None, x_api_key: str | None = None) -> str | None:
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return x_api_key or None


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
