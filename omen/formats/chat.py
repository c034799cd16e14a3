"""OpenAI chat completions: the gateway's own shape, so decoding and encoding are identities.

Streams go out exactly as OpenAI sends them: the usage chunk only when the client asked for it
(`stream_options.include_usage`; Omen always asks upstream, to price the request), then [DONE].
"""

from __future__ import annotations

import orjson

from omen.errors import ApiError
from omen.providers import JSON, UpstreamError, Usage

DONE = b"data: [DONE]\n\n"


def sse(chunk: JSON) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


class OpenAIEncoder:
    """OpenAI's SSE: the usage chunk only when the client asked for it, then [DONE]."""

    def __init__(self, include_usage: bool) -> None:
        self.include_usage = include_usage

    def chunk(self, chunk: JSON) -> bytes:
        if not chunk.get("choices"):
            return sse(chunk) if self.include_usage else b""
        if not self.include_usage:
            chunk.pop("usage", None)
        return sse(chunk)

    def done(self, usage: Usage | None) -> bytes:
        return DONE

    def error(self, error: UpstreamError) -> bytes:
        return sse(
            {
                "error": {
                    "message": error.message,
                    "type": error.type,
                    "param": None,
                    "code": error.code or "upstream_stream_error",
                }
            }
        )


class ChatFormat:
    wire = "chat"

    def decode(self, body: JSON) -> tuple[JSON, list[str]]:
        return body, []

    def encode(self, completion: JSON, usage: Usage, request: JSON) -> JSON:
        return completion

    def encoder(self, request: JSON) -> OpenAIEncoder:
        options = request.get("stream_options")
        include = isinstance(options, dict) and bool(options.get("include_usage"))
        return OpenAIEncoder(include)

    def error_body(self, error: ApiError) -> JSON:
        return error.body()
