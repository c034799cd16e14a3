"""Pure builders for the OpenAI Chat Completions wire format and its xAI and Azure dialects:
bodies, SSE chunks and error bodies, shaped like the recorded samples in
shared/reference/PROVIDER_WIRE_FORMATS.md §1, §5 and §7."""

from __future__ import annotations

import time
from http import HTTPStatus
from typing import Any, Literal

import orjson

from tests.fakes import content
from tests.fakes.behaviour import ToolCall

Flavour = Literal["openai", "xai", "azure"]

SYSTEM_FINGERPRINT = "fp_de604bd877"
XAI_FINGERPRINT = "fp_2a885414fb"
DONE = b"data: [DONE]\n\n"

_SAFE = {"filtered": False, "severity": "safe"}
AZURE_COMPLETION_FILTER = {"hate": _SAFE, "self_harm": _SAFE, "sexual": _SAFE, "violence": _SAFE}
AZURE_PROMPT_FILTER = [
    {
        "prompt_index": 0,
        "content_filter_results": {
            "hate": _SAFE,
            "jailbreak": {"filtered": False, "detected": False},
            "self_harm": _SAFE,
            "sexual": _SAFE,
            "violence": _SAFE,
        },
    }
]


def dumps(flavour: Flavour, obj: Any) -> bytes:
    # Azure serialises with sorted keys (see the azure-model-router recording).
    return (
        orjson.dumps(obj, option=orjson.OPT_SORT_KEYS) if flavour == "azure" else orjson.dumps(obj)
    )


def response_id(flavour: Flavour) -> str:
    return content.xai_id() if flavour == "xai" else content.chat_completion_id()


def resolved_call_id(flavour: Flavour, call: ToolCall) -> str:
    if call.id is not None:
        return call.id
    if flavour == "xai":
        return content.xai_tool_call_id()
    return content.tool_call_id()


def usage(flavour: Flavour, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if flavour == "xai":
        body["prompt_tokens_details"] = {
            "text_tokens": prompt_tokens,
            "audio_tokens": 0,
            "image_tokens": 0,
            "cached_tokens": 0,
        }
    else:
        body["prompt_tokens_details"] = {"cached_tokens": 0, "audio_tokens": 0}
    body["completion_tokens_details"] = {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    }
    if flavour == "xai":
        # One tick is 1e-10 USD: $0.30/M input and $0.50/M output, like grok-3-mini.
        body["num_sources_used"] = 0
        body["cost_in_usd_ticks"] = prompt_tokens * 3000 + completion_tokens * 5000
    return body


def text_message(flavour: Flavour, text: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if flavour != "xai":
        message["annotations"] = []
    return message


def tool_message(flavour: Flavour, calls: list[tuple[str, ToolCall]]) -> dict[str, Any]:
    if flavour == "xai":
        return {
            "role": "assistant",
            "content": "",
            "tool_calls": [xai_tool_call(call_id, call) for call_id, call in calls],
            "refusal": None,
        }
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": arguments_json(call)},
            }
            for call_id, call in calls
        ],
        "refusal": None,
        "annotations": [],
    }


def xai_tool_call(call_id: str, call: ToolCall, index: int | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": call_id,
        "function": {"name": call.name, "arguments": arguments_json(call)},
    }
    if index is not None:
        entry["index"] = index
    entry["type"] = "function"
    return entry


def arguments_json(call: ToolCall) -> str:
    return orjson.dumps(call.arguments).decode()


def completion(
    flavour: Flavour,
    model: str,
    message: dict[str, Any],
    finish_reason: str,
    usage_body: dict[str, Any],
) -> dict[str, Any]:
    """A whole non-streaming ``chat.completion`` body."""
    choice: dict[str, Any] = {"index": 0, "message": message}
    if flavour != "xai":
        choice["logprobs"] = None
    choice["finish_reason"] = finish_reason
    if flavour == "azure":
        choice["content_filter_results"] = AZURE_COMPLETION_FILTER
    body: dict[str, Any] = {
        "id": response_id(flavour),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": usage_body,
    }
    if flavour == "openai":
        body["service_tier"] = "default"
        body["system_fingerprint"] = SYSTEM_FINGERPRINT
    elif flavour == "xai":
        body["system_fingerprint"] = XAI_FINGERPRINT
    else:
        body["system_fingerprint"] = None
        body["prompt_filter_results"] = AZURE_PROMPT_FILTER
    return body


class ChunkWriter:
    """Builds the ``data: …\\n\\n`` events of one chat.completion.chunk stream."""

    def __init__(self, flavour: Flavour, model: str, include_usage: bool, obfuscate: bool) -> None:
        self.flavour = flavour
        self.id = response_id(flavour)
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage
        # xAI sends neither obfuscation nor usage:null.
        self.obfuscate = obfuscate and flavour != "xai"
        self.null_usage = include_usage and flavour != "xai"

    def _event(
        self, choices: list[dict[str, Any]], usage_body: dict[str, Any] | None = None
    ) -> bytes:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }
        if self.flavour == "openai":
            chunk["service_tier"] = "default"
            chunk["system_fingerprint"] = SYSTEM_FINGERPRINT
        elif self.flavour == "azure":
            chunk["system_fingerprint"] = None
        chunk["choices"] = choices
        if usage_body is not None:
            chunk["usage"] = usage_body
        elif self.null_usage:
            chunk["usage"] = None
        if self.obfuscate:
            chunk["obfuscation"] = content.obfuscation()
        if self.flavour == "xai":
            chunk["system_fingerprint"] = XAI_FINGERPRINT
        return b"data: " + dumps(self.flavour, chunk) + b"\n\n"

    def _choice(
        self, delta: dict[str, Any], finish_reason: str | None, filtered: bool
    ) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "delta": delta}
        if self.flavour == "xai":
            if finish_reason is not None:
                choice["finish_reason"] = finish_reason
            return choice
        choice["logprobs"] = None
        choice["finish_reason"] = finish_reason
        if self.flavour == "azure":
            choice["content_filter_results"] = AZURE_COMPLETION_FILTER if filtered else {}
        return choice

    def prelude(self) -> list[bytes]:
        """Events before the assistant's first delta (Azure's prompt-filter chunk)."""
        if self.flavour != "azure":
            return []
        first = {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": AZURE_PROMPT_FILTER,
        }
        return [b"data: " + dumps("azure", first) + b"\n\n"]

    def text_opening(self) -> list[bytes]:
        """The role delta OpenAI and Azure send before any content; xAI folds it into the first."""
        if self.flavour == "xai":
            return []
        delta = {"role": "assistant", "content": "", "refusal": None}
        return [self._event([self._choice(delta, None, filtered=False)])]

    def text(self, piece: str, first: bool) -> bytes:
        delta: dict[str, Any] = {"content": piece}
        if first and self.flavour == "xai":
            delta["role"] = "assistant"
        return self._event([self._choice(delta, None, filtered=True)])

    def tool_calls(self, calls: list[tuple[str, ToolCall]]) -> list[bytes]:
        """OpenAI streams each call as a header delta then argument pieces; xAI sends them whole."""
        if self.flavour == "xai":
            delta: dict[str, Any] = {
                "tool_calls": [xai_tool_call(cid, call, i) for i, (cid, call) in enumerate(calls)],
                "role": "assistant",
            }
            return [self._event([self._choice(delta, None, filtered=False)])]
        events = []
        for index, (call_id, call) in enumerate(calls):
            opening: dict[str, Any] = {
                "index": index,
                "id": call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            if index == 0:
                delta = {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [opening],
                    "refusal": None,
                }
            else:
                delta = {"tool_calls": [opening]}
            events.append(self._event([self._choice(delta, None, filtered=False)]))
            for piece in content.argument_pieces(arguments_json(call)):
                piece_delta = {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                events.append(self._event([self._choice(piece_delta, None, filtered=False)]))
        return events

    def finish(self, finish_reason: str) -> bytes:
        return self._event([self._choice({}, finish_reason, filtered=False)])

    def usage(self, usage_body: dict[str, Any]) -> bytes:
        return self._event([], usage_body)


def stream_error_event(message: str) -> bytes:
    error = {"message": message, "type": "server_error", "param": None, "code": None}
    return b"data: " + orjson.dumps({"error": error}) + b"\n\n"


def _openai_error(message: str, type_: str | None, param: str | None, code: Any) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def masked_key(key: str | None) -> str:
    if not key:
        return "sk-fake*********1234"
    return key[:3] + "*" * max(len(key) - 7, 4) + key[-4:]


MISSING_KEY_MESSAGE = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank "
    "username) if you're accessing the API from your browser and are prompted for a username. You "
    "can obtain an API key from https://platform.openai.com/account/api-keys."
)


def default_error(
    flavour: Flavour, status: int, *, model: str = "", key: str | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """The body and headers the real provider sends for ``status``."""
    if flavour == "azure":
        return _azure_error(status, model)
    if status == 400:
        message = (
            "This model's maximum context length is 128000 tokens. However, your messages resulted "
            "in 131072 tokens. Please reduce the length of the messages."
        )
        return _openai_error(
            message, "invalid_request_error", "messages", "context_length_exceeded"
        ), {}
    if status == 401:
        message = (
            f"Incorrect API key provided: {masked_key(key)}. You can find your API key at "
            "https://platform.openai.com/account/api-keys."
        )
        return _openai_error(message, "invalid_request_error", None, "invalid_api_key"), {}
    if status == 403:
        message = "You are not allowed to sample from this model"
        return _openai_error(message, "invalid_request_error", None, None), {}
    if status == 404:
        message = f"The model `{model}` does not exist or you do not have access to it."
        return _openai_error(message, "invalid_request_error", None, "model_not_found"), {}
    if status == 429:
        message = (
            f"Rate limit reached for {model or 'gpt-4o'} in organization org-fake on tokens "
            "per min (TPM): Limit 200000, Used 162960, Requested 42288. Please try again in 1s. "
            "Visit https://platform.openai.com/account/rate-limits to learn more."
        )
        headers = {
            "retry-after": "1",
            "x-ratelimit-limit-tokens": "200000",
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-reset-tokens": "1s",
        }
        return _openai_error(message, "tokens", None, "rate_limit_exceeded"), headers
    if status == 500:
        message = "The server had an error while processing your request. Sorry about that!"
        return _openai_error(message, "server_error", None, None), {}
    if status == 502:
        return {
            "error": {
                "code": 502,
                "message": "Bad gateway.",
                "param": None,
                "type": "cf_bad_gateway",
            }
        }, {}
    if status == 503:
        message = "The engine is currently overloaded, please try again later"
        return _openai_error(message, "server_error", None, None), {}
    type_ = "server_error" if status >= 500 else "invalid_request_error"
    return _openai_error(_reason(status), type_, None, None), {}


def _azure_error(status: int, deployment: str) -> tuple[dict[str, Any], dict[str, str]]:
    if status == 400:
        body = {
            "error": {
                "message": "The response was filtered due to the prompt triggering Azure OpenAI's "
                "content management policy. Please modify your prompt and retry.",
                "type": None,
                "param": "prompt",
                "code": "content_filter",
                "status": 400,
                "innererror": {
                    "code": "ResponsibleAIPolicyViolation",
                    "content_filter_result": {
                        "hate": _SAFE,
                        "jailbreak": {"filtered": False, "detected": False},
                        "self_harm": _SAFE,
                        "sexual": {"filtered": True, "severity": "high"},
                        "violence": _SAFE,
                    },
                },
            }
        }
        return body, {}
    if status == 401:
        message = (
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
            "provide a valid key for an active subscription and use a correct regional API "
            "endpoint for your resource."
        )
        return {"error": {"code": "401", "message": message}}, {}
    if status == 404:
        message = (
            "The API deployment for this resource does not exist. If you created the deployment "
            "within the last 5 minutes, please wait a moment and try again."
        )
        return {"error": {"code": "DeploymentNotFound", "message": message}}, {}
    if status == 429:
        message = (
            "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
            "2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. "
            "Please retry after 1 second. Please go here: https://aka.ms/oai/quotaincrease if you "
            "would like to further increase the default rate limit."
        )
        return {"error": {"code": "429", "message": message}}, {"retry-after": "1"}
    if status == 500:
        message = "The server had an error while processing your request. Sorry about that!"
        return {"error": {"code": "InternalServerError", "message": message}}, {}
    return {"error": {"code": str(status), "message": _reason(status)}}, {}


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
