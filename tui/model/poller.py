"""Poller: one look at the store and the daemon for the view on screen, as a Snapshot.

Runs in a thread worker. Only the active view's data is read, every store query is one of
`StoreReader`'s bounded ones (rollups, indexed ranges with a LIMIT), and the routing feed is
incremental: after the first read it asks only for rows past the last rowid it has seen.

A fleet's store holds every instance's probes: an endpoint is then one row whose health is
what the instances that probed it lately agree on, each instance's view kept beside it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from omen_store import (
    DrainRow,
    HealthRow,
    RequestRow,
    StoreError,
    StoreMissingError,
    StoreReader,
    display_store,
)
from omen_tui.client import AdminClient, AdminError
from omen_tui.model.budget import build_statuses
from omen_tui.model.filters import Filter
from omen_tui.model.fleet import agree, instance_views, newest_gpu
from omen_tui.model.periods import PERIODS, Periods, utc_day
from omen_tui.model.snapshot import (
    Alert,
    DaemonState,
    EndpointStatus,
    GpuData,
    GpuPoint,
    GpuStatus,
    OverviewData,
    ProvidersData,
    RoutingData,
    Snapshot,
    Totals,
)

FEED_SIZE = 300  # decisions kept in the routing view
LATENCY_WINDOW_S = 900  # p50/p95 and error rate over the last 15 minutes of requests
LATENCY_SAMPLE = 500
PROBE_WINDOW_S = 3600  # else p50/p95 of the health probes over the last hour
BURN_WINDOW_S = 3600  # burn rate: spend over the last hour (minute rollups)
GPU_WINDOW_S = 3600
ALERT_WINDOW_S = 7 * 86400
# A refused credential is tried again this often: the operator may have signed in again
# (`omen login` in another terminal) or been given a role meanwhile.
ADMIN_RETRY_S = 30.0

VIEWS = ("overview", "routing", "providers", "gpu")


class Poller:
    def __init__(
        self,
        database: Path | str,
        client: AdminClient,
        *,
        tz: ZoneInfo,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.database = database
        self.client = client
        self.tz = tz
        self.clock = clock
        self._reader: StoreReader | None = None
        self._open_lock = threading.Lock()
        self._admin: bool | None = None  # None: not asked yet
        self._admin_message = ""
        self._refused_at = 0.0
        self._feed_key: tuple[str, str, str] | None = None
        self._feed_rowid = 0
        self._last_seen: float | None = None  # when the daemon last answered
        self._talking_to: str | None = None  # the daemon's URL the admin state is about
        self._user: str | None = None  # who that daemon says the console acts as
        self._role: str | None = None
        self._sessions = SessionCounter()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def reset_feed(self) -> None:
        """The next routing read starts over (filter changed)."""
        self._feed_key = None

    # -- one poll ------------------------------------------------------------------------

    def fetch(self, view: str, filt: Filter, selection: str | None = None) -> Snapshot:
        now = self.clock()
        daemon = self._daemon_state()
        snapshot = Snapshot(now=now, daemon=daemon)
        try:
            reader = self.store()
        except StoreError as exc:
            snapshot.store_error = str(exc)
            reader = None
        if view == "overview":
            snapshot.overview = self._overview(reader, daemon, now, filt)
        elif view == "routing" and reader is not None:
            snapshot.routing = self._routing(reader, filt)
        elif view == "providers":
            snapshot.providers = self._providers(reader, daemon, now, filt)
        elif view == "gpu":
            snapshot.gpu = self._gpu(reader, daemon, now, filt, selection)
        return snapshot

    def store(self) -> StoreReader:
        """The shared read-only store connection, opened on first use (raises StoreError)."""
        with self._open_lock:
            if self._reader is None:
                try:
                    self._reader = StoreReader(self.database)
                except StoreMissingError:
                    where = display_store(self.database)
                    raise StoreError(
                        f"no store at {where} yet (it appears when `omen serve` starts)"
                    ) from None
            return self._reader

    # -- the daemon ----------------------------------------------------------------------

    def _daemon_state(self) -> DaemonState:
        state = DaemonState(url=self.client.base_url, last_seen=self._last_seen)
        try:
            self.client.health()
        except AdminError as exc:
            self._admin = None  # ask again once it is back
            state.message = exc.message
            return state
        if self.client.base_url != self._talking_to:  # another daemon of the fleet answers:
            self._talking_to = self.client.base_url  # is the key good there, what is it called
            self._admin = None
        state.url = self.client.base_url
        state.reachable = True
        state.last_seen = self._last_seen = self.clock()
        if self._admin is False and self.clock() - self._refused_at >= ADMIN_RETRY_S:
            self._admin = None
        if self._admin is None:  # at start, and when another daemon answers or this one is back
            self._user, self._role = self._whoami()
            self._admin_call(self.client.endpoints)
        state.admin = bool(self._admin)
        state.message = self._admin_message
        state.instance = self.client.instance if self.client.fleet else None
        state.user, state.role = self._user, self._role
        return state

    def _whoami(self) -> tuple[str | None, str | None]:
        """(e-mail or subject, role) of the credential sent, as the daemon sees it; an API key
        has no person to show, and a daemon without /admin/whoami says nothing."""
        try:
            answer = self.client.whoami()
        except AdminError:
            return None, None
        if answer is None:
            return None, None
        role = answer.get("role")
        person = answer.get("email") or answer.get("subject")
        shown = str(person) if person and answer.get("via") in ("oidc", "github") else None
        return shown, str(role) if role else None

    def _admin_call(self, call: Callable[[], Any]) -> Any:
        """An admin read; None when refused or failing (the reason kept for the header)."""
        try:
            result = call()
        except AdminError as exc:
            if exc.refused:
                self._admin = False
                self._refused_at = self.clock()
                self._admin_message = f"the admin API refused the key ({exc.message})"
            else:
                self._admin_message = exc.message
            return None
        self._admin = True
        self._admin_message = ""
        return result

    def _live(self, daemon: DaemonState, call: Callable[[], Any]) -> Any:
        if not daemon.reachable or self._admin is False:
            return None
        result = self._admin_call(call)
        daemon.admin = bool(self._admin)
        daemon.message = self._admin_message
        return result

    # -- 1 overview ----------------------------------------------------------------------

    def _overview(
        self, reader: StoreReader | None, daemon: DaemonState, now: float, filt: Filter
    ) -> OverviewData:
        live = self._live(daemon, self.client.containers)
        periods = Periods.at(now, self.tz)
        utc = Periods.at(now, ZoneInfo("UTC"))
        spend = {}
        overrides = {}
        rps: list[float] = []
        alerts: list[Alert] = []
        burn: dict[str, float] = {}
        sessions: dict[str, int] | None = None
        if reader is not None:
            spend = {p: reader.spend_by_container(utc_day(utc.starts[p])) for p in PERIODS}
            overrides = reader.budget_overrides()
            rps = _per_second(reader.requests_per_minute(now - 3600), now)
            alerts = _alerts(reader, now)
            burn = burn_rates(reader, now)
            sessions = self._sessions.read(reader, periods.starts["daily"])
        statuses = build_statuses(periods, spend, overrides, live, burn=burn, sessions=sessions)
        if live is None and daemon.reachable:
            for status in statuses:
                status.offline = "no admin access"
        statuses = [s for s in statuses if filt.matches_container(s.name)]
        alerts = [a for a in alerts if filt.matches_container(a.container)]
        totals = Totals(
            spend={p: sum(s.spend[p] for s in statuses) for p in PERIODS},
            requests_day=sum(s.requests_day for s in statuses),
            errors_day=sum(s.errors_day for s in statuses),
            rps_now=rps[-1] if rps else 0.0,
            burn_per_hour=sum(s.burn_per_hour for s in statuses),
        )
        return OverviewData(statuses, totals, rps, alerts)

    # -- 2 routing -----------------------------------------------------------------------

    def _routing(self, reader: StoreReader, filt: Filter) -> RoutingData:
        key = (filt.container, filt.provider, filt.instance)
        feed = partial(
            reader.recent_requests,
            container=filt.container or None,
            provider=filt.provider or None,
            instance=filt.instance or None,
            limit=FEED_SIZE,
        )
        # The fleet's names, from the probes' newest rows (one per instance and endpoint).
        instances = frozenset(row.instance for row in reader.latest_health())
        if self._feed_key == key:
            rows = feed(after_rowid=self._feed_rowid)
            if len(rows) < FEED_SIZE:
                self._advance(rows)
                return RoutingData(rows, replace=False, instances=instances)
        # First read, a new filter, or more arrived than the feed holds: start from the newest.
        rows = feed()
        self._feed_key = key
        self._feed_rowid = max((row.rowid for row in rows), default=0)
        if not rows:
            self._feed_rowid = reader.max_rowid()
        return RoutingData(rows, replace=True, instances=instances)

    def _advance(self, rows: list[RequestRow]) -> None:
        if rows:
            self._feed_rowid = max(self._feed_rowid, max(row.rowid for row in rows))

    # -- 3 providers ---------------------------------------------------------------------

    def _providers(
        self, reader: StoreReader | None, daemon: DaemonState, now: float, filt: Filter
    ) -> ProvidersData:
        live: list[dict[str, Any]] = self._live(daemon, self.client.endpoints) or []
        health = reader.latest_health() if reader is not None else []
        drains = reader.drains() if reader is not None else {}
        views = instance_views(health, live, now)
        fleet = len({view.instance for seen in views.values() for view in seen}) > 1
        by_key: dict[tuple[str, str], EndpointStatus] = {}
        if fleet:
            for (provider, endpoint), seen in views.items():
                mine = [v for v in seen if filt.matches_instance(v.instance)]
                by_key[(provider, endpoint)] = EndpointStatus(
                    provider, endpoint, "unknown", fleet=True, instances=mine
                )
        else:
            for row in health:
                by_key[(row.provider, row.endpoint)] = _from_health(row, live=daemon.reachable)
        for (provider, endpoint), drain in drains.items():
            status = by_key.setdefault(
                (provider, endpoint), EndpointStatus(provider, endpoint, "unknown", fleet=fleet)
            )
            _apply_drain(status, drain)
        live_in_flight: dict[tuple[str, str], int] = {}
        for item in live:
            key = (str(item.get("provider")), str(item.get("endpoint")))
            status = by_key.setdefault(key, EndpointStatus(key[0], key[1], "unknown", fleet=fleet))
            _apply_live(status, item)
            live_in_flight[key] = status.in_flight
        if fleet:
            talking = daemon.instance if daemon.reachable else None
            if talking is not None and not filt.matches_instance(talking):
                talking = None
            for key, status in by_key.items():
                agree(status, talking, live_in_flight.get(key))
        endpoints = [s for s in by_key.values() if filt.matches_provider(s.provider)]
        if reader is not None:
            _latencies(reader, endpoints, now)
        endpoints = [
            s
            for s in endpoints
            if filt.matches_text(s.provider, s.endpoint, s.url, s.health, s.last_error, *s.down_on)
        ]
        endpoints.sort(key=lambda s: (s.provider, s.endpoint))
        return ProvidersData(endpoints)

    # -- 4 GPU ---------------------------------------------------------------------------

    def _gpu(
        self,
        reader: StoreReader | None,
        daemon: DaemonState,
        now: float,
        filt: Filter,
        selection: str | None,
    ) -> GpuData:
        live: list[dict[str, Any]] = self._live(daemon, self.client.endpoints) or []
        live_by_key = {f"{e.get('provider')}/{e.get('endpoint')}": e for e in live}
        if reader is None:
            return GpuData([])
        drains = reader.drains()
        endpoints = []
        rows = [row for row in reader.latest_gpu() if filt.matches_instance(row.instance)]
        for row, in_flight, sampled_by in newest_gpu(rows):
            if not filt.matches_provider(row.provider):
                continue
            status = GpuStatus(
                row.provider,
                row.endpoint,
                row.ts,
                row.gpu_util_percent,
                row.vram_used_bytes,
                row.vram_total_bytes,
                in_flight,
                row.loaded_models,
            )
            drain = drains.get((row.provider, row.endpoint))
            status.drained = bool(drain and drain.drained)
            item = live_by_key.get(status.key)
            if item is not None:
                if sampled_by < 2:  # else the fleet's sum: the daemon counts its own only
                    status.in_flight = int(item.get("in_flight") or 0)
                status.drained = bool(item.get("drained"))
            names = [str(m.get("name")) for m in status.models]
            if filt.matches_text(status.endpoint, *names):
                endpoints.append(status)
        data = GpuData(endpoints)
        chosen = next((e for e in endpoints if e.key == selection), None)
        chosen = chosen or (endpoints[0] if endpoints else None)
        if chosen is not None:
            rows = reader.gpu_history(
                chosen.provider, chosen.endpoint, now - GPU_WINDOW_S, limit=720
            )
            data.history_key = chosen.key
            data.history = [
                GpuPoint(r.ts, r.gpu_util_percent, r.vram_used_bytes, r.vram_total_bytes)
                for r in rows
            ]
        return data


# -- helpers ---------------------------------------------------------------------------------


def _per_second(minutes: list[Any], now: float) -> list[float]:
    """60 per-minute request rates ending with the last full minute (gaps are zero)."""
    counts = {m.minute: m.requests for m in minutes}
    last_full = int(now // 60) * 60 - 60
    return [counts.get(last_full - 60 * i, 0) / 60 for i in range(59, -1, -1)]


def _alerts(reader: StoreReader, now: float) -> list[Alert]:
    alerts = []
    for row in reader.audit_rows(since_ts=now - ALERT_WINDOW_S, limit=200):
        if row.action != "budget_alert":
            continue
        after = row.after or {}
        alerts.append(
            Alert(
                ts=row.ts,
                container=row.target,
                period=str(after.get("period", "")),
                percent=after.get("percent_used"),
                spent=after.get("spent_usd"),
                budget=after.get("budget_usd"),
            )
        )
    return alerts


def _from_health(row: HealthRow, *, live: bool) -> EndpointStatus:
    """An endpoint from its last stored probe. With the daemon down that sample is history:
    the health is unknown, and the card says what the last probe found and when."""
    probed = "healthy" if row.healthy else "unhealthy"
    return EndpointStatus(
        row.provider,
        row.endpoint,
        probed if live else "unknown",
        probe_ms=row.latency_ms,
        last_error=row.error,
        in_flight=row.in_flight,
        checked_ts=row.ts,
        probe_health=probed,
    )


def _apply_drain(status: EndpointStatus, drain: DrainRow) -> None:
    """Drains are fleet-wide: one row per endpoint, whichever instance set it."""
    if drain.drained:
        status.drained, status.health = True, "drained"
        status.drain_reason, status.drain_actor = drain.reason, drain.actor
        status.drain_ts, status.drain_instance = drain.ts, drain.instance or None


def _apply_live(status: EndpointStatus, item: dict[str, Any]) -> None:
    """The daemon's live view wins over the last stored sample."""
    status.health = str(item.get("status") or status.health)
    status.url = item.get("url") or status.url
    status.in_flight = int(item.get("in_flight") or 0)
    status.drained = bool(item.get("drained"))
    if item.get("drain_reason"):
        status.drain_reason = item["drain_reason"]
    if item.get("probe_ms") is not None:
        status.probe_ms = float(item["probe_ms"])
    status.last_error = item.get("last_error") or status.last_error
    status.loaded_models = [str(m) for m in item.get("loaded_models") or [] if m]
    if status.error_rate is None and item.get("requests"):
        status.error_rate = float(item.get("error_rate") or 0.0)
        status.error_source = "daemon"


def _latencies(reader: StoreReader, endpoints: list[EndpointStatus], now: float) -> None:
    """p50/p95 and error rate from the last 15 minutes of requests, else from probes."""
    by_provider: dict[str, list[RequestRow]] = {}
    for provider in {s.provider for s in endpoints}:
        by_provider[provider] = reader.recent_requests(
            provider=provider, since_ts=now - LATENCY_WINDOW_S, limit=LATENCY_SAMPLE
        )
    for status in endpoints:
        rows = [r for r in by_provider.get(status.provider, []) if r.endpoint == status.endpoint]
        latencies = [r.latency_ms for r in rows if r.status < 400]
        if rows:
            status.sample = len(rows)
            status.error_rate = sum(1 for r in rows if r.status >= 500 or r.error) / len(rows)
            status.error_source = "requests"
        if latencies:
            status.p50_ms, status.p95_ms = percentile(latencies, 50), percentile(latencies, 95)
            status.latency_source = "requests"
            continue
        probes = [
            h.latency_ms
            for h in reader.health_history(
                status.provider, status.endpoint, now - PROBE_WINDOW_S, limit=120
            )
            if h.latency_ms is not None
        ]
        if probes:
            status.p50_ms, status.p95_ms = percentile(probes, 50), percentile(probes, 95)
            status.latency_source = "probes"
            status.sample = len(probes)


def burn_rates(reader: StoreReader, now: float) -> dict[str, float]:
    """USD per hour per container over the last hour, from the minute rollups (a range of
    at most 61 minutes × containers × providers rows, whatever the size of the store)."""
    since = int((now - BURN_WINDOW_S) // 60) * 60
    hours = max(now - since, 60.0) / 3600
    return {
        container: totals.cost_usd / hours
        for container, totals in reader.spend_by_container_since(since).items()
    }


class SessionCounter:
    """Distinct agent sessions per container today, read incrementally: the day's `ts` index
    range once, then only the rows inserted since (a rowid range), so a poll costs what
    arrived since the last one."""

    def __init__(self) -> None:
        self._day_start: float | None = None
        self._rowid = 0
        self._seen: set[tuple[str, str]] = set()

    def read(self, reader: StoreReader, day_start: float) -> dict[str, int]:
        if day_start != self._day_start:
            self._day_start, self._rowid, self._seen = day_start, 0, set()
        until = reader.max_rowid()
        if until > self._rowid:
            self._seen |= reader.container_sessions(
                day_start, after_rowid=self._rowid, until_rowid=until
            )
            self._rowid = until
        counts: dict[str, int] = {}
        for container, _ in self._seen:
            counts[container] = counts.get(container, 0) + 1
        return counts


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]
