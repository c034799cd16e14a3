"""What one poll hands the views: plain dataclasses, built in a worker thread, read on the UI."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omen_store import RequestRow
from omen_tui.model.budget import ContainerStatus


@dataclass(slots=True)
class DaemonState:
    """What the console knows about the daemon after its last look."""

    url: str  # the daemon talked to (of the --url ones, the first that answers)
    reachable: bool = False
    admin: bool = False  # the admin API accepted our key
    message: str = ""  # why not, in words
    last_seen: float | None = None  # when it last answered /health (None: not this session)
    instance: str | None = None  # its name, in a fleet (from /admin/endpoints)
    # Who the daemon says the console acts as (GET /admin/whoami): an operator's e-mail or
    # subject (None for an API key, or a daemon that cannot say), and their role.
    user: str | None = None
    role: str | None = None  # "admin" | "viewer"

    @property
    def actions_ok(self) -> bool:
        return self.reachable and self.admin

    @property
    def viewer(self) -> bool:
        """Signed in with a viewer group's token: the views only, no actions."""
        return self.reachable and self.role == "viewer"


@dataclass(slots=True)
class Totals:
    spend: dict[str, float] = field(default_factory=dict)  # period -> USD, all containers
    requests_day: int = 0
    errors_day: int = 0
    rps_now: float = 0.0  # requests per second over the last full minute
    burn_per_hour: float = 0.0  # USD per hour over the last hour, all containers shown


@dataclass(slots=True)
class Alert:
    ts: float
    container: str
    period: str
    percent: float | None
    spent: float | None
    budget: float | None


@dataclass(slots=True)
class OverviewData:
    containers: list[ContainerStatus]
    totals: Totals
    rps: list[float]  # requests/s per minute over the last hour, oldest first
    alerts: list[Alert]


@dataclass(slots=True)
class RoutingData:
    rows: list[RequestRow]
    replace: bool  # True: these rows are the whole feed; False: append them
    instances: frozenset[str] = frozenset()  # the instance names the store's probes carry


@dataclass(slots=True)
class InstanceView:
    """How one instance of a fleet sees an endpoint: its newest probe."""

    instance: str
    healthy: bool
    checked_ts: float
    latency_ms: float | None = None
    error: str | None = None
    in_flight: int = 0
    fresh: bool = True  # probed lately (an instance that stopped probing is left out)


@dataclass(slots=True)
class EndpointStatus:
    provider: str
    endpoint: str
    health: str  # healthy | unhealthy | degraded | cooling | drained | unknown
    url: str | None = None
    probe_ms: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    latency_source: str = ""  # "requests" (last 15 min) or "probes" (last hour)
    error_rate: float | None = None
    error_source: str = ""  # "requests" (last 15 min) or "daemon" (its last 20 calls)
    sample: int = 0  # requests (or probes) the latency is over
    in_flight: int = 0
    drained: bool = False
    drain_reason: str | None = None
    drain_actor: str | None = None
    drain_ts: float | None = None
    last_error: str | None = None
    checked_ts: float | None = None
    probe_health: str | None = None  # what the last stored probe found
    loaded_models: list[str] = field(default_factory=list)
    # A fleet (a store holding several instances' probes): each instance's view, by name;
    # `health` is then what the fresh ones agree on (degraded: some see it down).
    fleet: bool = False
    instances: list[InstanceView] = field(default_factory=list)
    drain_instance: str | None = None  # through which instance the drain was set

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.endpoint}"

    @property
    def seen_by(self) -> list[InstanceView]:
        """The instances that probed it lately."""
        return [view for view in self.instances if view.fresh]

    @property
    def down_on(self) -> list[str]:
        return [view.instance for view in self.seen_by if not view.healthy]


@dataclass(slots=True)
class ProvidersData:
    endpoints: list[EndpointStatus]


@dataclass(slots=True)
class GpuPoint:
    ts: float
    util: float | None
    vram_used: int | None
    vram_total: int | None


@dataclass(slots=True)
class GpuStatus:
    provider: str
    endpoint: str
    ts: float
    util: float | None
    vram_used: int | None
    vram_total: int | None
    in_flight: int
    models: list[dict[str, Any]]
    drained: bool = False

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.endpoint}"


@dataclass(slots=True)
class GpuData:
    endpoints: list[GpuStatus]
    history_key: str | None = None  # which endpoint `history` is for
    history: list[GpuPoint] = field(default_factory=list)


@dataclass(slots=True)
class Snapshot:
    now: float
    daemon: DaemonState
    store_error: str | None = None
    overview: OverviewData | None = None
    routing: RoutingData | None = None
    providers: ProvidersData | None = None
    gpu: GpuData | None = None
