"""API keys: who is calling, with which scope, on behalf of which container.

Keys are kept only as SHA-256 digests from the moment the config is loaded; a presented key
is hashed and compared against every digest in constant time. `key_id` (a digest prefix) is
what logs, the store and the audit trail name — never the key.

Besides the config's keys the ring holds those made through the admin API (`omen keys`):
the store records their digests, and they are added and revoked while the daemon runs. A
revocation is final: a revoked key id is never let back in, whatever arrives later.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from omen.config import OmenConfig
from omen_store import ApiKeyRow

KEY_PREFIX = "omen_"


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str | None
    scope: str  # "admin" | "user" | "anonymous"
    container: str | None  # bound container, None when the key may act for any


ANONYMOUS = Principal(None, "anonymous", None)


@dataclass(frozen=True, slots=True)
class ConfiguredKey:
    """A key written in the config, as `GET /admin/keys` shows it: where, never what."""

    key_id: str
    scope: str
    container: str | None
    name: str | None
    where: str  # `auth.api_keys.0`, `containers.app.api_key`


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def key_id_of(digest: bytes) -> str:
    return f"key_{digest.hex()[:12]}"


def new_key() -> str:
    """A key for `POST /admin/keys`: 256 random bits, URL-safe, recognisable by its prefix."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


_Entry = tuple[bytes, Principal]


class KeyRing:
    def __init__(self, config: OmenConfig) -> None:
        self._lock = threading.Lock()  # for writers; readers take `_entries` whole
        self._configured: tuple[_Entry, ...] = ()
        self.configured: tuple[ConfiguredKey, ...] = ()
        self._added: dict[str, _Entry] = {}  # made through the admin API, by key id
        self._revoked: set[str] = set()
        self._entries: tuple[_Entry, ...] = ()
        self.reconfigure(config)

    def reconfigure(self, config: OmenConfig) -> None:
        """The config's keys (a reload); keys made through the admin API stay."""
        entries: list[_Entry] = []
        described: list[ConfiguredKey] = []

        def add(key: str, scope: str, container: str | None, name: str | None, where: str) -> None:
            digest = key_digest(key)
            principal = Principal(key_id_of(digest), scope, container)
            entries.append((digest, principal))
            described.append(ConfiguredKey(key_id_of(digest), scope, container, name, where))

        for index, entry in enumerate(config.auth.api_keys):
            if entry.key is not None:
                where = f"auth.api_keys.{index}"
                add(entry.key.get_secret_value(), entry.scope, entry.container, entry.name, where)
        for name, container in config.containers.items():
            if container.api_key is not None:
                where = f"containers.{name}.api_key"
                add(container.api_key.get_secret_value(), "user", name, None, where)
        with self._lock:
            self._configured = tuple(entries)
            self.configured = tuple(described)
            self._publish()

    @property
    def empty(self) -> bool:
        """No key in the config: keyless loopback mode. Keys made through the admin API do
        not end it (a keyless daemon refuses to make them)."""
        return not self._configured

    def authenticate(self, presented: str) -> Principal | None:
        digest = key_digest(presented)
        found: Principal | None = None
        for known, principal in self._entries:  # one tuple, swapped whole by writers
            # No early exit: the time taken does not depend on which key matched.
            if hmac.compare_digest(known, digest):
                found = principal
        return found

    # --- keys made through the admin API -----------------------------------------------------

    def is_configured(self, key_id: str) -> bool:
        return any(entry.key_id == key_id for entry in self.configured)

    def is_active(self, key_id: str) -> bool:
        return key_id in self._added

    def add(self, key_id: str, digest: bytes, scope: str, container: str | None) -> bool:
        """Let a key in from now on; False when it already is, was revoked, or its id is
        taken (by a config key)."""
        if len(digest) != 32 or key_id != key_id_of(digest) or scope not in ("user", "admin"):
            return False
        with self._lock:
            if key_id in self._added or key_id in self._revoked or self.is_configured(key_id):
                return False
            self._added[key_id] = (digest, Principal(key_id, scope, container))
            self._publish()
        return True

    def revoke(self, key_id: str) -> bool:
        """Refuse a key made through the admin API from now on, for good; True when it was
        let in until now. Config keys are not revoked here (remove them from the config)."""
        with self._lock:
            if self.is_configured(key_id):
                return False
            self._revoked.add(key_id)
            was_active = self._added.pop(key_id, None) is not None
            if was_active:
                self._publish()
        return was_active

    def sync(self, rows: Iterable[ApiKeyRow]) -> list[str]:
        """Follow the store's api_keys table: add the active keys, revoke the revoked ones.
        Returns what changed, in words (for the log)."""
        changed: list[str] = []
        for row in rows:
            if row.active:
                try:
                    digest = bytes.fromhex(row.digest)
                except ValueError:
                    continue
                if self.add(row.key_id, digest, row.scope, row.container):
                    changed.append(f"{row.key_id} ({row.container or row.scope}) added")
            elif self.revoke(row.key_id):
                changed.append(f"{row.key_id} revoked by {row.revoked_by}")
        return changed

    def _publish(self) -> None:
        """Under the lock: the entries authenticate() reads, rebuilt whole."""
        self._entries = self._configured + tuple(self._added.values())


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
