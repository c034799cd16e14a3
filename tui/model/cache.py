"""Prompt-cache use per container and period: how much input a provider's cache served, and
what that saved against paying the full input price. Read from the store's spend rollups."""

from __future__ import annotations

from dataclasses import dataclass

from omen_store import SpendTotals


@dataclass(frozen=True, slots=True)
class CacheUse:
    prompt_tokens: int = 0
    read_tokens: int = 0  # of prompt_tokens, served from the cache
    write_tokens: int = 0  # of prompt_tokens, written to the cache
    saved_usd: float = 0.0

    @classmethod
    def of(cls, totals: SpendTotals) -> CacheUse:
        return cls(
            totals.prompt_tokens,
            totals.cached_tokens,
            totals.cache_write_tokens,
            totals.cache_saved_usd,
        )

    @property
    def hit_ratio(self) -> float | None:
        """Share of prompt tokens read from the cache; None without prompt tokens."""
        return self.read_tokens / self.prompt_tokens if self.prompt_tokens else None

    @property
    def active(self) -> bool:
        """Anything was read from or written to a prompt cache."""
        return bool(self.read_tokens or self.write_tokens or self.saved_usd)
