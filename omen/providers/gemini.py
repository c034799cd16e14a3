"""Google Gemini's generateContent API (streamGenerateContent?alt=sse too) behind the OpenAI shape.

Translation is pure functions over dicts (request, response, one SSE event at a time);
`GeminiProvider` only moves bytes. Differences that matter: roles are user/model, system text
goes to `systemInstruction`, tool results are `functionResponse` parts named after the call
they answer, a function call still finishes with STOP (Omen says tool_calls), thinking tokens
are counted apart from `candidatesTokenCount`, streams end by closing (no [DONE]), and a bad
key is a 400, not a 401.
"""

from __future__ import annotations

import base64
import re
import struct
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any
from urllib.parse import quote

import orjson

from omen.config import ProviderConfig
from omen.providers.base import (
    JSON,
    ChatResponse,
    EmbeddingResponse,
    Probe,
    UpstreamError,
    Usage,
    failed_probe,
)
from omen.providers.http import (
    UpstreamClients,
    UpstreamSettings,
    get_json,
    iter_lines,
    loads,
    open_stream,
    parse_retry_after,
    post_json,
    truncated,
)

API_VERSION = "v1beta"
# Gemini 3 and later refuse a replayed functionCall part without its thoughtSignature, which
# OpenAI-shaped clients cannot carry; Google documents this value as the way to skip the check.
SKIP_SIGNATURE = "skip_thought_signature_validator"
_SIGNED_MODELS = re.compile(r"^gemini-(\d+)")
_EMBED_BATCH = 100  # batchEmbedContents refuses more requests than this in one call
# A system message from mid-conversation, folded into a user turn, starts with this.
SYSTEM_LABEL = "[System message]\n"
# reasoning_effort → thinkingBudget (tokens); 0 turns thinking off where a model allows it.
THINKING_BUDGETS = {"minimal": 0, "low": 1024, "medium": 8192, "high": 24576}
MIN_FORCED_THINKING_BUDGET = 128  # the least 2.5 Pro takes; it cannot stop thinking
_ALWAYS_THINKS = re.compile(r"^gemini-(?:2\.5-pro|[3-9]|\d{2,})")

_CONFIG_FIELDS = {
    "temperature": "temperature",
    "top_p": "topP",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
    "n": "candidateCount",
}
_FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "LANGUAGE": "content_filter",
    "OTHER": "content_filter",
}
_TOOL_MODES = {"auto": "AUTO", "required": "ANY", "none": "NONE"}


# --- request ---------------------------------------------------------------------------


def model_id(model: str) -> str:
    """`models/gemini-2.0-flash` and `gemini-2.0-flash` name the same model."""
    return model.removeprefix("models/")


def _inline_data(url: str, what: str) -> JSON:
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        mime = header[5:].split(";", 1)[0] or "application/octet-stream"
        return {"inlineData": {"mimeType": mime, "data": data}}
    raise UpstreamError(
        400,
        f"Gemini takes {what} inline only, as data: URLs (base64); this request has an "
        "http(s) URL, which Omen does not fetch",
        type_="invalid_request_error",
        code="unsupported_image_url",
        retryable=True,  # another provider may fetch URLs itself
    )


def _content_parts(content: Any) -> list[JSON]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[JSON] = []
    for part in content or []:
        kind = part.get("type")
        if kind == "text":
            parts.append({"text": part.get("text", "")})
        elif kind == "refusal":
            parts.append({"text": part.get("refusal", "")})
        elif kind == "image_url":
            parts.append(_inline_data((part.get("image_url") or {}).get("url", ""), "images"))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            mime = f"audio/{audio.get('format') or 'wav'}"
            parts.append({"inlineData": {"mimeType": mime, "data": audio.get("data", "")}})
        elif kind == "file":
            parts.append(_inline_data((part.get("file") or {}).get("file_data", ""), "files"))
    return parts


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or [] if p.get("type") == "text")


def _needs_signature(model: str) -> bool:
    match = _SIGNED_MODELS.match(model_id(model))
    return match is not None and int(match.group(1)) >= 3


def _function_calls(calls: list[JSON], names: dict[str, str], model: str) -> list[JSON]:
    parts: list[JSON] = []
    for call in calls:
        function = call.get("function") or {}
        arguments = function.get("arguments") or "{}"
        try:
            args = orjson.loads(arguments) if isinstance(arguments, str) else arguments
        except orjson.JSONDecodeError:
            args = {}
        name = function.get("name", "")
        names[call.get("id", "")] = name
        parts.append(
            {"functionCall": {"name": name, "args": args if isinstance(args, dict) else {}}}
        )
    if parts and _needs_signature(model):
        # Only the first call of a turn carries a signature (parallel calls share it).
        parts[0]["thoughtSignature"] = SKIP_SIGNATURE
    return parts


def _function_response(message: JSON, names: dict[str, str]) -> JSON:
    name = names.get(message.get("tool_call_id", "")) or message.get("name") or ""
    text = _text_of(message.get("content"))
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        parsed = None
    response = parsed if isinstance(parsed, dict) else {"content": text}
    return {"functionResponse": {"name": name, "response": response}}


def folded_system(parts: list[JSON]) -> list[JSON]:
    """A system message from the middle of a conversation, as parts a user turn can carry.

    Gemini has one `systemInstruction`; moving a later system message up there would change
    what the model read when, and dropping it loses an instruction. It travels in the user
    turn at its place instead, labelled so the model still reads it as an instruction.
    """
    out = [dict(part) for part in parts]
    for part in out:
        if "text" in part:
            part["text"] = SYSTEM_LABEL + part["text"]
            break
    return out


def _append_turn(contents: list[JSON], turn: str, parts: list[JSON]) -> None:
    if not parts:
        return  # Gemini refuses a turn without parts
    if contents and contents[-1]["role"] == turn:
        # Parallel tool results must reach Gemini as one turn, like the calls they answer.
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": turn, "parts": parts})


def to_gemini_contents(messages: list[JSON], model: str) -> tuple[JSON | None, list[JSON]]:
    """OpenAI messages → (systemInstruction, contents); consecutive turns of a role merge.

    System messages before the conversation starts are the `systemInstruction`; later ones
    are folded into the user turn at their place (see `folded_system`): ahead of the next
    user message's parts, after the function responses that answer the model's last calls.
    """
    system: list[JSON] = []
    contents: list[JSON] = []
    pending: list[JSON] = []  # later system messages, waiting for a user turn to carry them
    names: dict[str, str] = {}  # tool_call_id → function name, for the results that follow
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            parts = _content_parts(_text_of(message.get("content")))
            if contents or pending:
                pending.extend(folded_system(parts))
            else:
                system.extend(parts)
        elif role == "assistant":
            _append_turn(contents, "user", pending)
            pending = []
            parts = _content_parts(message.get("content"))
            parts += _function_calls(message.get("tool_calls") or [], names, model)
            _append_turn(contents, "model", parts)
        elif role in ("tool", "function"):
            _append_turn(contents, "user", [_function_response(message, names)])
        else:
            _append_turn(contents, "user", pending + _content_parts(message.get("content")))
            pending = []
    _append_turn(contents, "user", pending)
    return ({"parts": system} if system else None), contents


def thinking_config(effort: Any, model: str) -> JSON | None:
    """`reasoning_effort` → `thinkingConfig`, with the thoughts sent back as reasoning.

    "minimal" turns thinking off (budget 0), except on models that always think (2.5 Pro,
    Gemini 3 and later), which refuse 0: those get their smallest budget.
    """
    budget = THINKING_BUDGETS.get(effort) if isinstance(effort, str) else None
    if budget is None:
        return None
    if budget == 0 and _ALWAYS_THINKS.match(model_id(model)):
        budget = MIN_FORCED_THINKING_BUDGET
    config: JSON = {"thinkingBudget": budget}
    if budget:
        config["includeThoughts"] = True
    return config


def generation_config(body: JSON) -> JSON:
    config: JSON = {}
    for openai_name, gemini_name in _CONFIG_FIELDS.items():
        if body.get(openai_name) is not None:
            config[gemini_name] = body[openai_name]
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_object":
        config["responseMimeType"] = "application/json"
    elif response_format.get("type") == "json_schema":
        config["responseMimeType"] = "application/json"
        schema = (response_format.get("json_schema") or {}).get("schema")
        if schema:
            # responseJsonSchema takes JSON Schema as clients write it; responseSchema (an
            # OpenAPI subset) refuses additionalProperties, which strict OpenAI schemas carry.
            config["responseJsonSchema"] = schema
    return config


def tools_to_gemini(tools: list[JSON]) -> list[JSON]:
    declarations = []
    for tool in tools:
        if tool.get("type") != "function":
            continue
        function = tool.get("function") or {}
        declaration: JSON = {"name": function.get("name", "")}
        if function.get("description"):
            declaration["description"] = function["description"]
        if function.get("parameters"):
            # JSON Schema as sent (see responseJsonSchema above).
            declaration["parametersJsonSchema"] = function["parameters"]
        declarations.append(declaration)
    return [{"functionDeclarations": declarations}] if declarations else []


def tool_config(choice: Any) -> JSON | None:
    if isinstance(choice, str):
        mode = _TOOL_MODES.get(choice)
        return {"functionCallingConfig": {"mode": mode}} if mode else None
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name", "")
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    return None


def to_gemini_request(body: JSON, model: str) -> JSON:
    """OpenAI chat body → Gemini generateContent body (the model goes in the URL)."""
    system, contents = to_gemini_contents(body.get("messages", []), model)
    payload: JSON = {"contents": contents}
    if system:
        payload["systemInstruction"] = system
    config = generation_config(body)
    thinking = thinking_config(body.get("reasoning_effort"), model)
    if thinking is not None:
        config["thinkingConfig"] = thinking
    if config:
        payload["generationConfig"] = config
    tools = tools_to_gemini(body.get("tools") or [])
    if tools:
        payload["tools"] = tools
        choice = tool_config(body.get("tool_choice"))
        if choice:
            payload["toolConfig"] = choice
    return payload


# --- response --------------------------------------------------------------------------


def usage_from_gemini(meta: JSON | None) -> Usage:
    """Thinking is billed as output, so it counts as completion (and says so as reasoning)."""
    meta = meta or {}
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    return Usage(
        prompt_tokens=int(meta.get("promptTokenCount") or 0)
        + int(meta.get("toolUsePromptTokenCount") or 0),
        completion_tokens=int(meta.get("candidatesTokenCount") or 0) + thoughts,
        cached_tokens=int(meta.get("cachedContentTokenCount") or 0),
        reasoning_tokens=thoughts,
    )


def finish_reason(reason: str | None, saw_tool_calls: bool) -> str:
    mapped = _FINISH_REASONS.get(reason or "STOP")
    if mapped is None:
        mapped = "content_filter" if (reason or "").startswith("IMAGE_") else "stop"
    return "tool_calls" if saw_tool_calls and mapped == "stop" else mapped


def _tool_call(part: JSON, index: int) -> JSON:
    call = part["functionCall"]
    return {
        "index": index,
        "id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}",
        "type": "function",
        "function": {
            "name": call.get("name", ""),
            "arguments": orjson.dumps(call.get("args") or {}).decode(),
        },
    }


def _blocked_message(feedback: JSON) -> str:
    return f"Gemini blocked the prompt ({feedback.get('blockReason')})"


def _choice(candidate: JSON, position: int) -> JSON:
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[JSON] = []
    for part in (candidate.get("content") or {}).get("parts") or []:
        if "functionCall" in part:
            call = _tool_call(part, len(calls))
            del call["index"]
            calls.append(call)
        elif part.get("text"):
            (thoughts if part.get("thought") else texts).append(part["text"])
    message: JSON = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    if thoughts:
        message["reasoning"] = "".join(thoughts)
    return {
        "index": candidate.get("index", position),
        "message": message,
        "logprobs": None,
        "finish_reason": finish_reason(candidate.get("finishReason"), bool(calls)),
    }


def from_gemini_response(data: JSON, completion_id: str, model: str) -> ChatResponse:
    """A GenerateContentResponse → OpenAI chat.completion. A blocked prompt is a
    content_filter answer (with the block reason as the refusal), not an error."""
    candidates = data.get("candidates") or []
    feedback = data.get("promptFeedback") or {}
    if candidates:
        choices = [_choice(c, i) for i, c in enumerate(candidates)]
    elif feedback.get("blockReason"):
        message = {"role": "assistant", "content": None, "refusal": _blocked_message(feedback)}
        choices = [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": "content_filter"}
        ]
    else:
        raise UpstreamError(502, "gemini: upstream answer has no candidates")
    usage = usage_from_gemini(data.get("usageMetadata"))
    body: JSON = {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage.as_openai(),
    }
    return ChatResponse(body=body, usage=usage)


class GeminiStreamTranslator:
    """Turns streamGenerateContent events into OpenAI chunks, one event at a time.

    Every event carries the running usageMetadata (the last one wins) and only the last has a
    finishReason; the stream then just closes, so `finish()` is called at the close.
    """

    def __init__(self, completion_id: str, model: str) -> None:
        self.completion_id = completion_id
        self.model = model
        self.created = int(time.time())
        self.usage: Usage | None = None
        self._calls: dict[int, int] = {}  # choice index → tool calls streamed so far
        self._opened = {0}
        self._finished: set[int] = set()

    def _chunk(self, index: int, delta: JSON, finish: str | None = None) -> JSON:
        return {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [
                {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            ],
        }

    def first(self) -> JSON:
        return self._chunk(0, {"role": "assistant", "content": "", "refusal": None})

    def feed(self, event: JSON) -> list[JSON]:
        if "error" in event:
            error = event["error"] if isinstance(event["error"], dict) else {}
            status = int(error.get("code") or 502)
            raise gemini_error(status, orjson.dumps(event), {})
        if event.get("usageMetadata"):
            self.usage = usage_from_gemini(event["usageMetadata"])
        chunks: list[JSON] = []
        candidates = event.get("candidates") or []
        feedback = event.get("promptFeedback") or {}
        if not candidates and feedback.get("blockReason") and 0 not in self._finished:
            chunks.append(self._chunk(0, {"refusal": _blocked_message(feedback)}))
            chunks.append(self._chunk(0, {}, "content_filter"))
            self._finished.add(0)
        for position, candidate in enumerate(candidates):
            chunks.extend(self._candidate(candidate, candidate.get("index", position)))
        return chunks

    def _candidate(self, candidate: JSON, index: int) -> list[JSON]:
        chunks: list[JSON] = []
        if index not in self._opened:
            self._opened.add(index)
            chunks.append(self._chunk(index, {"role": "assistant", "content": ""}))
        for part in (candidate.get("content") or {}).get("parts") or []:
            if "functionCall" in part:
                call = _tool_call(part, self._calls.get(index, 0))
                self._calls[index] = call["index"] + 1
                chunks.append(self._chunk(index, {"tool_calls": [call]}))
            elif part.get("text"):
                key = "reasoning" if part.get("thought") else "content"
                chunks.append(self._chunk(index, {key: part["text"]}))
        reason = candidate.get("finishReason")
        if reason and index not in self._finished:
            self._finished.add(index)
            mapped = finish_reason(reason, self._calls.get(index, 0) > 0)
            chunks.append(self._chunk(index, {}, mapped))
        return chunks

    def finish(self) -> JSON:
        """The usage chunk, once the upstream closed the stream after a finishReason."""
        if not self._finished:
            raise UpstreamError(502, "gemini: stream ended without a finishReason", mid_stream=True)
        chunk = self._chunk(0, {})
        chunk["choices"] = []
        chunk["usage"] = (self.usage or Usage()).as_openai()
        return chunk


async def sse_data(lines: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    """The `data:` payload of each server-sent event; the lines come LF or CRLF split."""
    data: list[bytes] = []
    async for line in lines:
        if not line:
            if data:
                yield b"\n".join(data)
                data = []
        elif line.startswith(b"data:"):
            data.append(line[5:].removeprefix(b" "))
    if data:
        yield b"\n".join(data)


# --- errors ----------------------------------------------------------------------------


def _retry_delay(details: list[Any]) -> float | None:
    for detail in details:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            delay = str(detail.get("retryDelay") or "")
            try:
                return float(delay.removesuffix("s"))
            except ValueError:
                return None
    return None


def gemini_error(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
    """`{"error": {"code", "message", "status", "details"}}` → what Omen's client sees."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, list) and parsed:
        parsed = parsed[0]  # the streamed-array form wraps the error in a list
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict):
        message = body.decode(errors="replace")[:500] or f"HTTP {status}"
        return UpstreamError(status, f"gemini: {message}")
    message = str(error.get("message") or f"HTTP {status}")
    google_status = str(error.get("status") or "")
    details = error.get("details")
    details = details if isinstance(details, list) else []
    reasons = [str(d["reason"]) for d in details if isinstance(d, dict) and d.get("reason")]
    code = reasons[0] if reasons else google_status or None
    if (
        "API_KEY_INVALID" in reasons
        or status in (401, 403)
        or google_status in ("UNAUTHENTICATED", "PERMISSION_DENIED")
    ):
        # Gemini answers a bad key with 400; it is Omen's credential, not the client's
        # request, and another provider may still answer.
        return UpstreamError(
            502,
            f"gemini rejected Omen's API key ({status} {code}): {message}",
            type_="upstream_auth_error",
            code=code,
            retryable=True,
        )
    if status == 404:
        return UpstreamError(
            404,
            f"gemini: {message}",
            type_="invalid_request_error",
            code="model_not_found",
            retryable=True,
        )
    if status == 429:
        return UpstreamError(
            429,
            f"gemini: {message}",
            type_="rate_limit_error",
            code=code,
            retryable=True,
            retry_after=_retry_delay(details) or parse_retry_after(headers),
        )
    if google_status == "FAILED_PRECONDITION":
        # e.g. "User location is not supported": the provider's condition, not the request's.
        return UpstreamError(502, f"gemini: {message}", code=code, retryable=True)
    if status in (400, 413, 422):
        return UpstreamError(
            status, f"gemini: {message}", type_="invalid_request_error", code=code, retryable=False
        )
    return UpstreamError(
        status, f"gemini: {message}", code=code, retry_after=parse_retry_after(headers)
    )


# --- embeddings ------------------------------------------------------------------------


def to_gemini_embed_requests(body: JSON, model: str) -> list[JSON]:
    value = body.get("input", "")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise UpstreamError(
            400,
            "Gemini embeds text only; this request sends token ids",
            type_="invalid_request_error",
            code="unsupported_input",
            param="input",
            retryable=True,  # an OpenAI-format provider takes token ids
        )
    request: JSON = {"model": f"models/{model}"}
    if body.get("dimensions"):
        request["outputDimensionality"] = body["dimensions"]
    return [{**request, "content": {"parts": [{"text": text}]}} for text in texts]


def embedding_data(vectors: list[list[float]], encoding_format: str | None) -> list[JSON]:
    data = []
    for index, values in enumerate(vectors):
        embedding: Any = values
        if encoding_format == "base64":  # OpenAI's: little-endian float32s
            embedding = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return data


# --- transport -------------------------------------------------------------------------


class GeminiProvider:
    """Adapter for one `[providers.NAME]` table of type gemini; `endpoint` is the host root."""

    page_size = 1000  # models per ListModels page

    def __init__(self, config: ProviderConfig) -> None:
        self.name = config.name
        self._clients = UpstreamClients(UpstreamSettings.of(config))
        self._headers = {"content-type": "application/json"}
        if config.api_key is not None:
            self._headers["x-goog-api-key"] = config.api_key.get_secret_value()

    @staticmethod
    def _path(endpoint: str, tail: str) -> str:
        # The default base URL is the host root; one that already names the version works too.
        if re.search(r"/v1(beta)?/?$", endpoint):
            return f"/{tail}"
        return f"/{API_VERSION}/{tail}"

    def _model_path(self, endpoint: str, model: str, method: str) -> str:
        return self._path(endpoint, f"models/{quote(model, safe='')}:{method}")

    async def chat(self, endpoint: str, body: JSON) -> ChatResponse:
        model = model_id(body["model"])
        where = f"{self.name} {endpoint}"
        raw, _ = await post_json(
            self._clients.get(endpoint),
            self._model_path(endpoint, model, "generateContent"),
            to_gemini_request(body, model),
            headers=self._headers,
            where=where,
            on_error=gemini_error,
        )
        data = loads(raw, where)
        if not isinstance(data, dict):
            raise UpstreamError(502, f"{where}: upstream answer is not an object")
        return from_gemini_response(data, f"chatcmpl-{uuid.uuid4().hex[:24]}", body["model"])

    async def stream(self, endpoint: str, body: JSON) -> AsyncIterator[JSON]:
        model = model_id(body["model"])
        where = f"{self.name} {endpoint}"
        translator = GeminiStreamTranslator(f"chatcmpl-{uuid.uuid4().hex[:24]}", body["model"])
        started = False
        async with (
            open_stream(
                self._clients.get(endpoint),
                self._model_path(endpoint, model, "streamGenerateContent"),
                to_gemini_request(body, model),
                headers=self._headers,
                params={"alt": "sse"},
                where=where,
                on_error=gemini_error,
            ) as response,
            aclosing(iter_lines(response, where)) as lines,
            aclosing(sse_data(lines)) as events,
        ):
            async for data in events:
                try:
                    event = loads(data, where)
                    chunks = translator.feed(event if isinstance(event, dict) else {})
                except UpstreamError as exc:
                    # An error event before anything reached the client may still fail over.
                    exc.mid_stream = started
                    raise
                if not started:
                    started = True
                    yield translator.first()
                for chunk in chunks:
                    yield chunk
        try:
            final = translator.finish()
        except UpstreamError:
            # An empty 200 body is a failure before the first byte: it may still fail over.
            raise truncated(where, "a finishReason", mid_stream=started) from None
        yield final

    async def embed(self, endpoint: str, body: JSON) -> EmbeddingResponse:
        model = model_id(body["model"])
        where = f"{self.name} {endpoint}"
        requests = to_gemini_embed_requests(body, model)
        vectors: list[list[float]] = []
        for start in range(0, len(requests), _EMBED_BATCH):
            raw, _ = await post_json(
                self._clients.get(endpoint),
                self._model_path(endpoint, model, "batchEmbedContents"),
                {"requests": requests[start : start + _EMBED_BATCH]},
                headers=self._headers,
                where=where,
                on_error=gemini_error,
            )
            result = loads(raw, where)
            embeddings = result.get("embeddings") if isinstance(result, dict) else None
            vectors.extend(e.get("values") or [] for e in embeddings or [])
        # batchEmbedContents reports no token counts; Omen records 0 rather than a guess.
        out = {
            "object": "list",
            "data": embedding_data(vectors, body.get("encoding_format")),
            "model": body["model"],
            "usage": {"prompt_tokens": 0, "total_tokens": 0},
        }
        return EmbeddingResponse(body=out, usage=Usage())

    async def _get(self, endpoint: str, tail: str, params: dict[str, str]) -> Any:
        where = f"{self.name} {endpoint}"
        data = await get_json(
            self._clients.get(endpoint),
            self._path(endpoint, tail),
            headers=self._headers,
            params=params,
            where=where,
            on_error=gemini_error,
        )
        if not isinstance(data, dict):
            raise UpstreamError(502, f"{where}: {tail} answer is not an object")
        return data

    async def list_models(self, endpoint: str) -> list[str]:
        names: list[str] = []
        params = {"pageSize": str(self.page_size)}
        while True:
            page = await self._get(endpoint, "models", params)
            names.extend(model_id(m.get("name", "")) for m in page.get("models") or [])
            token = page.get("nextPageToken")
            if not token:
                return names
            params = {"pageSize": str(self.page_size), "pageToken": str(token)}

    async def probe(self, endpoint: str) -> Probe:
        """One page of ListModels costs no tokens and proves the key and the network path."""
        started = time.perf_counter()
        try:
            await self._get(endpoint, "models", {"pageSize": "1"})
        except UpstreamError as exc:
            return failed_probe(exc, (time.perf_counter() - started) * 1000)
        return Probe(True, (time.perf_counter() - started) * 1000)

    async def aclose(self) -> None:
        await self._clients.aclose()
