"""What views ask the app to do: each operator action starts as one of these messages."""

from __future__ import annotations

from textual.message import Message


class DrainRequested(Message):
    """Drain (drained=True) or undrain an endpoint."""

    def __init__(self, provider: str, endpoint: str, drained: bool) -> None:
        super().__init__()
        self.provider = provider
        self.endpoint = endpoint
        self.drained = drained


class BudgetRequested(Message):
    """Adjust a container's budgets; `current` holds each period's limit (None: unlimited)."""

    def __init__(self, container: str, current: dict[str, float | None]) -> None:
        super().__init__()
        self.container = container
        self.current = current


class ReplayRequested(Message):
    def __init__(self, request_id: str, provider: str | None, model: str | None) -> None:
        super().__init__()
        self.request_id = request_id
        self.provider = provider
        self.model = model


class RequestOpened(Message):
    """Show one routing decision in full."""

    def __init__(self, request_id: str) -> None:
        super().__init__()
        self.request_id = request_id


class RefreshRequested(Message):
    """Poll now rather than at the next tick (a selection needs data the last poll lacked)."""
