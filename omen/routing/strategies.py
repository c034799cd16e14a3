"""The strategies: how the viable (provider, model) options are put in order.

- cost-optimized: cheapest option whose quality meets the threshold (if none does, the best
  quality there is); local first when prefer_local.
- latency-first: lowest observed latency (time to first token for streams); local first
  when prefer_local.
- balanced: `cost_weight·cost + latency_weight·latency + quality_weight·(1−quality)` on
  values normalised to 0..1 across the options, lowest wins; with prefer_local, local options
  that meet the quality threshold go first.
"Local first" puts the container's own box (hybrid mode's local_endpoint) before the shared
local boxes, and those before the cloud.
- quality-first (request priority "quality"): best quality, then cheapest.
Every option keeps its score components, so the decision record shows why it ranked where.

Difficulty (0 easy .. 1 hard, from the intent model) steers cost-optimized and balanced, the
RouteLLM idea: the quality an option must reach moves with it (`steer`: threshold ±
difficulty_weight), and balanced weighs quality up and cost down for hard prompts (and the
reverse for easy ones) — easy work stays on the cheap local box, hard work goes up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STRATEGIES = ("cost-optimized", "latency-first", "balanced", "quality-first")


@dataclass(slots=True)
class Option:
    """One (provider, model) the request could go to, with what ranking needs."""

    provider: str
    model: str
    local: bool
    quality: float
    est_cost: float  # USD for this request's estimated tokens
    latency_ms: float  # observed moving average, or the configured/assumed target
    latency_known: bool
    own: bool = False  # on a local box reserved for the asking container (hybrid mode)
    score: float = 0.0
    components: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "provider": self.provider,
            "model": self.model,
            "local": self.local,
            "own": self.own,
            "quality": self.quality,
            "est_cost": round(self.est_cost, 6),
            "latency_ms": round(self.latency_ms, 1),
            "score": round(self.score, 4),
            "components": {k: round(v, 4) for k, v in self.components.items()},
        }


@dataclass(frozen=True, slots=True)
class Weights:
    cost: float = 0.3
    latency: float = 0.4
    quality: float = 0.3


def steer(
    quality_threshold: float, weights: Weights, difficulty: float | None, strength: float
) -> tuple[float, Weights, str]:
    """The threshold and weights for a prompt of this difficulty, and how to say it."""
    if difficulty is None or strength <= 0:
        return quality_threshold, weights, ""
    shift = strength * (2 * difficulty - 1)  # -strength (easiest) .. +strength (hardest)
    threshold = min(1.0, max(0.0, quality_threshold + shift))
    steered = Weights(
        cost=max(0.0, weights.cost * (1 - 2 * shift)),
        latency=weights.latency,
        quality=max(0.0, weights.quality * (1 + 2 * shift)),
    )
    label = "easy" if difficulty < 0.5 else "hard"
    return threshold, steered, f"{label} ({difficulty:.2f})"


def _distance(option: Option) -> int:
    """How far prefer_local sees an option: its container's own box, a shared local box, the
    cloud."""
    return 0 if option.own else 1 if option.local else 2


def rank(
    options: list[Option],
    strategy: str,
    *,
    prefer_local: bool,
    quality_threshold: float,
    weights: Weights,
    difficulty: float | None = None,
    difficulty_weight: float = 0.0,
) -> tuple[list[Option], str]:
    """The options best first, and a few words on what decided it."""
    if not options:
        return [], ""
    if strategy in ("cost-optimized", "balanced"):
        quality_threshold, weights, steered = steer(
            quality_threshold, weights, difficulty, difficulty_weight
        )
        if steered:
            ranked, note = rank(
                options,
                strategy,
                prefer_local=prefer_local,
                quality_threshold=quality_threshold,
                weights=weights,
            )
            return ranked, f"{steered}: {note}"
    if strategy == "cost-optimized":
        good = [o for o in options if o.quality >= quality_threshold]
        note = f"cheapest with quality ≥ {quality_threshold:g}"
        if not good:
            note = f"none meets quality {quality_threshold:g}: best quality"
            ranked = sorted(options, key=lambda o: (-o.quality, o.est_cost))
        else:
            rest = [o for o in options if o.quality < quality_threshold]
            ranked = sorted(
                good, key=lambda o: (_distance(o) if prefer_local else 0, o.est_cost, -o.quality)
            )
            ranked += sorted(rest, key=lambda o: (-o.quality, o.est_cost))
        for o in options:
            o.score = o.est_cost
            o.components = {"cost": o.est_cost, "quality": o.quality}
        return ranked, note
    if strategy == "latency-first":
        for o in options:
            o.score = o.latency_ms
            o.components = {"latency_ms": o.latency_ms}
        ranked = sorted(
            options, key=lambda o: (_distance(o) if prefer_local else 0, o.latency_ms, o.est_cost)
        )
        return ranked, "lowest latency" + (", local first" if prefer_local else "")
    if strategy == "quality-first":
        for o in options:
            o.score = 1 - o.quality
            o.components = {"quality": o.quality}
        return sorted(options, key=lambda o: (-o.quality, o.est_cost)), "best quality"
    # balanced
    max_cost = max(o.est_cost for o in options) or 1.0
    max_latency = max(o.latency_ms for o in options) or 1.0
    for o in options:
        cost = weights.cost * o.est_cost / max_cost
        latency = weights.latency * o.latency_ms / max_latency
        quality = weights.quality * (1 - o.quality)
        o.components = {"cost": cost, "latency": latency, "quality": quality}
        o.score = cost + latency + quality
    if prefer_local:
        first = [o for o in options if o.local and o.quality >= quality_threshold]
        if first:
            rest = [o for o in options if o not in first]
            ranked = sorted(first, key=lambda o: (not o.own, o.score))
            ranked += sorted(rest, key=lambda o: o.score)
            return ranked, f"local meets quality {quality_threshold:g}"
    return sorted(options, key=lambda o: (o.score, not o.local)), "lowest weighted score"
