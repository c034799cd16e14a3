"""Operator state a fleet shares through its PostgreSQL store: drains, budget overrides and
the keys made through the admin API (applied by omen.key_sync).

A drain or a budget set through any instance is written to the store (drains,
budget_overrides) like on a single instance; every instance re-reads both tables each
`server.fleet_refresh` and applies what another instance changed, so the whole fleet follows
within one refresh. Each instance remembers when it last took each endpoint's drain state
and each container's overrides (from the store or from its own admin API): a row applies
only when it is newer, so an instance's own change, queued for the store but not yet written,
is never undone by the older row still there. The same read brings the other instances'
newest health samples, which `/admin/endpoints` shows beside this instance's own view.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from omen.fleet import Fleet
from omen.limits.control import UsageControl
from omen_store import (
    ApiKeyRow,
    BudgetOverrideRow,
    DrainRow,
    HealthRow,
    StoreError,
    StoreReader,
)

log = logging.getLogger("omen.fleet")


@dataclass(slots=True)
class SharedState:
    database: str
    instance: str
    drain_marks: dict[tuple[str, str], float] = field(default_factory=dict)
    override_marks: dict[str, float] = field(default_factory=dict)
    # The newest health sample of every endpoint as each instance sees it (this one's too).
    views: list[HealthRow] = field(default_factory=list)
    _reader: StoreReader | None = None

    def note_drain(self, provider: str, endpoint: str, ts: float) -> None:
        """This instance drained or undrained an endpoint at `ts` (its admin API). The store
        stamps a change later than the one it replaces even from a clock that is behind
        (store.batch), so the mark follows the same rule: older rows cannot undo this one."""
        key = (provider, endpoint)
        self.drain_marks[key] = _later(ts, self.drain_marks.get(key))

    def note_override(self, container: str, ts: float) -> None:
        self.override_marks[container] = _later(ts, self.override_marks.get(container))

    def seen_drain(self, provider: str, endpoint: str, ts: float) -> None:
        """The store's row as read at startup: applied already."""
        self.drain_marks[(provider, endpoint)] = ts

    def seen_override(self, container: str, ts: float) -> None:
        self.override_marks[container] = ts

    def apply(
        self,
        fleet: Fleet,
        usage: UsageControl,
        drains: dict[tuple[str, str], DrainRow],
        overrides: dict[str, BudgetOverrideRow],
    ) -> list[str]:
        """Take every row newer than what this instance last took; returns what changed, in
        words (for the log)."""
        changed: list[str] = []
        for key, row in drains.items():
            if row.ts <= self.drain_marks.get(key, 0.0):
                continue
            self.drain_marks[key] = row.ts
            state = fleet.endpoints.get(key)
            if state is None or (state.drained, state.drain_reason) == (
                row.drained,
                row.reason if row.drained else None,
            ):
                continue
            fleet.set_drained(row.provider, row.endpoint, row.drained, row.reason)
            verb = "drained" if row.drained else "undrained"
            changed.append(
                f"{row.provider}/{row.endpoint} {verb} by {row.actor} via {row.instance}"
            )
        for name, override in overrides.items():
            if override.ts <= self.override_marks.get(name, 0.0):
                continue
            self.override_marks[name] = override.ts
            if usage.take_override(name, override):
                changed.append(f"budget of {name} set by {override.actor} via {override.instance}")
        return changed

    def read(
        self,
    ) -> tuple[dict[tuple[str, str], DrainRow], dict[str, BudgetOverrideRow], list[ApiKeyRow]]:
        """One round's worth of the shared tables (in a worker thread)."""
        if self._reader is None:
            self._reader = StoreReader(self.database)
        try:
            self.views = self._reader.latest_health()
            reader = self._reader
            return reader.drains(), reader.budget_overrides(), reader.api_keys()
        except StoreError:
            self.close()  # reopened next round: the server may have restarted
            raise

    async def run(
        self,
        interval: float,
        fleet: Callable[[], Fleet],
        usage: UsageControl,
        keys: Callable[[list[ApiKeyRow]], None],
    ) -> None:
        """Follow the other instances until cancelled (`keys` takes the keys made and revoked
        through any of them: omen.key_sync); a store that cannot be read is retried each round
        and said once."""
        failing = False
        while True:
            await asyncio.sleep(interval)
            try:
                drains, overrides, api_keys = await asyncio.to_thread(self.read)
            except StoreError as exc:
                if not failing:
                    log.warning("fleet: cannot read the shared state: %s; retrying", exc)
                failing = True
                continue
            if failing:
                log.info("fleet: reading the shared state again")
                failing = False
            for change in self.apply(fleet(), usage, drains, overrides):
                log.info("fleet: %s", change)
            keys(api_keys)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def _later(ts: float, before: float | None) -> float:
    """As store.batch stamps a change that replaces the row stamped `before`."""
    return ts if before is None or ts > before else before + 0.001
