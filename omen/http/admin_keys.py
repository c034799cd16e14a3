"""The admin API's keys (`omen keys`): make a container's key, list them, revoke one — all
without a restart, several active keys per container.

A new key is shown once, in the answer to its creation; Omen keeps only its SHA-256 digest.
It is committed to the store before it is handed out (a crash cannot lose a key its caller
holds) and works at once on this instance; a revocation applies here at once. The rest of a
fleet follows through Redis at once and through the store within a refresh (omen.key_sync).
Keys written in the config are listed too, but only a config edit and a reload remove them.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from omen.auth import key_digest, key_id_of, new_key
from omen.errors import ApiError, invalid
from omen.http.admin import AdminApi, json_response
from omen.operators import Operator
from omen_store import ApiKeyRow, AuditRecord, KeyCreated, KeyRevoked, StoreError, StoreReader

_MAX_NAME = 200
_NAME = re.compile(r"^[^\x00-\x1f\x7f]+$")  # one printable line
_LIST_PARAMS = ("container",)


class KeyAdmin:
    def __init__(self, admin: AdminApi) -> None:
        self.admin = admin
        self.daemon = admin.daemon

    async def create(self, request: Request) -> Response:
        """`POST /admin/keys` `{"container", "name"?, "scope"?}` → 201 with the key, once."""
        operator = await self.admin.operator(request, write=True)
        body = await self.admin._body(request)
        container, scope, name = self._new_key_fields(body)
        daemon = self.daemon
        if daemon.keys.empty:
            raise ApiError(
                409,
                "Omen runs without keys (none in [auth] api_keys or a container's api_key), so "
                "it would check none: configure an admin key first",
                code="keyless_mode",
            )
        writer = daemon.writer
        if writer.failure is not None:
            raise self._store_down(writer.failure)
        key = new_key()
        digest = key_digest(key)
        now = time.time()
        key_id, actor = key_id_of(digest), operator.actor
        instance = daemon.config.server.instance
        row = ApiKeyRow(
            key_id, digest.hex(), container, scope, name, now, actor, None, None, instance
        )
        writer.record_key(KeyCreated(now, key_id, row.digest, container, scope, name, actor))
        if not await asyncio.to_thread(writer.flush):
            # Not handed out, not let in; and should the record reach the store later (a
            # spill file replayed), the revocation queued behind it keeps the key out.
            writer.record_key(KeyRevoked(time.time(), row.key_id, "omen: not confirmed"))
            raise self._store_down(writer.failure or "the store did not confirm in time")
        daemon.keys.add(row.key_id, digest, scope, container)
        writer.record_audit(self._audit(operator, "key_create", row, None, _public(row)))
        await daemon.key_sync.announce("created", row)
        answer = _public(row)
        answer["key"] = key
        answer["note"] = "the key is shown only this once: Omen keeps just its SHA-256 digest"
        return json_response(answer, status=201)

    async def listing(self, request: Request) -> Response:
        """`GET /admin/keys[?container=]`: ids and who made them, never a key or a digest."""
        await self.admin.operator(request, write=False)
        query = request.query_params
        unknown = sorted(set(query.keys()) - set(_LIST_PARAMS))
        if unknown:
            raise invalid(f"unknown parameter `{unknown[0]}`; expected container", unknown[0])
        container = query.get("container") or None
        configured = [
            {
                "key_id": entry.key_id,
                "container": entry.container,
                "scope": entry.scope,
                "name": entry.name,
                "source": "config",
                "where": entry.where,
                "active": True,
                "revocable": False,
            }
            for entry in self.daemon.keys.configured
            if container is None or entry.container == container
        ]
        rows = await self._rows(container)
        return json_response({"keys": configured + [_public(row) for row in rows]})

    async def revoke(self, request: Request) -> Response:
        """`POST /admin/keys/{key_id}/revoke` or `DELETE /admin/keys/{key_id}`: refused from
        now on. Revoking a revoked key answers how it stands."""
        operator = await self.admin.operator(request, write=True)
        key_id = request.path_params["key_id"]
        daemon = self.daemon
        for entry in daemon.keys.configured:
            if entry.key_id == key_id:
                raise ApiError(
                    409,
                    f"{key_id} is written in the config ({entry.where}): remove it there and "
                    "reload (SIGHUP)",
                    code="config_key",
                )
        # A leaked key is refused here before anything can fail (the store may be down);
        # what follows records and announces it.
        revoked_here = daemon.keys.is_active(key_id) and daemon.keys.revoke(key_id)
        try:
            rows = await asyncio.to_thread(self._read, None)
        except StoreError as exc:
            if not revoked_here:
                raise self._store_down(str(exc)) from None
            await daemon.key_sync.announce_revoked(key_id)
            writer = daemon.writer  # revoked here: keep the record for when the store is back
            writer.record_key(KeyRevoked(time.time(), key_id, operator.actor))
            raise ApiError(
                503,
                f"{key_id} is refused by this instance from now on, but the store cannot be "
                f"read ({exc}); the revocation is recorded once it can: revoke again to make "
                "sure the whole fleet refuses it",
                code="store_unavailable",
                headers={"retry-after": "5"},
            ) from None
        found = [row for row in rows if row.key_id == key_id]
        if not found:
            raise ApiError(404, f"no key {key_id!r}", code="unknown_key")
        row = found[0]
        if not row.active:
            daemon.keys.revoke(key_id)
            return json_response(_public(row))
        daemon.keys.revoke(key_id)  # here, at once; then the rest of the fleet
        await daemon.key_sync.announce("revoked", row)
        now = time.time()
        writer = daemon.writer
        writer.record_key(KeyRevoked(now, key_id, operator.actor))
        after = {**_public(row), "active": False, "revoked": now, "revoked_by": operator.actor}
        writer.record_audit(self._audit(operator, "key_revoke", row, _public(row), after))
        if not await asyncio.to_thread(writer.flush):
            raise ApiError(
                503,
                f"{key_id} is refused by this instance from now on, but the store has not "
                f"recorded the revocation yet ({writer.failure or 'no answer in time'}); "
                "instances that did not hear of it may accept it until then: try again",
                code="store_unavailable",
                headers={"retry-after": "5"},
            )
        return json_response(after)

    # --- helpers ---------------------------------------------------------------------------

    def _new_key_fields(self, body: dict[str, Any]) -> tuple[str | None, str, str | None]:
        unknown = sorted(set(body) - {"container", "name", "scope"})
        if unknown:
            raise invalid(
                f"unknown field `{unknown[0]}`; expected container, name, scope", unknown[0]
            )
        scope = body.get("scope", "user")
        if scope not in ("user", "admin"):
            raise invalid("`scope` must be user or admin", param="scope")
        container = body.get("container")
        if scope == "admin":
            if container is not None:
                raise invalid(
                    "an admin key acts for every container: leave `container` out",
                    param="container",
                )
        elif not isinstance(container, str) or not container:
            raise invalid("`container` is required: the container the key acts for", "container")
        elif container not in self.daemon.config.containers:
            known = ", ".join(sorted(self.daemon.config.containers)) or "none"
            raise invalid(
                f"container {container!r} is not configured (configured: {known})",
                param="container",
                code="unknown_container",
            )
        name = body.get("name")
        if name is not None and (
            not isinstance(name, str) or not 0 < len(name) <= _MAX_NAME or not _NAME.match(name)
        ):
            raise invalid(f"`name` must be one line of 1 to {_MAX_NAME} characters", "name")
        return container, scope, name

    async def _rows(self, container: str | None) -> list[ApiKeyRow]:
        try:
            return await asyncio.to_thread(self._read, container)
        except StoreError as exc:
            raise self._store_down(str(exc)) from None

    def _read(self, container: str | None) -> list[ApiKeyRow]:
        reader = StoreReader(self.daemon.config.server.database)
        try:
            return reader.api_keys(container)
        finally:
            reader.close()

    @staticmethod
    def _store_down(why: str) -> ApiError:
        return ApiError(
            503,
            f"the store cannot record keys right now ({why}); no key was made: try again",
            code="store_unavailable",
            headers={"retry-after": "5"},
        )

    @staticmethod
    def _audit(
        operator: Operator,
        action: str,
        row: ApiKeyRow,
        before: dict[str, Any] | None,
        after: dict[str, Any],
    ) -> AuditRecord:
        return AuditRecord(
            ts=time.time(),
            actor=operator.actor,
            action=action,
            target=row.key_id,
            before=before,
            after=after,
            detail=row.name,
            role=operator.role,
        )


def _public(row: ApiKeyRow) -> dict[str, Any]:
    """What may be shown of a key made through the admin API: never the digest."""
    return {
        "key_id": row.key_id,
        "container": row.container,
        "scope": row.scope,
        "name": row.name,
        "source": "admin",
        "created": row.created_ts,
        "created_by": row.created_by,
        "instance": row.instance,
        "active": row.active,
        "revoked": row.revoked_ts,
        "revoked_by": row.revoked_by,
        "revocable": row.active,
    }
