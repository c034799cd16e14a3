"""Keys made through the admin API in the KeyRing: added and revoked while the daemon runs,
beside the config's keys, which a reload replaces without dropping the others; and what
KeySync does with another instance's announcement."""

from __future__ import annotations

import hmac
import threading
from pathlib import Path

import orjson
import pytest

from omen.auth import KeyRing, key_digest, key_id_of, new_key
from omen.config import OmenConfig, load_config
from omen.key_sync import KeySync
from omen_store import ApiKeyRow, KeyCreated, StoreWriter

ADMIN_KEY = "sk-omen-admin-0123456789"
APP_KEY = "sk-omen-app-0123456789"

CONFIG = f"""
[auth]
api_keys = [{{ key = "{ADMIN_KEY}", scope = "admin", name = "ops" }}]

[containers.app]
api_key = "{APP_KEY}"

[containers.web]
"""


def config_from(tmp_path: Path, text: str) -> OmenConfig:
    path = tmp_path / "omen.toml"
    path.write_text(text)
    return load_config(path, env={}).config


@pytest.fixture
def ring(tmp_path: Path) -> KeyRing:
    return KeyRing(config_from(tmp_path, CONFIG))


def made(ring: KeyRing, container: str | None = "app", scope: str = "user") -> tuple[str, str]:
    """A key made as `POST /admin/keys` makes one: (the key, its id)."""
    key = new_key()
    digest = key_digest(key)
    assert ring.add(key_id_of(digest), digest, scope, container)
    return key, key_id_of(digest)


def row(key: str, container: str | None = "app", *, revoked: bool = False) -> ApiKeyRow:
    digest = key_digest(key)
    return ApiKeyRow(
        key_id_of(digest),
        digest.hex(),
        container,
        "user",
        None,
        1.0,
        "key_admin",
        2.0 if revoked else None,
        "key_admin" if revoked else None,
        "a",
    )


def test_new_keys_are_long_random_and_recognisable() -> None:
    keys = {new_key() for _ in range(100)}

    assert len(keys) == 100
    assert all(key.startswith("omen_") and len(key) >= 40 for key in keys)


def test_an_added_key_works_at_once_bound_to_its_container(ring: KeyRing) -> None:
    key, key_id = made(ring)

    principal = ring.authenticate(key)
    assert principal is not None
    assert (principal.key_id, principal.scope, principal.container) == (key_id, "user", "app")


def test_a_container_may_have_several_active_keys_each_with_its_own_id(ring: KeyRing) -> None:
    first, first_id = made(ring)
    second, second_id = made(ring)

    ids = {p.key_id for p in map(ring.authenticate, (APP_KEY, first, second)) if p}
    assert ids == {key_id_of(key_digest(APP_KEY)), first_id, second_id}


def test_a_revoked_key_is_refused_at_once_and_the_others_still_work(ring: KeyRing) -> None:
    old, old_id = made(ring)
    new, _ = made(ring)

    assert ring.revoke(old_id) is True

    assert ring.authenticate(old) is None
    assert ring.authenticate(new) is not None
    assert ring.authenticate(APP_KEY) is not None


def test_a_revoked_key_never_comes_back(ring: KeyRing) -> None:
    key, key_id = made(ring)
    ring.revoke(key_id)

    assert ring.add(key_id, key_digest(key), "user", "app") is False
    assert ring.sync([row(key)]) == []  # a store row read before the revocation was written
    assert ring.authenticate(key) is None


def test_a_revocation_heard_before_the_key_keeps_it_out(ring: KeyRing) -> None:
    key = new_key()
    key_id = key_id_of(key_digest(key))

    assert ring.revoke(key_id) is False  # not known here yet
    ring.sync([row(key)])

    assert ring.authenticate(key) is None


def test_config_keys_are_not_revoked_by_the_ring(ring: KeyRing) -> None:
    app_id = key_id_of(key_digest(APP_KEY))

    assert ring.is_configured(app_id)
    assert ring.revoke(app_id) is False
    assert ring.authenticate(APP_KEY) is not None


def test_an_id_that_does_not_match_its_digest_is_not_added(ring: KeyRing) -> None:
    key = new_key()

    assert ring.add("key_000000000000", key_digest(key), "user", "app") is False
    assert ring.add(key_id_of(key_digest(key)), key_digest(key), "root", "app") is False
    assert ring.authenticate(key) is None


def test_sync_adds_active_rows_and_revokes_revoked_ones(ring: KeyRing) -> None:
    kept, gone = new_key(), new_key()
    changes = ring.sync([row(kept), row(gone)])
    assert len(changes) == 2

    changes = ring.sync([row(kept), row(gone, revoked=True)])

    assert changes == [f"{key_id_of(key_digest(gone))} revoked by key_admin"]
    assert ring.authenticate(kept) is not None
    assert ring.authenticate(gone) is None
    assert ring.sync([row(kept), row(gone, revoked=True)]) == []  # nothing new


def test_a_reload_keeps_the_keys_made_through_the_admin_api(ring: KeyRing, tmp_path: Path) -> None:
    key, _ = made(ring)
    other = tmp_path / "other"
    other.mkdir()

    ring.reconfigure(config_from(other, "[containers.app]\n"))

    assert ring.authenticate(key) is not None
    assert ring.authenticate(APP_KEY) is None  # gone from the config: gone
    assert ring.empty is True  # keyless is what the config says


def test_added_keys_are_compared_in_constant_time_too(
    ring: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    made(ring)
    made(ring)
    compared: list[bytes] = []
    real_compare = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append(a)
        return real_compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)

    assert ring.authenticate(ADMIN_KEY) is not None
    assert len(compared) == 4  # two from the config, two made: every one, after the match


def test_the_ring_holds_digests_of_added_keys_never_the_keys(ring: KeyRing) -> None:
    key, _ = made(ring)

    assert key not in repr(vars(ring))


def test_config_keys_are_described_by_where_they_are_written(ring: KeyRing) -> None:
    where = {entry.where: entry for entry in ring.configured}

    assert set(where) == {"auth.api_keys.0", "containers.app.api_key"}
    assert where["auth.api_keys.0"].name == "ops"
    assert where["containers.app.api_key"].container == "app"
    assert ADMIN_KEY not in repr(ring.configured)


def test_authenticating_while_keys_come_and_go_in_another_thread(ring: KeyRing) -> None:
    """Writers swap the entries whole: a reader never sees a half-made list."""
    steady, _ = made(ring)
    stop = threading.Event()
    failures: list[str] = []

    def churn() -> None:
        while not stop.is_set():
            _, key_id = made(ring)
            ring.revoke(key_id)

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        for _ in range(5000):
            if ring.authenticate(steady) is None:
                failures.append("steady key refused")
    finally:
        stop.set()
        worker.join()
    assert failures == []


# --- KeySync: another instance's announcements ------------------------------------------------


def announcement(key: str, event: str, origin: str = "another") -> bytes:
    digest = key_digest(key)
    message = {"event": event, "key_id": key_id_of(digest), "digest": digest.hex()}
    return orjson.dumps({**message, "container": "app", "scope": "user", "origin": origin})


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "omen.db"


def stored(store: Path, key: str, container: str = "app") -> None:
    """A key as another instance of the fleet records it."""
    writer = StoreWriter(store, instance="b")
    writer.start()
    digest = key_digest(key)
    writer.record_key(
        KeyCreated(1.0, key_id_of(digest), digest.hex(), container, "user", None, "x")
    )
    assert writer.flush()
    writer.close()


async def test_an_announced_revocation_applies_at_once(ring: KeyRing, store: Path) -> None:
    key, _ = made(ring)
    sync = KeySync(ring, store, "", "omen", "a")

    await sync.apply(announcement(key, "revoked"))

    assert ring.authenticate(key) is None


async def test_an_announced_key_is_let_in_only_when_the_store_has_it(
    ring: KeyRing, store: Path
) -> None:
    recorded, made_up = new_key(), new_key()
    stored(store, recorded)
    sync = KeySync(ring, store, "", "omen", "a")

    await sync.apply(announcement(recorded, "created"))
    await sync.apply(announcement(made_up, "created"))  # whoever can write to Redis

    assert ring.authenticate(recorded) is not None
    assert ring.authenticate(made_up) is None
    await sync.aclose()


@pytest.mark.parametrize(
    "data",
    [b"not json", b"[1]", b'{"event": "revoked", "key_id": "../etc"}', None, 7],
)
async def test_garbage_on_the_channel_changes_nothing(
    ring: KeyRing, store: Path, data: object
) -> None:
    key, _ = made(ring)

    await KeySync(ring, store, "", "omen", "a").apply(data)

    assert ring.authenticate(key) is not None


async def test_an_instance_skips_its_own_announcements(ring: KeyRing, store: Path) -> None:
    key, _ = made(ring)
    sync = KeySync(ring, store, "", "omen", "a")

    await sync.apply(announcement(key, "revoked", origin=sync._origin))

    assert ring.authenticate(key) is not None


async def test_the_channel_is_followed_again_after_the_connection_drops(
    ring: KeyRing, store: Path
) -> None:
    import asyncio

    import redis

    from tests.redis_support import redis_prefix, redis_url_or_skip

    url = redis_url_or_skip()
    instance = f"unit-{new_key()[5:15]}"
    sync = KeySync(ring, store, url, redis_prefix("keysync"), instance)
    first, second = made(ring), made(ring)
    control = redis.Redis.from_url(url)

    async def published_until(key: str) -> None:
        for _ in range(200):  # published again until heard: subscribing takes a moment
            control.publish(sync.channel, announcement(key, "revoked"))
            await asyncio.sleep(0.05)
            if ring.authenticate(key) is None:
                return
        pytest.fail("the revocation was not heard")

    follower = asyncio.create_task(sync.follow_redis())
    try:
        await published_until(first[0])
        cut = [
            control.client_kill_filter(_id=client["id"])  # the subscriber's connection is cut
            for client in control.client_list()
            if client["name"] == f"omen-keys-{instance}"
        ]
        assert cut
        await published_until(second[0])
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
        control.close()
        await sync.aclose()
