"""The three inbound formats the proxied routes speak, one codec instance each."""

from __future__ import annotations

from omen.errors import ApiError
from omen.formats import responses
from omen.formats.base import InboundFormat
from omen.formats.chat import ChatFormat
from omen.formats.messages import MessagesFormat
from omen.providers import JSON, Usage


class ResponsesFormat:
    """OpenAI's Responses API (Codex CLI, the Agents SDK); errors in OpenAI's shape."""

    wire = "responses"

    def decode(self, body: JSON) -> tuple[JSON, list[str]]:
        return responses.to_chat(body)

    def encode(self, completion: JSON, usage: Usage, request: JSON) -> JSON:
        return responses.from_chat(completion, usage, request)

    def encoder(self, request: JSON) -> responses.ResponsesEncoder:
        return responses.ResponsesEncoder(request)

    def error_body(self, error: ApiError) -> JSON:
        return error.body()


CHAT: InboundFormat = ChatFormat()
MESSAGES: InboundFormat = MessagesFormat()
RESPONSES: InboundFormat = ResponsesFormat()
