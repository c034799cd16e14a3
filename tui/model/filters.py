"""The `/` filter: a container, a provider, and free text, each optional."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Filter:
    container: str = ""
    provider: str = ""
    text: str = ""

    @property
    def active(self) -> bool:
        return bool(self.container or self.provider or self.text)

    def describe(self) -> str:
        parts = []
        if self.container:
            parts.append(f"container={self.container}")
        if self.provider:
            parts.append(f"provider={self.provider}")
        if self.text:
            parts.append(f'"{self.text}"')
        return " ".join(parts)

    def matches_text(self, *fields: object) -> bool:
        """Case-insensitive substring match of the free text in any of the fields."""
        if not self.text:
            return True
        needle = self.text.lower()
        return any(needle in str(value).lower() for value in fields if value is not None)

    # Container and provider match exactly, as the store's indexed filters do.
    def matches_container(self, name: str) -> bool:
        return not self.container or self.container == name

    def matches_provider(self, name: str | None) -> bool:
        return not self.provider or self.provider == name
