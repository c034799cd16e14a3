"""Errors the store raises to its readers."""

from __future__ import annotations


class StoreError(Exception):
    """The store cannot be read as asked."""


class StoreMissingError(StoreError):
    """There is no store file (yet) at the configured path."""

    def __init__(self, path: str) -> None:
        super().__init__(f"no store at {path} — has `omen serve` run with this config?")
        self.path = path
