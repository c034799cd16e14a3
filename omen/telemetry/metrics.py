"""Prometheus metrics with the seed's names and labels, and bounded label values.

Labels only ever hold names from the config (containers, providers, models Omen serves),
fixed vocabularies (intents, strategies, statuses, reason kinds) or "other": never request
ids, keys or anything a client can make up, so a scraper's series count cannot explode.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from omen.routing import INTENTS
from omen_store import WriterStats

OTHER = "other"
_STATUSES = frozenset({200, 400, 401, 403, 404, 413, 429, 500, 502, 503, 504})
_STRATEGIES = frozenset(
    {"balanced", "cost-optimized", "latency-first", "quality-first", "explicit"}
)
_REASON_KINDS = frozenset({"rule", "strategy", "explicit", "steered", "local-only"})
_LATENCY_WINDOW = 500  # recent requests per provider for the percentile gauges


class Metrics:
    def __init__(self, containers: set[str], providers: set[str], models: set[str]) -> None:
        self.registry = CollectorRegistry()
        self.containers = containers | {"default"}
        self.providers = providers
        self.models = models
        r = self.registry
        self.requests = Counter(
            "omen_requests_total",
            "Requests answered, by outcome.",
            ["container", "provider", "model", "status"],
            registry=r,
        )
        self.duration = Histogram(
            "omen_request_duration_seconds",
            "Time from request to last byte.",
            ["container", "provider", "model"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.decisions = Counter(
            "omen_routing_decisions_total",
            "Routing decisions by strategy, winner and kind of reason.",
            ["strategy", "provider", "reason"],
            registry=r,
        )
        self.selections = Counter(
            "omen_provider_selections_total",
            "Providers chosen, by intent.",
            ["provider", "intent"],
            registry=r,
        )
        self.cost = Counter(
            "omen_cost_usd_total", "Spend in USD.", ["container", "provider"], registry=r
        )
        self.tokens = Counter(
            "omen_tokens_total",
            "Tokens by direction.",
            ["container", "provider", "type"],
            registry=r,
        )
        self.quota_usage = Gauge(
            "omen_quota_usage",
            "Usage of each configured limit (in the limit's unit).",
            ["container", "quota_type", "limit"],
            registry=r,
        )
        self.quota_exceeded = Counter(
            "omen_quota_exceeded_total",
            "Requests refused by a limit.",
            ["container", "quota_type"],
            registry=r,
        )
        self.health = Gauge(
            "omen_provider_health",
            "1 when the endpoint is healthy and not drained.",
            ["provider", "endpoint"],
            registry=r,
        )
        self.latency = Gauge(
            "omen_provider_latency_seconds",
            "Recent request latency per provider.",
            ["provider", "percentile"],
            registry=r,
        )
        self._recent: dict[str, deque[float]] = {}
        self.store = StoreCollector()
        r.register(self.store)

    # --- label hygiene -------------------------------------------------------------------

    def container(self, name: str) -> str:
        return name if name in self.containers else OTHER

    def provider(self, name: str | None) -> str:
        return name if name in self.providers else ("none" if name is None else OTHER)

    def model(self, name: str | None) -> str:
        return name if name in self.models else ("none" if name is None else OTHER)

    @staticmethod
    def intent(name: str | None) -> str:
        return name if name in INTENTS else OTHER

    # --- events --------------------------------------------------------------------------

    def request_done(
        self,
        *,
        container: str,
        provider: str | None,
        model: str | None,
        status: int,
        seconds: float,
        prompt_tokens: int,
        completion_tokens: int,
        cost: float,
    ) -> None:
        c, p, m = self.container(container), self.provider(provider), self.model(model)
        self.requests.labels(c, p, m, str(status) if status in _STATUSES else OTHER).inc()
        if provider is None:
            return
        self.duration.labels(c, p, m).observe(seconds)
        self.cost.labels(c, p).inc(cost)
        self.tokens.labels(c, p, "input").inc(prompt_tokens)
        self.tokens.labels(c, p, "output").inc(completion_tokens)
        if status < 400:
            recent = self._recent.setdefault(p, deque(maxlen=_LATENCY_WINDOW))
            recent.append(seconds)

    def decided(self, strategy: str, provider: str, intent: str, reason: str) -> None:
        kind = (
            "steered"
            if reason.startswith("budget ")
            else "local-only"
            if "local only" in reason
            else "rule"
            if " → rule " in reason
            else "explicit"
            if strategy == "explicit"
            else "strategy"
        )
        self.decisions.labels(
            strategy if strategy in _STRATEGIES else OTHER,
            self.provider(provider),
            kind if kind in _REASON_KINDS else OTHER,
        ).inc()
        self.selections.labels(self.provider(provider), self.intent(intent)).inc()

    def refused(self, container: str, limit: str) -> None:
        self.quota_exceeded.labels(self.container(container), limit).inc()

    def set_quota(self, container: str, limit_name: str, limit: float, used: float) -> None:
        self.quota_usage.labels(self.container(container), limit_name, f"{limit:g}").set(used)

    def set_store(self, stats: WriterStats) -> None:
        self.store.stats = stats

    def set_health(self, provider: str, endpoint: str, up: bool) -> None:
        self.health.labels(provider, endpoint).set(1.0 if up else 0.0)

    def render(self) -> bytes:
        for provider, recent in self._recent.items():
            ordered = sorted(recent)
            for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
                value = ordered[min(len(ordered) - 1, int(q * len(ordered)))]
                self.latency.labels(provider, name).set(value)
        return bytes(generate_latest(self.registry))


class StoreCollector(Collector):
    """The store writer's counters and gauges, from the stats of the last scrape.

    The writer keeps its own counts (it is in `store/`, which knows no Prometheus); a
    collector reports them as they are instead of mirroring them into Counter objects.
    """

    def __init__(self) -> None:
        self.stats = WriterStats()

    def collect(self) -> Iterator[Metric]:
        s = self.stats
        yield _gauge(
            "omen_store_up",
            "1 while the store takes writes, 0 while they fail.",
            0 if s.failure else 1,
        )
        yield _gauge(
            "omen_store_queue_depth",
            "Records waiting to be committed (queued, or held while writes fail).",
            s.queue_depth,
        )
        yield _gauge(
            "omen_store_lag_seconds",
            "Age of the oldest record neither committed nor spilled; a kill -9 loses this much.",
            s.lag_s,
        )
        if s.since_commit_s is not None:
            yield _gauge(
                "omen_store_seconds_since_commit",
                "Time since the store writer last committed.",
                s.since_commit_s,
            )
        yield _counter("omen_store_committed", "Records committed to the store.", s.committed)
        yield _counter("omen_store_batches", "Transactions the store writer committed.", s.batches)
        errors = CounterMetricFamily(
            "omen_store_write_errors",
            "Write errors: records the database refused, transactions that failed.",
            labels=["kind"],
        )
        errors.add_metric(["record"], s.failed)
        errors.add_metric(["batch"], s.failed_batches)
        yield errors
        yield _counter(
            "omen_store_dropped",
            "Records lost: offered after shutdown, or beyond what a failing store holds.",
            s.dropped,
        )
        yield _counter("omen_store_spilled", "Records written to the spill file.", s.spilled)
        yield _counter(
            "omen_store_replayed",
            "Records replayed from the spill file into the store.",
            s.replayed,
        )
        yield _gauge("omen_store_spill_bytes", "Size of the spill file.", s.spill_bytes)
        if s.last_error_at is not None:
            yield _gauge(
                "omen_store_last_error_timestamp_seconds",
                "Unix time of the last failed store write (the reason is in /ready and the log).",
                s.last_error_at,
            )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)
