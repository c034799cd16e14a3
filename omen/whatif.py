"""`omen whatif`: the period's stored routing decisions ranked again under another strategy,
prefer_local, quality threshold or price list, by the router's own `rank`, with no upstream
called; actual vs what-if cost, local share, estimated latency and quality per container.

Only `auto` requests with stored options are re-routed; requests for an explicit model (or
with no stored options) are counted as they were on both sides. A decision whose pick does
not change keeps its recorded cost and observed latency unless `--price` names its model, so
the difference shown is what the policy or price change itself would do.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import orjson

from omen.config import ConfigError, OmenConfig, find_config_path, load_config, parse_duration
from omen.config.model import CACHE_SHARES
from omen.policy import Policies, provider_info
from omen.routing import STRATEGIES, Option, ProviderInfo, Rule, Weights, rank, rule_matches
from omen.routing.snapshot import model_names, same_model
from omen_store import StoreError, StoreReader, is_postgres

PROG = "omen whatif"
CHUNK_ROWS = 5000  # rows fetched per step: memory stays flat however long the period is
PriceKey = tuple[str, str]  # (provider, model); model "*": every model of that provider

_COLUMNS = (
    "container, requested_model, provider, model, strategy, intent, latency_ms, "
    "prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, cost_usd, decision"
)


# --- what the operator asks -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WhatIf:
    """The changes to try; None keeps what each decision (or its container's config) had."""

    strategy: str | None = None
    prefer_local: bool | None = None
    quality_threshold: float | None = None
    prices: Mapping[PriceKey, tuple[float, float]] = field(default_factory=dict)  # $/1k in, out


def parse_price(text: str) -> tuple[PriceKey, tuple[float, float]]:
    """`PROVIDER.MODEL=IN/OUT` in USD per 1k tokens (one number: the same for both)."""
    usage = (
        f"{text!r} is not PROVIDER.MODEL=IN/OUT in USD per 1k tokens "
        "(e.g. openai.gpt-4o=0.0025/0.01, or ollama.*=0.0001/0.0001)"
    )
    key, equals, value = text.partition("=")
    provider, dot, model = key.strip().partition(".")
    if not equals or not dot or not provider or not model:
        raise argparse.ArgumentTypeError(usage)
    parts = value.strip().removeprefix("$").split("/")
    try:
        numbers = [float(part.strip().removeprefix("$")) for part in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(usage) from None
    if len(numbers) not in (1, 2) or not all(math.isfinite(n) and n >= 0 for n in numbers):
        raise argparse.ArgumentTypeError(usage + "; prices are numbers ≥ 0")
    return (provider, model), (numbers[0], numbers[-1])


# --- prices, quality and locality of the options --------------------------------------------


@dataclass(frozen=True, slots=True)
class Price:
    """USD per token; `cost` bills as the recorder does (fresh input, cache, output)."""

    input: float
    output: float
    cache_read: float
    cache_write: float

    def cost(self, prompt: int, completion: int, cached: int, cache_write: int) -> float:
        fresh = prompt - cached - cache_write
        if fresh < 0:  # max() is a function call: this runs for every option of every row
            fresh = 0
        return (
            fresh * self.input
            + cached * self.cache_read
            + cache_write * self.cache_write
            + completion * self.output
        )


class Catalog:
    """Each (provider, model)'s price, from `--price` first, then the config; None when
    neither knows it. Looked up once per pair: a million rows hold a handful of pairs."""

    def __init__(self, config: OmenConfig, overrides: Mapping[PriceKey, tuple[float, float]]):
        self._providers: dict[str, ProviderInfo] = {
            name: provider_info(p) for name, p in config.providers.items()
        }
        self._types = {name: p.type for name, p in config.providers.items()}
        self._overrides = dict(overrides)
        self._prices: dict[PriceKey, tuple[Price | None, bool]] = {}
        self._quality: dict[PriceKey, float | None] = {}

    def price(self, provider: str, model: str) -> tuple[Price | None, bool]:
        """(price per token or None, whether `--price` set it)."""
        key = (provider, model)
        found = self._prices.get(key)
        if found is None:
            found = self._prices[key] = self._find(provider, model)
        return found

    def _find(self, provider: str, model: str) -> tuple[Price | None, bool]:
        override = next(
            (
                self._overrides[(provider, name)]
                for name in (*model_names(model), "*")
                if (provider, name) in self._overrides
            ),
            None,
        )
        if override is not None:
            per_in, per_out = override[0] / 1000, override[1] / 1000
            # A cache read or write costs the provider's usual share of the input price,
            # as in the config when its cache prices are unset.
            read, write = CACHE_SHARES.get(self._types.get(provider, provider), (1.0, 1.0))
            return Price(per_in, per_out, per_in * read, per_in * write), True
        info = self._providers.get(provider)
        if info is None:
            return None, False
        spec = info.spec(model)
        price = Price(
            spec.input_cost_per_token,
            spec.output_cost_per_token,
            spec.cache_read_cost_per_token,
            spec.cache_write_cost_per_token,
        )
        return price, False

    def quality(self, provider: str, model: str) -> float | None:
        key = (provider, model)
        if key not in self._quality:
            info = self._providers.get(provider)
            self._quality[key] = None if info is None else info.spec(model).quality
        return self._quality[key]

    def local(self, provider: str) -> bool:
        info = self._providers.get(provider)
        return info.local if info is not None else provider == "ollama"


# --- the tallies -----------------------------------------------------------------------------


@dataclass(slots=True)
class Side:
    """One column group of the table: what happened, or what would have."""

    cost: float = 0.0
    local: int = 0
    latency_ms: float = 0.0
    quality: float = 0.0
    rated: int = 0  # requests whose option had a quality score

    def add(self, cost: float, local: bool, latency_ms: float, quality: float | None) -> None:
        self.cost += cost
        self.local += local
        self.latency_ms += latency_ms
        if quality is not None:
            self.quality += quality
            self.rated += 1

    def summary(self, requests: int) -> dict[str, float | None]:
        return {
            "cost_usd": round(self.cost, 6),
            "local_share": round(self.local / requests, 4) if requests else None,
            "est_latency_ms": round(self.latency_ms / requests, 1) if requests else None,
            "mean_quality": round(self.quality / self.rated, 4) if self.rated else None,
        }


@dataclass(slots=True)
class Tally:
    requests: int = 0  # served requests, counted on both sides
    rerouted: int = 0  # `auto` decisions ranked again
    changed: int = 0  # of those, how many would have gone elsewhere
    unchanged: int = 0  # explicit model, or no stored options: as they were
    skipped: int = 0  # refused or failed before any provider: no cost, not counted
    unpriced: int = 0  # re-routed decisions with an option no price list knows
    actual: Side = field(default_factory=Side)
    whatif: Side = field(default_factory=Side)

    def merge(self, other: Tally) -> None:
        for name in ("requests", "rerouted", "changed", "unchanged", "skipped", "unpriced"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for mine, theirs in ((self.actual, other.actual), (self.whatif, other.whatif)):
            mine.cost += theirs.cost
            mine.local += theirs.local
            mine.latency_ms += theirs.latency_ms
            mine.quality += theirs.quality
            mine.rated += theirs.rated

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "rerouted": self.rerouted,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "unpriced": self.unpriced,
            "actual": self.actual.summary(self.requests),
            "whatif": self.whatif.summary(self.requests),
        }


@dataclass(frozen=True, slots=True)
class _Policy:
    strategy: str | None
    prefer_local: bool
    quality_threshold: float
    weights: Weights
    rules: dict[str, Rule]
    difficulty_weight: float


# --- re-routing -------------------------------------------------------------------------------


class Rerouter:
    """Feeds stored rows through `rank` under the what-if policy and tallies both sides."""

    def __init__(self, config: OmenConfig, whatif: WhatIf) -> None:
        self.whatif = whatif
        self.catalog = Catalog(config, whatif.prices)
        self._policies = Policies(config)
        self._resolved: dict[str, _Policy] = {}
        self.tallies: dict[str, Tally] = {}

    def _policy(self, container: str) -> _Policy:
        policy = self._resolved.get(container)
        if policy is None:
            own = self._policies.for_container(container)
            w = self.whatif
            policy = self._resolved[container] = _Policy(
                w.strategy,
                own.prefer_local if w.prefer_local is None else w.prefer_local,
                own.quality_threshold if w.quality_threshold is None else w.quality_threshold,
                own.weights,
                own.rules,
                own.difficulty_weight,
            )
        return policy

    def add_rows(self, rows: Iterable[Sequence[Any]]) -> None:
        for row in rows:
            self.add(*row)

    def add(
        self,
        container: str,
        requested_model: str,
        provider: str | None,
        model: str | None,
        strategy: str | None,
        intent: str | None,
        latency_ms: float,
        prompt: int,
        completion: int,
        cached: int,
        cache_write: int,
        cost: float,
        decision: str | bytes | None,
    ) -> None:
        """One stored row: both sides into its container's tally. Runs a million times, so
        it indexes the stored JSON directly; a row it cannot read stays as it was."""
        tally = self.tallies.get(container)
        if tally is None:
            tally = self.tallies[container] = Tally()
        if provider is None:
            tally.skipped += 1
            return
        tally.requests += 1
        try:
            parsed = orjson.loads(decision) if decision else None
        except orjson.JSONDecodeError:  # a damaged row: counted as it was
            parsed = None
        details: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
        options = details.get("options")
        if not isinstance(options, list):
            options = None
        served_model = _served_model(details, provider, model or "")
        served = _find(options, provider, served_model) if options else None
        quality: float | None
        if served is not None:
            local, quality = bool(served.get("local")), _number(served.get("quality"))
        else:
            local = self.catalog.local(provider)
            quality = self.catalog.quality(provider, served_model)
        tally.actual.add(cost, local, latency_ms, quality)
        outcome = None
        if requested_model == "auto" and options:
            try:
                outcome = self._reroute(
                    container, provider, served_model, strategy, intent, latency_ms,
                    (prompt, completion, cached, cache_write), cost, details, options,
                )  # fmt: skip
            except (KeyError, TypeError, ValueError, AttributeError):
                outcome = None  # a decision recorded in a shape this omen does not know
        if outcome is None:
            tally.unchanged += 1
            tally.whatif.add(cost, local, latency_ms, quality)
            return
        pick, billed, same, unpriced = outcome
        tally.rerouted += 1
        tally.changed += not same
        tally.unpriced += unpriced
        tally.whatif.add(billed, pick.local, latency_ms if same else pick.latency_ms, pick.quality)

    def _reroute(
        self,
        container: str,
        provider: str,
        served_model: str,
        strategy: str | None,
        intent: str | None,
        latency_ms: float,
        tokens: tuple[int, int, int, int],
        cost: float,
        details: dict[str, Any],
        options: list[dict[str, Any]],
    ) -> tuple[Option, float, bool, bool]:
        """(the what-if pick, what it would be billed, whether it is what answered, whether
        an option had no price) for one `auto` decision."""
        policy = self._policy(container)
        price_of = self.catalog.price
        unpriced = False
        ranked: list[Option] = []
        billed: dict[int, float] = {}  # id(option) -> what it would be billed
        for stored in _viable(options, details):
            name, model_name = stored["provider"], stored["model"]
            price, overridden = price_of(name, model_name)
            is_served = name == provider and (
                model_name == served_model or same_model(model_name, served_model)
            )
            if price is None:  # no price list knows it: what was billed, or the estimate
                unpriced = True
                est = own = cost if is_served else float(stored["est_cost"])
            else:
                est = price.cost(*tokens)
                own = cost if is_served and not overridden else est
            option = Option(
                name,
                model_name,
                bool(stored["local"]),
                float(stored["quality"]),
                est,
                float(stored["latency_ms"]),
                True,
                own=bool(stored.get("own")),  # decisions before hybrid mode have no "own"
            )
            billed[id(option)] = own
            ranked.append(option)
        # What the request itself ranked with (metadata.prefer_local, budget steering), when
        # the decision recorded it and the what-if does not change it.
        prefer_local, threshold = policy.prefer_local, policy.quality_threshold
        if self.whatif.prefer_local is None and isinstance(details.get("prefer_local"), bool):
            prefer_local = details["prefer_local"]
        stored_threshold = details.get("quality_threshold")
        if self.whatif.quality_threshold is None and isinstance(stored_threshold, int | float):
            threshold = float(stored_threshold)
        ranked, _ = rank(
            ranked,
            policy.strategy or strategy or "balanced",
            prefer_local=prefer_local,
            quality_threshold=threshold,
            weights=policy.weights,
            difficulty=_difficulty(details),
            difficulty_weight=policy.difficulty_weight,
        )
        rule = policy.rules.get(intent or "")
        if rule is not None:
            ranked = _rule_first(ranked, rule)
        pick = ranked[0]
        same = pick.provider == provider and same_model(pick.model, served_model)
        return pick, billed[id(pick)], same, unpriced

    def total(self) -> Tally:
        total = Tally()
        for tally in self.tallies.values():
            total.merge(tally)
        return total


def _find(options: list[Any], provider: str, model: str) -> dict[str, Any] | None:
    """The stored option for what answered, if the decision lists it."""
    for o in options:
        if isinstance(o, dict) and o.get("provider") == provider:
            name = o.get("model")
            if name == model or (isinstance(name, str) and same_model(name, model)):
                return o
    return None


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _difficulty(details: Any) -> float | None:
    """The intent model's 0..1 estimate stored with the decision (None before it existed)."""
    intent = details.get("intent")
    return _number(intent.get("difficulty")) if isinstance(intent, dict) else None


def _served_model(details: dict[str, Any], provider: str, model: str) -> str:
    """The routing name of what answered: the last attempt at this provider (a stream's
    row may carry the upstream's own name for the model, e.g. with a date suffix)."""
    attempts = details.get("attempts")
    if isinstance(attempts, list):
        for attempt in reversed(attempts):
            if isinstance(attempt, dict) and attempt.get("provider") == provider:
                return str(attempt.get("model") or model)
    return model


def _viable(options: list[dict[str, Any]], details: Any) -> list[dict[str, Any]]:
    """The options that had a healthy endpoint then (the router lists the others last, as a
    last resort, and in `excluded`); all of them when none had."""
    down = {
        (e.get("provider"), e.get("model"))
        for e in details.get("excluded") or ()
        if isinstance(e, dict) and e.get("why") == "no healthy endpoint"
    }
    if not down:
        return options
    up = [o for o in options if (o.get("provider"), o.get("model")) not in down]
    return up or options


def _rule_first(ranked: list[Option], rule: Rule) -> list[Option]:
    """An intent rule puts its provider's options first, as `Router.route` does after `rank`
    (strict: only those, when it has any)."""
    matching = rule_matches(ranked, rule)
    if not matching:
        return ranked
    if rule.strict:
        return matching
    return matching + [o for o in ranked if o not in matching]


# --- the store ---------------------------------------------------------------------------------


def scan(
    database: Path | str, rerouter: Rerouter, *, since_ts: float | None, container: str | None
) -> None:
    """Stream the period's rows (by the ts or container+ts index; never the bodies) into
    `rerouter`, CHUNK_ROWS at a time, from one consistent snapshot."""
    with StoreReader(database) as reader:  # refuses a missing, empty or too old store in words
        for rows in reader.stream_requests(
            _COLUMNS, since_ts=since_ts, container=container, chunk=CHUNK_ROWS
        ):
            rerouter.add_rows(rows)


# --- output ------------------------------------------------------------------------------------


def report_json(rerouter: Rerouter, since_ts: float | None, container: str | None) -> str:
    w = rerouter.whatif
    data = {
        "since_ts": since_ts,
        "container": container,
        "policy": {
            "strategy": w.strategy,
            "prefer_local": w.prefer_local,
            "quality_threshold": w.quality_threshold,
        },
        "prices_per_1k": {
            f"{p}.{m}": {"input": i, "output": o} for (p, m), (i, o) in w.prices.items()
        },
        "containers": {name: tally.as_dict() for name, tally in sorted(rerouter.tallies.items())},
        "total": rerouter.total().as_dict(),
    }
    return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()


def report_text(rerouter: Rerouter, since_ts: float | None, container: str | None) -> str:
    w = rerouter.whatif
    total = rerouter.total()
    period = (
        "since " + time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(since_ts))
        if since_ts is not None
        else "all stored requests"
    )
    scope = f"container {container}" if container else "all containers"
    changes = [
        f"strategy {w.strategy}" if w.strategy else "each decision's own strategy",
        f"prefer_local {'on' if w.prefer_local else 'off'}"
        if w.prefer_local is not None
        else "prefer_local as configured",
        f"quality threshold {w.quality_threshold:g}"
        if w.quality_threshold is not None
        else "quality threshold as configured",
    ]
    changes += [f"{p}.{m} at ${i:g}/${o:g} per 1k" for (p, m), (i, o) in w.prices.items()]
    lines = [f"{PROG}: {period}, {scope}", "what-if: " + "; ".join(changes), ""]
    if not total.requests and not total.skipped:
        return "\n".join([*lines, "no requests in this period"])
    head = (
        f"{'CONTAINER':<16} {'REQUESTS':>8} {'REROUTED':>8} {'CHANGED':>7}  "
        f"{'COST actual → what-if':<26} {'LOCAL':<13} {'EST LATENCY ms':<17} QUALITY"
    )
    lines.append(head)
    named = sorted(rerouter.tallies.items())
    for name, tally in [*named, ("TOTAL", total)]:
        if tally.requests == 0 and name != "TOTAL":
            continue
        a, f = tally.actual.summary(tally.requests), tally.whatif.summary(tally.requests)
        lines.append(
            f"{name[:16]:<16} {tally.requests:>8,} {tally.rerouted:>8,} {tally.changed:>7,}  "
            f"{_cost(a['cost_usd']) + ' → ' + _cost(f['cost_usd']):<26} "
            f"{_share(a['local_share']) + ' → ' + _share(f['local_share']):<13} "
            f"{_ms(a['est_latency_ms']) + ' → ' + _ms(f['est_latency_ms']):<17} "
            f"{_quality(a['mean_quality'])} → {_quality(f['mean_quality'])}"
        )
    lines += [
        "",
        f"re-routed: {_count(total.rerouted, '`auto` decision')} ranked again over their "
        f"stored options; {total.changed:,} of them would have gone elsewhere",
        f"unchanged: {_count(total.unchanged, 'request')} for an explicit model (or with no "
        "stored options), counted as they were on both sides",
    ]
    if total.skipped:
        lines.append(
            f"skipped: {_count(total.skipped, 'request')} refused or failed before any "
            "provider answered (no cost; not in the table)"
        )
    if total.unpriced:
        lines.append(
            f"unpriced: {_count(total.unpriced, 're-routed decision')} had an option neither the "
            "config nor --price prices; its recorded estimate was used"
        )
    lines.append(
        "est latency: observed for the option that answered, the option's stored estimate "
        "otherwise; quality: the option's configured score"
    )
    return "\n".join(lines)


def _count(n: int, thing: str) -> str:
    return f"{n:,} {thing}{'' if n == 1 else 's'}"


def _cost(value: float | None) -> str:
    return "-" if value is None else f"${value:,.4f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _quality(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


# --- the command -------------------------------------------------------------------------------


def since_duration(text: str) -> float:
    """argparse type (and the admin API's parser): `30s`, `5m`, `1h`, `7d` (a bad value is
    one line of usage error)."""
    try:
        seconds = parse_duration(text)
    except (ValueError, TypeError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("must be longer than 0 (write e.g. 30s, 5m, 1h, 7d)")
    return seconds


def quality_fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `omen whatif` (and --config, unless the parser already has it)."""
    parser.add_argument(
        "--since",
        type=since_duration,
        metavar="DUR",
        help="only requests newer than this: 30s, 5m, 1h, 7d (default: all stored)",
    )
    parser.add_argument("--container", metavar="NAME", help="only this container's requests")
    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        help="rank every decision with this strategy (default: the one each decision used)",
    )
    parser.add_argument(
        "--prefer-local",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="local options first, or not (default: each container's prefer_local)",
    )
    parser.add_argument(
        "--quality-threshold",
        type=quality_fraction,
        metavar="Q",
        help="minimum quality 0..1 for cost-optimized and prefer_local "
        "(default: each container's quality_threshold)",
    )
    parser.add_argument(
        "--price",
        type=parse_price,
        action="append",
        default=[],
        metavar="PROVIDER.MODEL=IN/OUT",
        help="price this model at IN input / OUT output USD per 1k tokens, as "
        "cost_per_1k_input_tokens/cost_per_1k_output_tokens in the config (MODEL * for all "
        "of the provider's models; cached tokens at the provider's usual share of IN); "
        "repeatable",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    parser.add_argument(
        "--db", metavar="PATH", help="store path (default: server.database of the config)"
    )
    # `omen`'s own subcommand helper adds --config already.
    with contextlib.suppress(argparse.ArgumentError):
        parser.add_argument(
            "--config",
            metavar="PATH",
            help="config file for prices, policies and the store "
            "(default: $OMEN_CONFIG, then ./omen.toml)",
        )


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(find_config_path(getattr(args, "config", None))).config
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{PROG}: {problem}", file=sys.stderr)
        return 1
    database: Path | str = config.server.database
    if args.db:
        database = args.db if is_postgres(args.db) else Path(args.db).expanduser()
    if "://" in str(database) and not is_postgres(database):
        print(f"{PROG}: --db takes a SQLite path or a postgresql:// URL", file=sys.stderr)
        return 1
    if isinstance(database, Path) and database.is_dir():
        print(f"{PROG}: {database} is a directory, not a store file", file=sys.stderr)
        return 1
    whatif = WhatIf(
        strategy=args.strategy,
        prefer_local=args.prefer_local,
        quality_threshold=args.quality_threshold,
        prices=dict(args.price),
    )
    rerouter = Rerouter(config, whatif)
    since_ts = time.time() - args.since if args.since else None
    try:
        scan(database, rerouter, since_ts=since_ts, container=args.container)
    except StoreError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    report = report_json if args.json else report_text
    print(report(rerouter, since_ts, args.container))
    return 0


class _Parser(argparse.ArgumentParser):
    """A usage error is one line that points at --help (as `omen`'s own parser does)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(
        prog=PROG,
        description="Re-route the stored decisions under another policy or price list, "
        "without calling any upstream: actual vs what-if per container.",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
