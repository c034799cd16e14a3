"""What every inbound wire format provides: a codec pair at the edges of one pipeline.

`decode` turns the client's body into the OpenAI chat body the gateway routes, limits and
translates; `encode` and `encoder` turn the gateway's answer (a chat completion, or a stream
of chunks) back into the client's shape; `error_body` is the client's own error shape. When
the chosen upstream speaks the client's format, none of this runs: the body goes through.
"""

from __future__ import annotations

from typing import Protocol

from omen.errors import ApiError
from omen.providers import JSON, UpstreamError, Usage


class ChunkEncoder(Protocol):
    """Turns OpenAI chunks into what the client's wire format wants on the socket."""

    def chunk(self, chunk: JSON) -> bytes: ...

    def done(self, usage: Usage | None) -> bytes: ...

    def error(self, error: UpstreamError) -> bytes: ...


class InboundFormat(Protocol):
    """One client wire format: "chat", "messages" or "responses"."""

    wire: str

    def decode(self, body: JSON) -> tuple[JSON, list[str]]:
        """The client's body → (an OpenAI chat body, the request fields chat cannot carry)."""
        ...

    def encode(self, completion: JSON, usage: Usage, request: JSON) -> JSON:
        """A chat completion → the client's answer; `request` is the client's own body."""
        ...

    def encoder(self, request: JSON) -> ChunkEncoder: ...

    def error_body(self, error: ApiError) -> JSON: ...
