"""A fleet's store: every instance probes every endpoint from where it runs, and samples the
GPUs it can reach. These turn the per-instance rows into what the console shows: each
instance's view of an endpoint, what the views agree on, one GPU sample per box.
"""

from __future__ import annotations

from typing import Any

from omen_store import GpuRow, HealthRow
from omen_tui.model.snapshot import EndpointStatus, InstanceView

# A fleet instance whose newest probe of an endpoint is older than this stopped probing it
# (stopped, or retired): its view is shown but no longer counts.
FLEET_STALE_S = 600


def instance_views(
    health: list[HealthRow], live: list[dict[str, Any]], now: float
) -> dict[tuple[str, str], list[InstanceView]]:
    """Each instance's newest probe of each endpoint: from the store, else (the store cannot
    be read) from the daemon's `/admin/endpoints`, which relays the same rows."""
    views: dict[tuple[str, str], list[InstanceView]] = {}
    for row in health:
        views.setdefault((row.provider, row.endpoint), []).append(
            InstanceView(
                row.instance,
                row.healthy,
                row.ts,
                row.latency_ms,
                row.error,
                row.in_flight,
                fresh=now - row.ts <= FLEET_STALE_S,
            )
        )
    if health:
        return views
    for item in live:
        for seen in item.get("instances") or []:
            checked = float(seen.get("checked_at") or 0.0)
            views.setdefault((str(item.get("provider")), str(item.get("endpoint"))), []).append(
                InstanceView(
                    str(seen.get("instance") or ""),
                    bool(seen.get("healthy")),
                    checked,
                    seen.get("latency_ms"),
                    seen.get("error"),
                    int(seen.get("in_flight") or 0),
                    fresh=now - checked <= FLEET_STALE_S,
                )
            )
    return views


def agree(status: EndpointStatus, talking: str | None, live_in_flight: int | None) -> None:
    """A fleet endpoint's health and in-flight from its instances' fresh views: healthy when
    all see it up, unhealthy when all see it down, degraded when they differ (none probed it
    lately: what the daemon says, else unknown). In flight: the sum over the instances (each
    counts its own), the daemon `talking` to giving its live figure."""
    seen = status.seen_by
    if seen and not status.drained:
        up = sum(1 for view in seen if view.healthy)
        if up == len(seen):
            status.health = "healthy"
        else:
            status.health = "unhealthy" if up == 0 else "degraded"
    counts = {view.instance: view.in_flight for view in seen}
    if talking is not None and live_in_flight is not None:
        counts[talking] = live_in_flight
    status.in_flight = sum(counts.values())
    errors = [view.error for view in seen if not view.healthy and view.error]
    if errors:
        status.last_error = errors[0]
    ours = next((v for v in status.instances if v.instance == talking), None)
    newest = max(status.instances, key=lambda view: view.checked_ts, default=None)
    shown = ours or newest
    if shown is not None:
        status.checked_ts = shown.checked_ts
        status.probe_ms = shown.latency_ms if status.probe_ms is None else status.probe_ms
        status.probe_health = "healthy" if shown.healthy else "unhealthy"


def newest_gpu(rows: list[GpuRow]) -> list[tuple[GpuRow, int, int]]:
    """One sample per GPU endpoint — the newest, whichever instance took it — with the
    fleet's in-flight on it (the sum over the instances that sampled it lately) and how many
    instances those are."""
    newest: dict[tuple[str, str], GpuRow] = {}
    for row in rows:
        key = (row.provider, row.endpoint)
        if key not in newest or row.ts > newest[key].ts:
            newest[key] = row
    in_flight = dict.fromkeys(newest, 0)
    sampled_by = dict.fromkeys(newest, 0)
    for row in rows:
        key = (row.provider, row.endpoint)
        if newest[key].ts - row.ts <= FLEET_STALE_S:
            in_flight[key] += row.in_flight
            sampled_by[key] += 1
    return [(row, in_flight[key], sampled_by[key]) for key, row in newest.items()]
