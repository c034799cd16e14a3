"""Container keys without restarts (issue 15): `POST /admin/keys`, `GET /admin/keys`, revoke,
and `omen keys`, on real `omen serve` processes — one on SQLite, and a fleet of two on one
PostgreSQL store, with and without Redis.

A rotation: make a second key for a container, move the client over, revoke the old one. The
new key works at once, the old one keeps working until revoked, then is refused (401) on this
instance at once and on the others within a refresh — at once when Redis carries the news.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from omen.auth import key_digest
from omen_store import StoreReader
from tests.integration.conftest import (
    ADMIN_KEY,
    APP_KEY,
    Omen,
    Upstreams,
    base_config,
    start_omen,
    wait_for_rows,
)
from tests.pg_support import pg_database
from tests.redis_support import redis_prefix, redis_url_or_skip

MODEL = "llama3.1:8b"
HELLO = [{"role": "user", "content": "Say hello"}]
FLEET_REFRESH = 0.5  # server.fleet_refresh of the fleet's instances
AT_ONCE = 0.5  # "at once" on another instance, through Redis
# Through the store alone: committed within a flush interval (50 ms), read within a refresh.
WITHIN_A_REFRESH = 0.05 + FLEET_REFRESH + 1.0


def chat(omen: Omen, key: str) -> httpx.Response:
    return httpx.post(
        f"{omen.url}/v1/chat/completions",
        json={"model": MODEL, "messages": HELLO},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )


def call(
    omen: Omen, method: str, path: str, body: dict[str, Any] | None = None, key: str = ADMIN_KEY
) -> httpx.Response:
    return httpx.request(
        method,
        f"{omen.url}{path}",
        json=body,
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )


def make_key(omen: Omen, container: str | None = "app", **body: Any) -> dict[str, Any]:
    if container is not None:
        body["container"] = container
    response = call(omen, "POST", "/admin/keys", body)
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


def revoke(omen: Omen, key_id: str) -> httpx.Response:
    return call(omen, "POST", f"/admin/keys/{key_id}/revoke")


def listed(omen: Omen, query: str = "") -> dict[str, dict[str, Any]]:
    response = call(omen, "GET", f"/admin/keys{query}")
    assert response.status_code == 200, response.text
    return {entry["key_id"]: entry for entry in response.json()["keys"]}


def refused(omen: Omen, key: str) -> bool:
    response = chat(omen, key)
    if response.status_code == 200:
        return False
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "invalid_api_key"
    return True


def wait_until(check: Callable[[], bool], timeout: float) -> float:
    """Seconds until `check()` holds; fails after `timeout`."""
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > timeout:
            pytest.fail(f"not within {timeout:.2f} s")
        time.sleep(0.01)
    return time.monotonic() - began


def config_key_id(key: str) -> str:
    return f"key_{key_digest(key).hex()[:12]}"


# --- one instance ----------------------------------------------------------------------------


def test_a_rotation_needs_no_restart(omen: Omen) -> None:
    old = make_key(omen, name="ci-2024")
    assert chat(omen, old["key"]).status_code == 200

    new = make_key(omen, name="ci-2025")  # a second active key for the same container

    assert new["key_id"] != old["key_id"]
    assert new["key"].startswith("omen_") and len(new["key"]) >= 40
    assert chat(omen, new["key"]).status_code == 200  # at once
    assert chat(omen, old["key"]).status_code == 200  # the old one still works
    assert chat(omen, APP_KEY).status_code == 200  # and so does the config's

    gone = revoke(omen, old["key_id"])

    assert gone.status_code == 200, gone.text
    assert gone.json()["active"] is False
    assert refused(omen, old["key"])  # at once
    assert chat(omen, new["key"]).status_code == 200


def test_each_request_is_recorded_with_the_key_that_made_it(omen: Omen) -> None:
    new = make_key(omen)
    ids = {
        chat(omen, new["key"]).headers["x-omen-request-id"]: new["key_id"],
        chat(omen, APP_KEY).headers["x-omen-request-id"]: config_key_id(APP_KEY),
    }

    rows = wait_for_rows(omen.database, 2)

    assert {row.id: row.key_id for row in rows} == ids  # type: ignore[attr-defined]
    assert {row.container for row in rows} == {"app"}  # type: ignore[attr-defined]


def test_the_listing_shows_ids_and_who_made_them_never_a_key(omen: Omen) -> None:
    made = make_key(omen, name="laptop")
    revoke(omen, make_key(omen, "other")["key_id"])

    response = call(omen, "GET", "/admin/keys")
    keys = {entry["key_id"]: entry for entry in response.json()["keys"]}

    entry = keys[made["key_id"]]
    assert entry["container"] == "app" and entry["scope"] == "user"
    assert entry["name"] == "laptop" and entry["source"] == "admin"
    assert entry["created_by"] == config_key_id(ADMIN_KEY) and entry["active"] is True
    config_app = keys[config_key_id(APP_KEY)]
    assert config_app["source"] == "config" and config_app["where"] == "containers.app.api_key"
    assert config_app["revocable"] is False
    assert sum(1 for e in keys.values() if not e["active"]) == 1
    assert made["key"] not in response.text
    assert key_digest(made["key"]).hex() not in response.text
    assert APP_KEY not in response.text and ADMIN_KEY not in response.text
    assert set(listed(omen, "?container=other")) == {
        e["key_id"] for e in keys.values() if e["container"] == "other"
    }


def test_revoking_a_config_key_is_409_and_an_unknown_one_404(omen: Omen) -> None:
    config_revoke = revoke(omen, config_key_id(APP_KEY))
    unknown = call(omen, "DELETE", "/admin/keys/key_0123456789ab")

    assert config_revoke.status_code == 409
    assert config_revoke.json()["error"]["code"] == "config_key"
    assert "containers.app.api_key" in config_revoke.json()["error"]["message"]
    assert chat(omen, APP_KEY).status_code == 200
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_key"


def test_delete_revokes_too_and_a_second_revocation_changes_nothing(omen: Omen) -> None:
    made = make_key(omen)
    first = call(omen, "DELETE", f"/admin/keys/{made['key_id']}")
    again = revoke(omen, made["key_id"])

    assert first.status_code == 200 and again.status_code == 200
    assert again.json()["revoked"] == pytest.approx(first.json()["revoked"], abs=0.01)
    assert refused(omen, made["key"])


def test_user_keys_cannot_manage_keys(omen: Omen) -> None:
    made = make_key(omen)
    for key in (made["key"], APP_KEY):
        for method, path in (
            ("POST", "/admin/keys"),
            ("GET", "/admin/keys"),
            ("POST", f"/admin/keys/{made['key_id']}/revoke"),
        ):
            response = call(omen, method, path, {"container": "app"}, key=key)
            assert response.status_code == 403, (method, path, response.text)
    assert chat(omen, made["key"]).status_code == 200  # it did not revoke itself


def test_an_admin_key_made_through_the_api_manages_keys(omen: Omen) -> None:
    admin = make_key(omen, None, scope="admin", name="second operator")

    made = call(omen, "POST", "/admin/keys", {"container": "other"}, key=admin["key"])

    assert made.status_code == 201, made.text
    assert listed(omen)[made.json()["key_id"]]["created_by"] == admin["key_id"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "container"),
        ({"container": "nope"}, "container"),
        ({"container": "app", "scope": "admin"}, "container"),
        ({"container": "app", "scope": "root"}, "scope"),
        ({"container": "app", "name": 7}, "name"),
        ({"container": "app", "name": "a\nb"}, "name"),
        ({"container": "app", "key": "mine"}, "key"),
    ],
)
def test_a_bad_key_request_is_400_naming_the_field(
    omen: Omen, body: dict[str, Any], param: str
) -> None:
    response = call(omen, "POST", "/admin/keys", body)

    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_keys_survive_a_restart_and_a_reload(
    omen_factory: Callable[..., Omen], upstreams: Upstreams
) -> None:
    omen = omen_factory(base_config(upstreams))
    kept, gone = make_key(omen), make_key(omen)
    revoke(omen, gone["key_id"])

    omen.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "config reloaded" in omen.log.read_text(), 10)
    assert chat(omen, kept["key"]).status_code == 200
    assert refused(omen, gone["key"])

    omen.stop()
    again = omen_factory(base_config(upstreams))

    assert chat(again, kept["key"]).status_code == 200
    assert refused(again, gone["key"])
    assert listed(again)[gone["key_id"]]["active"] is False


def test_the_key_is_nowhere_in_the_store_or_the_logs(
    omen_factory: Callable[..., Omen], upstreams: Upstreams
) -> None:
    omen = omen_factory(base_config(upstreams), server_extra='log_level = "debug"')
    made = make_key(omen, name="secret-holder")
    assert chat(omen, made["key"]).status_code == 200
    revoke(omen, made["key_id"])
    refused(omen, made["key"])
    wait_for_rows(omen.database, 2)
    omen.stop()

    key = made["key"]
    connection = sqlite3.connect(omen.database)
    try:
        dump = "\n".join(connection.iterdump())
    finally:
        connection.close()
    assert made["key_id"] in dump  # the dump is the right one
    assert key not in dump and key.removeprefix("omen_") not in dump
    for path in omen.database.parent.iterdir():  # the database, its WAL, spill files, logs
        if path.is_file():
            assert key.removeprefix("omen_").encode() not in path.read_bytes(), path
    with StoreReader(omen.database) as reader:
        audit = reader.audit_rows(limit=100)
    actions = {row.action: row for row in audit}
    assert {"key_create", "key_revoke"} <= set(actions)
    assert actions["key_create"].target == made["key_id"]
    assert actions["key_create"].actor == config_key_id(ADMIN_KEY)


def test_a_keyless_daemon_makes_no_keys(
    omen_factory: Callable[..., Omen], upstreams: Upstreams
) -> None:
    config = base_config(upstreams)
    config = config.replace('api_keys = [{ key = "env:TEST_ADMIN_KEY", scope = "admin" }]', "")
    config = config.replace('api_key = "env:TEST_APP_KEY"', "").replace(
        'api_key = "env:TEST_OTHER_KEY"', ""
    )
    omen = omen_factory(config)

    response = call(omen, "POST", "/admin/keys", {"container": "app"})

    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "keyless_mode"


# --- omen keys ------------------------------------------------------------------------------


def test_omen_keys_create_list_revoke_end_to_end(omen: Omen) -> None:
    created = omen.omen("keys", "create", "app", "--name", "deploy", "--url", omen.url)

    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("omen_") and "\n" not in key
    assert "shown only this once" in created.stderr
    assert chat(omen, key).status_code == 200
    key_id = config_key_id(key)
    assert key_id in created.stderr

    table = omen.omen("keys", "list", "app", "--url", omen.url)
    assert table.returncode == 0, table.stderr
    lines = [line for line in table.stdout.splitlines() if key_id in line]
    assert len(lines) == 1 and "deploy" in lines[0] and "active" in lines[0]
    assert "containers.app.api_key" in table.stdout
    assert key not in table.stdout

    revoked = omen.omen("keys", "revoke", key_id, "--url", omen.url)
    assert revoked.returncode == 0, revoked.stderr
    assert f"revoked {key_id}" in revoked.stdout
    assert refused(omen, key)

    as_json = omen.omen("keys", "list", "--json", "--url", omen.url)
    entries = {e["key_id"]: e for e in map(orjson.loads, as_json.stdout.splitlines())}
    assert entries[key_id]["active"] is False
    assert entries[config_key_id(APP_KEY)]["source"] == "config"


def test_omen_keys_failures_are_one_line(omen: Omen) -> None:
    config_key = omen.omen("keys", "revoke", config_key_id(APP_KEY), "--url", omen.url)
    no_container = omen.omen("keys", "create", "--url", omen.url)
    unknown = omen.omen("keys", "create", "nope", "--url", omen.url)
    env = dict(omen.env, TEST_ADMIN_KEY="", OMEN_ADMIN_KEY="")
    without = omen.omen  # the same command, with no admin key anywhere
    omen.env, saved = env, omen.env
    try:
        keyless = without("keys", "list", "--url", omen.url)
    finally:
        omen.env = saved

    for done, code in (
        (config_key, 1),
        (no_container, 2),
        (unknown, 1),
        (keyless, 1),
    ):
        assert done.returncode == code, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert done.stderr.startswith("omen keys"), done.stderr
    assert "refused (409)" in config_key.stderr
    assert "not configured" in unknown.stderr
    assert "refused (401)" in keyless.stderr and "OMEN_ADMIN_KEY" in keyless.stderr


# --- a fleet --------------------------------------------------------------------------------


@dataclass
class Fleet:
    """Instances on one PostgreSQL store, with or without one Redis."""

    database: str
    tmp_path: Path
    config: str
    redis: str = ""
    started: list[Omen] = field(default_factory=list)

    def start(self, instance: str) -> Omen:
        home = self.tmp_path / instance
        home.mkdir(exist_ok=True)
        server = f'fleet_refresh = "{int(FLEET_REFRESH * 1000)}ms"\n'
        if self.redis:
            prefix = redis_prefix(f"keys-{self.tmp_path.name[:30]}")
            server += f'redis_url = "{self.redis}"\nredis_prefix = "{prefix}"\n'
        omen = start_omen(
            home,
            self.config,
            extra_env={
                "OMEN_DATABASE": self.database,
                "OMEN_INSTANCE": instance,
                "XDG_STATE_HOME": str(self.tmp_path / "state"),
            },
            server_extra=server,
        )
        self.started.append(omen)
        return omen


@pytest.fixture(params=["store", "redis"])
def fleet(request: pytest.FixtureRequest, tmp_path: Path, upstreams: Upstreams) -> Iterator[Fleet]:
    redis = redis_url_or_skip() if request.param == "redis" else ""
    with pg_database() as database:
        rig = Fleet(database, tmp_path, base_config(upstreams), redis)
        try:
            yield rig
        finally:
            failures = []
            for omen in rig.started:  # before the database is dropped under them
                try:
                    omen.stop()
                except AssertionError as exc:
                    failures.append(exc)
            if failures:
                raise failures[0]


def test_a_fleet_follows_a_rotation(fleet: Fleet) -> None:
    a, b = fleet.start("a"), fleet.start("b")
    old = make_key(a, name="old")
    wait_until(lambda: chat(b, old["key"]).status_code == 200, WITHIN_A_REFRESH)

    new = make_key(a, name="new")
    assert chat(a, new["key"]).status_code == 200  # at once where it was made
    took = wait_until(lambda: chat(b, new["key"]).status_code == 200, WITHIN_A_REFRESH)
    if fleet.redis:
        assert took < AT_ONCE
    assert chat(b, old["key"]).status_code == 200

    assert revoke(a, old["key_id"]).status_code == 200

    assert refused(a, old["key"])  # here, at once
    took = wait_until(lambda: refused(b, old["key"]), WITHIN_A_REFRESH)
    if fleet.redis:
        assert took < AT_ONCE
    assert chat(b, new["key"]).status_code == 200
    assert listed(b)[old["key_id"]]["active"] is False

    request_id = chat(b, new["key"]).headers["x-omen-request-id"]
    with StoreReader(fleet.database) as reader:
        wait_until(lambda: reader.get_request(request_id) is not None, 5)
        stored = reader.get_request(request_id)
    assert stored is not None and stored.key_id == new["key_id"]
    assert stored.instance == "b"


def test_an_instance_started_later_knows_the_fleets_keys(fleet: Fleet) -> None:
    a = fleet.start("a")
    kept, gone = make_key(a), make_key(a)
    revoke(a, gone["key_id"])

    c = fleet.start("c")

    assert chat(c, kept["key"]).status_code == 200
    assert refused(c, gone["key"])


def test_a_key_the_store_cannot_record_is_503_and_never_let_in(
    tmp_path: Path, upstreams: Upstreams
) -> None:
    import psycopg

    from tests.pg_support import admin_url

    def sessions_read_only(database: str, on: bool) -> None:
        """New sessions of the database refuse writes (or write again); the open ones end."""
        name = database.rsplit("/", 1)[1]
        setting = "SET default_transaction_read_only = on" if on else "RESET ALL"
        with psycopg.connect(admin_url(), autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" {setting}')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )

    with pg_database() as database:
        omen = start_omen(tmp_path, base_config(upstreams), extra_env={"OMEN_DATABASE": database})
        try:
            sessions_read_only(database, True)
            response = call(omen, "POST", "/admin/keys", {"container": "app"})

            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "store_unavailable"
            assert "omen_" not in response.text

            sessions_read_only(database, False)

            def stored_keys() -> list[Any]:  # written once the store takes writes again
                with StoreReader(database) as reader:
                    return reader.api_keys()

            wait_until(lambda: len(stored_keys()) == 1, 10)
            (row,) = stored_keys()
            assert row.active is False and row.revoked_by == "omen: not confirmed"
            with StoreReader(database) as reader:
                assert not [a for a in reader.audit_rows() if a.action == "key_create"]
        finally:
            omen.stop()


def test_a_leaked_key_is_refused_at_once_even_while_the_store_is_down(
    tmp_path: Path, upstreams: Upstreams
) -> None:
    import psycopg

    from tests.pg_support import admin_url

    def connections(database: str, allowed: bool) -> None:
        """Let the database take connections, or refuse them and end the open ones."""
        name = database.rsplit("/", 1)[1]
        with psycopg.connect(admin_url(), autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
            if not allowed:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )

    with pg_database() as database:
        omen = start_omen(tmp_path, base_config(upstreams), extra_env={"OMEN_DATABASE": database})
        try:
            leaked = make_key(omen)
            assert chat(omen, leaked["key"]).status_code == 200
            connections(database, False)  # the store can be neither read nor written

            response = revoke(omen, leaked["key_id"])

            assert response.status_code == 503, response.text
            assert "refused by this instance from now on" in response.json()["error"]["message"]
            assert refused(omen, leaked["key"])  # at once, store or no store
            connections(database, True)

            def revoked_in_store() -> bool:  # the revocation lands once the store is back
                with StoreReader(database) as reader:
                    rows = [r for r in reader.api_keys() if r.key_id == leaked["key_id"]]
                return bool(rows) and not rows[0].active

            wait_until(revoked_in_store, 15)
            assert refused(omen, leaked["key"])
        finally:
            connections(database, True)
            omen.stop()
