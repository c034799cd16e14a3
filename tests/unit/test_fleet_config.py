"""A fleet's settings (server.database as a PostgreSQL URL, server.instance, fleet_refresh),
the PostgreSQL spelling of the store's SQL, and how instances take each other's drains and
budget overrides (omen.shared_state) — the parts that need no server; tests/store and
tests/integration/test_fleet.py run them against a real PostgreSQL."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from omen.config import ConfigError, load_config
from omen.daemon import spill_path
from omen.fleet import Fleet
from omen.limits.control import UsageControl
from omen.limits.memory import MemoryLimits
from omen.logview import format_row
from omen.shared_state import SharedState
from omen_store import BudgetOverrideRow, DrainRow, RequestRow, StoreWriter, display_store
from omen_store.pg import to_pg
from omen_store.spill import default_spill_path

URL = "postgresql://omen:hunter2@db.internal:5432/omen"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "omen.toml"
    path.write_text(text)
    return path


def test_a_postgresql_url_is_kept_as_written_and_a_path_is_resolved(tmp_path: Path) -> None:
    pg = load_config(write(tmp_path, f'[server]\ndatabase = "{URL}"\n'), env={}).config
    assert pg.server.database == URL
    file = load_config(write(tmp_path, '[server]\ndatabase = "data/omen.db"\n'), env={}).config
    assert file.server.database == tmp_path / "data" / "omen.db"
    from_env = load_config(write(tmp_path, ""), env={"OMEN_DATABASE": URL}).config
    assert from_env.server.database == URL


def test_a_url_of_another_database_is_refused_in_words(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, '[server]\ndatabase = "mysql://x@y/z"\n'), env={})
    assert "postgresql://" in str(caught.value) and "mysql://" in str(caught.value)


def test_instance_defaults_to_the_host_name_and_takes_the_environment(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, ""), env={}).config.server.instance == socket.gethostname()
    empty = load_config(write(tmp_path, '[server]\ninstance = ""\n'), env={}).config
    assert empty.server.instance == socket.gethostname()  # SPEC's example spells the default so
    named = load_config(write(tmp_path, ""), env={"OMEN_INSTANCE": "omen-b"}).config
    assert named.server.instance == "omen-b"
    refresh = load_config(write(tmp_path, '[server]\nfleet_refresh = "500ms"\n'), env={})
    assert refresh.config.server.fleet_refresh == pytest.approx(0.5)


def test_passwords_never_show_in_a_displayed_store() -> None:
    assert display_store(URL) == "postgresql://omen:***@db.internal:5432/omen"
    assert display_store("postgresql://db/omen") == "postgresql://db/omen"
    assert display_store(Path("/var/lib/omen/omen.db")) == "/var/lib/omen/omen.db"


def test_spill_file_of_a_postgresql_store_is_in_the_instance_state_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_spill_path(URL, "omen/a") == tmp_path / "omen" / "omen_a-spill.jsonl"
    assert default_spill_path(Path("/x/omen.db")) == Path("/x/omen.db-spill.jsonl")
    assert spill_path(URL, Path("spill.jsonl")) == Path("spill.jsonl")
    assert spill_path(Path("/x/omen.db"), Path("s.jsonl")) == Path("/x/s.jsonl")
    writer = StoreWriter(URL, instance="a")  # not started: nothing connects
    assert writer.spill.path == tmp_path / "omen" / "a-spill.jsonl"


@pytest.mark.parametrize(
    ("sqlite", "postgres"),
    [
        ("SELECT a FROM t WHERE b = ? AND c > ?", "SELECT a FROM t WHERE b = %s AND c > %s"),
        (
            "SELECT x FROM requests NOT INDEXED WHERE seq > ?",
            "SELECT x FROM requests WHERE seq > %s",
        ),
        (
            "SELECT DISTINCT c FROM requests INDEXED BY requests_session_ts WHERE ts >= ?",
            "SELECT DISTINCT c FROM requests WHERE ts >= %s",
        ),
        ("SELECT c, sum(x) FROM t GROUP BY +c", "SELECT c, sum(x) FROM t GROUP BY c"),
        ("BEGIN IMMEDIATE", "BEGIN"),
        (
            "DELETE FROM t WHERE rowid IN (SELECT rowid FROM t)",
            "DELETE FROM t WHERE ctid IN (SELECT ctid FROM t)",
        ),
        ("VALUES (:container, :set_daily = 1)", "VALUES (%(container)s, %(set_daily)s = 1)"),
        # In a literal, ? and :name are text, and % is escaped for psycopg everywhere.
        ("SELECT '?:x%' , ?", "SELECT '?:x%%' , %s"),
    ],
)
def test_the_store_sql_in_postgresql_spelling(sqlite: str, postgres: str) -> None:
    assert to_pg(sqlite) == postgres


# --- shared operator state ------------------------------------------------------------------


def fleet_and_usage(tmp_path: Path) -> tuple[Fleet, UsageControl]:
    config = load_config(
        write(
            tmp_path,
            '[providers.ollama]\nendpoints = [{ name = "gpu-a", url = "http://127.0.0.1:1" }]\n'
            "[containers.app]\nbudget = { daily = 10.0 }\n",
        ),
        env={},
    ).config
    writer = StoreWriter(tmp_path / "omen.db")  # not started: records are only queued
    return Fleet(config, writer), UsageControl(config, MemoryLimits(), writer)


def drain(ts: float, drained: bool = True, instance: str = "b") -> DrainRow:
    return DrainRow(
        "ollama", "gpu-a", drained, "maintenance" if drained else None, "ops", ts, instance
    )


def test_a_newer_drain_through_another_instance_applies_once(tmp_path: Path) -> None:
    fleet, usage = fleet_and_usage(tmp_path)
    shared = SharedState(URL, "a")
    changed = shared.apply(fleet, usage, {("ollama", "gpu-a"): drain(100.0)}, {})
    assert changed == ["ollama/gpu-a drained by ops via b"]
    state = fleet.endpoints[("ollama", "gpu-a")]
    assert state.drained and state.drain_reason == "maintenance"
    assert shared.apply(fleet, usage, {("ollama", "gpu-a"): drain(100.0)}, {}) == []
    shared.apply(fleet, usage, {("ollama", "gpu-a"): drain(101.0, drained=False)}, {})
    assert not state.drained


def test_an_older_row_never_undoes_this_instance_own_newer_change(tmp_path: Path) -> None:
    fleet, usage = fleet_and_usage(tmp_path)
    shared = SharedState(URL, "a")
    fleet.set_drained("ollama", "gpu-a", False, None)
    shared.note_drain("ollama", "gpu-a", 200.0)  # undrained here at 200, not yet in the store
    assert shared.apply(fleet, usage, {("ollama", "gpu-a"): drain(150.0)}, {}) == []
    assert not fleet.endpoints[("ollama", "gpu-a")].drained


def test_a_budget_override_through_another_instance_applies(tmp_path: Path) -> None:
    fleet, usage = fleet_and_usage(tmp_path)
    shared = SharedState(URL, "a")
    assert usage.specs["app"].budget_daily == 10.0
    row = BudgetOverrideRow("app", 2.5, None, 40.0, 300.0, "ops", "b")
    assert shared.apply(fleet, usage, {}, {"app": row}) == ["budget of app set by ops via b"]
    assert usage.specs["app"].budget_daily == 2.5
    assert usage.specs["app"].budget_monthly == 40.0
    assert shared.apply(fleet, usage, {}, {"app": row}) == []  # seen: nothing to do
    cleared = BudgetOverrideRow("app", None, None, None, 301.0, "ops", "b")
    shared.apply(fleet, usage, {}, {"app": cleared})
    assert usage.specs["app"].budget_daily == 10.0  # back to the configured budget


def test_a_log_line_names_the_instance_that_served_it() -> None:
    row = RequestRow(
        "req_1",
        0.0,
        "app",
        None,
        "chat",
        "auto",
        "m",
        "ollama",
        "gpu-a",
        "code",
        "cost",
        False,
        200,
        12.0,
        None,
        3,
        4,
        instance="omen-b",
    )
    assert " req_1@omen-b " in format_row(row)
    row.instance = ""
    assert " req_1 " in format_row(row)
