"""AWS Bedrock's Converse API (/model/{id}/converse and /converse-stream) behind the OpenAI shape.

Translation is pure functions over dicts (request, response, one stream event at a time);
`BedrockProvider` signs and moves bytes. Differences that matter: content is a list of typed
blocks, tool results travel as `toolResult` blocks in a user turn, the stream is AWS's binary
event stream (decoded by botocore) whose usage comes in a `metadata` event *after*
`messageStop`, and every request is SigV4-signed for the service `bedrock` (or carries a
Bedrock API key as a Bearer token).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any, cast
from urllib.parse import quote, urlsplit

import httpx
import orjson
from botocore.auth import SigV4Auth  # type: ignore[import-untyped,unused-ignore]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped,unused-ignore]
from botocore.credentials import (  # type: ignore[import-untyped,unused-ignore]
    RefreshableCredentials,
)
from botocore.eventstream import (  # type: ignore[import-untyped,unused-ignore]
    EventStreamBuffer,
    ParserError,
)
from botocore.exceptions import BotoCoreError  # type: ignore[import-untyped,unused-ignore]
from botocore.session import Session  # type: ignore[import-untyped,unused-ignore]

from omen.config import ProviderConfig
from omen.providers.base import (
    JSON,
    ChatResponse,
    ChunkEnvelope,
    EmbeddingResponse,
    Probe,
    UpstreamError,
    Usage,
)
from omen.providers.http import (
    UpstreamClients,
    loads,
    open_stream,
    parse_retry_after,
    post_json,
    transport_error,
)

# Not "bedrock-runtime": the credential scope is .../{region}/bedrock/aws4_request.
SIGNING_NAME = "bedrock"
EVENT_STREAM = "application/vnd.amazon.eventstream"
_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
_REGION_IN_HOST = re.compile(r"bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.(?:vpce\.)?amazonaws\.com")


# --- request ---------------------------------------------------------------------------


def _unsupported(message: str, code: str) -> UpstreamError:
    # Retryable: another provider may take what Bedrock cannot.
    return UpstreamError(400, message, type_="invalid_request_error", code=code, retryable=True)


def image_block(url: str) -> JSON:
    """An OpenAI image URL → a Converse image block; Bedrock wants the bytes, not a link."""
    if not url.startswith("data:"):
        raise _unsupported(
            "Bedrock accepts images only as data: URLs (base64); this request has an http(s) "
            "image URL",
            "unsupported_image_url",
        )
    header, _, data = url.partition(",")
    mime = header[5:].split(";")[0].strip().lower()
    image_format = _IMAGE_FORMATS.get(mime)
    if image_format is None or ";base64" not in header:
        raise _unsupported(
            f"Bedrock accepts base64 png, jpeg, gif and webp images, not {mime or 'this image'}",
            "unsupported_image_format",
        )
    return {"image": {"format": image_format, "source": {"bytes": data}}}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _content_blocks(content: Any) -> list[JSON]:
    # Bedrock rejects blank text blocks, which OpenAI clients send routinely (content "").
    if isinstance(content, str):
        return [{"text": content}] if content else []
    blocks: list[JSON] = []
    for part in content if isinstance(content, list) else []:
        kind = part.get("type")
        if kind == "text" and part.get("text"):
            blocks.append({"text": part["text"]})
        elif kind == "image_url":
            blocks.append(image_block((part.get("image_url") or {}).get("url", "")))
    return blocks


def _tool_use_block(call: JSON) -> JSON:
    function = call.get("function") or {}
    arguments = function.get("arguments") or "{}"
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
    except orjson.JSONDecodeError:
        parsed = {}
    return {
        "toolUse": {
            "toolUseId": call.get("id") or "",
            "name": function.get("name") or "",
            "input": parsed if isinstance(parsed, dict) else {},
        }
    }


def _tool_result_block(message: JSON) -> JSON:
    text = _text_of(message.get("content"))
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        parsed = None
    content = [{"json": parsed}] if isinstance(parsed, dict) else [{"text": text}]
    return {
        "toolResult": {
            "toolUseId": message.get("tool_call_id") or "",
            "content": content,
            "status": "success",
        }
    }


def _turns(messages: list[JSON]) -> tuple[list[JSON], list[JSON]]:
    """The system blocks and the alternating user/assistant turns Converse expects."""
    system: list[JSON] = []
    turns: list[JSON] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            text = _text_of(message.get("content"))
            if text:
                system.append({"text": text})
            continue
        if role == "tool":
            role, blocks = "user", [_tool_result_block(message)]
        elif role == "assistant":
            blocks = _content_blocks(message.get("content"))
            blocks.extend(_tool_use_block(call) for call in message.get("tool_calls") or [])
        else:
            role, blocks = "user", _content_blocks(message.get("content"))
        if not blocks:
            continue
        # Roles must alternate: parallel tool results and a following user text share a turn.
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def _tool_config(body: JSON, turns: list[JSON]) -> JSON | None:
    tools = [t for t in body.get("tools") or [] if t.get("type", "function") == "function"]
    choice = body.get("tool_choice")
    uses_tools = any("toolUse" in b or "toolResult" in b for t in turns for b in t["content"])
    # Converse has no "none": leave the tools out, unless the history has tool blocks (then
    # Bedrock insists on a toolConfig, and the model is merely not forced).
    if not tools or (choice == "none" and not uses_tools):
        return None
    specs = []
    for tool in tools:
        function = tool.get("function") or {}
        spec: JSON = {
            "name": function.get("name", ""),
            "inputSchema": {
                "json": function.get("parameters") or {"type": "object", "properties": {}}
            },
        }
        if function.get("description"):
            spec["description"] = function["description"]
        specs.append({"toolSpec": spec})
    config: JSON = {"tools": specs}
    if choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, dict) and (choice.get("function") or {}).get("name"):
        config["toolChoice"] = {"tool": {"name": choice["function"]["name"]}}
    return config


def to_converse(body: JSON) -> JSON:
    """OpenAI chat body → Converse body (the model id goes in the URL, not the body)."""
    system, turns = _turns(body.get("messages", []))
    payload: JSON = {"messages": turns}
    if system:
        payload["system"] = system
    inference: JSON = {}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        inference["maxTokens"] = max_tokens
    if body.get("temperature") is not None:
        inference["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        inference["topP"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        inference["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if inference:
        payload["inferenceConfig"] = inference
    tool_config = _tool_config(body, turns)
    if tool_config is not None:
        payload["toolConfig"] = tool_config
    return payload


def model_path(model: str, operation: str) -> str:
    """The model id percent-encoded as one path segment: `…-v1:0` → `…-v1%3A0`.

    ARNs (inference profiles) have `/` too, which must be encoded as well.
    """
    return f"/model/{quote(model, safe='')}/{operation}"


# --- signing ---------------------------------------------------------------------------


def sign(credentials: Any, region: str, url: str, body: bytes) -> dict[str, str]:
    """The headers of a SigV4-signed Converse POST, exactly as botocore signs it.

    botocore encodes the canonical URI a second time (`%3A` → `%253A`), as AWS expects for every
    service but S3. Signing costs about 80 µs a request (bench: 5000 signatures), so it is
    done per request rather than cached.
    """
    request = AWSRequest(
        method="POST", url=url, data=body, headers={"Content-Type": "application/json"}
    )
    SigV4Auth(credentials, SIGNING_NAME, region).add_auth(request)
    return {str(name): str(value) for name, value in request.headers.items()}


def region_of(url: str, default: str | None) -> str | None:
    """The region an endpoint signs for: its host's, else the provider's."""
    found = _REGION_IN_HOST.search(urlsplit(url).hostname or "")
    return found.group(1) if found else default


def _resolve_credentials() -> Any:
    """botocore's standard chain: env, shared files, SSO, container and instance roles.

    Blocking (files, maybe the network): called in a worker thread.
    """
    return Session().get_credentials()


# --- response --------------------------------------------------------------------------

_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}


def finish_reason(stop_reason: str | None, saw_tool_calls: bool) -> str:
    reason = _FINISH_REASONS.get(stop_reason or "", "stop")
    return "tool_calls" if reason == "stop" and saw_tool_calls else reason


def usage_from_converse(usage: JSON | None) -> Usage:
    """Bedrock's inputTokens leave out cache reads and writes; OpenAI's prompt_tokens hold them."""
    usage = usage or {}
    cache_read = int(usage.get("cacheReadInputTokens") or 0)
    cache_write = int(usage.get("cacheWriteInputTokens") or 0)
    return Usage(
        prompt_tokens=int(usage.get("inputTokens") or 0) + cache_read + cache_write,
        completion_tokens=int(usage.get("outputTokens") or 0),
        cached_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def _tool_call(tool_use: JSON) -> JSON:
    return {
        "id": tool_use.get("toolUseId") or f"call_{uuid.uuid4().hex[:24]}",
        "type": "function",
        "function": {
            "name": tool_use.get("name", ""),
            "arguments": orjson.dumps(tool_use.get("input") or {}).decode(),
        },
    }


def from_converse(data: JSON, completion_id: str, model: str) -> ChatResponse:
    """A Converse response → OpenAI chat.completion."""
    blocks = ((data.get("output") or {}).get("message") or {}).get("content") or []
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[JSON] = []
    for block in blocks:
        if "text" in block:
            texts.append(block["text"])
        elif "toolUse" in block:
            calls.append(_tool_call(block["toolUse"]))
        elif "reasoningContent" in block:
            reasoning.append(
                ((block["reasoningContent"] or {}).get("reasoningText") or {}).get("text", "")
            )
    message: JSON = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning"] = "".join(reasoning)
    usage = usage_from_converse(data.get("usage"))
    body: JSON = {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(data.get("stopReason"), bool(calls)),
            }
        ],
        "usage": usage.as_openai(),
    }
    return ChatResponse(body=body, usage=usage)


class ConverseStreamTranslator(ChunkEnvelope):
    """Turns ConverseStream event frames into OpenAI chunks, one frame at a time."""

    def __init__(self, completion_id: str, model: str) -> None:
        super().__init__(completion_id, model)
        self.tool_indices: dict[int, int] = {}  # contentBlockIndex → OpenAI tool_calls index
        self.stop_reason: str | None = None
        self.usage: Usage | None = None

    def feed_frame(self, headers: dict[str, Any], payload: bytes) -> list[JSON]:
        """One decoded frame; exception frames raise (with `mid_stream=True`)."""
        message_type = headers.get(":message-type")
        if message_type == "exception":
            raise stream_exception(str(headers.get(":exception-type") or ""), payload)
        if message_type == "error":
            code = str(headers.get(":error-code") or "")
            raise stream_exception(
                code, orjson.dumps({"message": headers.get(":error-message") or code})
            )
        event = loads(payload, "bedrock stream") if payload else {}
        return self.feed(str(headers.get(":event-type") or ""), event)

    def feed(self, event_type: str, event: JSON) -> list[JSON]:
        if event_type == "contentBlockStart":
            tool_use = (event.get("start") or {}).get("toolUse")
            if tool_use is None:
                return []
            index = self.tool_indices.setdefault(
                int(event.get("contentBlockIndex") or 0), len(self.tool_indices)
            )
            call = {
                "index": index,
                "id": tool_use.get("toolUseId") or f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {"name": tool_use.get("name", ""), "arguments": ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        if event_type == "contentBlockDelta":
            return self._delta(int(event.get("contentBlockIndex") or 0), event.get("delta") or {})
        if event_type == "messageStop":
            self.stop_reason = event.get("stopReason") or "end_turn"
            return self.finish() if self.done else []
        if event_type == "metadata":
            self.usage = usage_from_converse(event.get("usage"))
            return self.finish() if self.done else []
        return []  # messageStart (its role went out with first()), contentBlockStop

    @property
    def done(self) -> bool:
        """Both messageStop and metadata seen (live streams send metadata last)."""
        return self.stop_reason is not None and self.usage is not None

    def _delta(self, block: int, delta: JSON) -> list[JSON]:
        if delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        tool_use = delta.get("toolUse")
        if tool_use is not None and block in self.tool_indices:
            arguments = {"arguments": tool_use.get("input", "")}
            call = {"index": self.tool_indices[block], "function": arguments}
            return [self._chunk({"tool_calls": [call]})]
        reasoning = (delta.get("reasoningContent") or {}).get("text")
        if reasoning:
            return [self._chunk({"reasoning": reasoning})]
        return []

    def finish(self) -> list[JSON]:
        """The finish chunk and the usage chunk (usage zero if no metadata ever came)."""
        reason = finish_reason(self.stop_reason, bool(self.tool_indices))
        usage_chunk = self._chunk({})
        usage_chunk["choices"] = []
        usage_chunk["usage"] = (self.usage or Usage()).as_openai()
        return [self._chunk({}, reason), usage_chunk]


# --- errors ----------------------------------------------------------------------------

_AUTH_ERRORS = {
    "accessdeniedexception",
    "unrecognizedclientexception",
    "invalidsignatureexception",
    "incompletesignatureexception",
    "missingauthenticationtokenexception",
    "expiredtokenexception",
    "invalidclienttokenid",
    "signaturedoesnotmatch",
}


_STALE_CREDENTIAL_ERRORS = frozenset(
    {"UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException"}
)


def _mapped_error(
    kind: str, status: int, message: str, retry_after: float | None = None
) -> UpstreamError:
    """`kind` is the AWS error name, any case (`ThrottlingException`, `throttlingException`)."""
    name = kind.lower()
    text = f"bedrock: {message}" if message else f"bedrock: {kind or f'HTTP {status}'}"
    if name in _AUTH_ERRORS or (not name and status in (401, 403)):
        # Bedrock refused Omen's own credentials or model access: not the client's fault, and
        # another provider may still answer.
        return UpstreamError(
            502,
            f"upstream rejected Omen's credentials ({kind or status}): {message}",
            type_="upstream_auth_error",
            code=kind or None,
            retryable=True,
        )
    if name in ("throttlingexception", "servicequotaexceededexception", "toomanyrequestsexception"):
        return UpstreamError(
            429, text, type_="rate_limit_error", code=kind, retry_after=retry_after
        )
    if name == "modelnotreadyexception":
        return UpstreamError(
            status if status in (429, 503) else 503, text, code=kind, retryable=True
        )
    if name == "serviceunavailableexception":
        return UpstreamError(503, text, code=kind, retry_after=retry_after)
    if name == "validationexception":
        return UpstreamError(400, text, type_="invalid_request_error", code=kind, retryable=False)
    if name == "resourcenotfoundexception" or (not name and status == 404):
        return UpstreamError(
            404, text, type_="invalid_request_error", code="model_not_found", retryable=True
        )
    if name == "modeltimeoutexception":
        return UpstreamError(504, text, type_="timeout", code=kind)
    if name in ("modelerrorexception", "modelstreamerrorexception"):
        return UpstreamError(502, text, code=kind, retryable=True)
    if name == "internalserverexception":
        return UpstreamError(500, text, code=kind)
    if status in (400, 413, 422):
        return UpstreamError(status, text, type_="invalid_request_error", code=kind or None)
    return UpstreamError(status if status >= 500 or status == 429 else 502, text, code=kind or None)


def bedrock_error(status: int, body: bytes, headers: httpx.Headers) -> UpstreamError:
    """`x-amzn-errortype: ThrottlingException:http://internal.amazon.com/…` + `{"message"}`."""
    kind = (headers.get("x-amzn-errortype") or "").split(":", 1)[0].strip()
    try:
        data = orjson.loads(body)
        message = str(data.get("message") or data.get("Message") or "")
        kind = kind or str(data.get("__type") or "").rsplit("#", 1)[-1]
    except (orjson.JSONDecodeError, AttributeError):
        message = body.decode(errors="replace")[:500]
    return _mapped_error(kind, status, message, parse_retry_after(headers))


def stream_exception(kind: str, payload: bytes) -> UpstreamError:
    """An exception frame inside a 200 stream (`:message-type=exception`)."""
    try:
        data = orjson.loads(payload) if payload else {}
    except orjson.JSONDecodeError:
        data = {"message": payload.decode(errors="replace")[:500]}
    message = str(data.get("message") or kind)
    if data.get("originalMessage"):
        original = data.get("originalStatusCode")
        message = f"{message} ({original}: {data['originalMessage']})"
    error = _mapped_error(kind, 500, message)
    error.mid_stream = True
    return error


# --- transport -------------------------------------------------------------------------


async def iter_frames(response: httpx.Response, where: str) -> AsyncGenerator[Any, None]:
    """Decode the binary event stream as its bytes arrive (frames straddle reads)."""
    frames = EventStreamBuffer()
    try:
        raw = cast(AsyncGenerator[bytes, None], response.aiter_raw())
        async with aclosing(raw) as chunks:
            async for chunk in chunks:
                frames.add_data(chunk)
                for frame in frames:
                    yield frame
    except httpx.HTTPError as exc:
        error = transport_error(exc, where)
        error.mid_stream = True
        raise error from exc
    except ParserError as exc:
        raise UpstreamError(502, f"{where}: corrupt event stream ({exc})", mid_stream=True) from exc


class BedrockProvider:
    """Adapter for one `[providers.NAME]` of type bedrock; `endpoint` is the runtime base URL.

    Auth is a Bedrock API key (`api_key`, or $AWS_BEARER_TOKEN_BEDROCK) sent as a Bearer token,
    else SigV4 with botocore's standard credential chain, resolved once off the event loop and
    refreshed (again off the loop) before it expires.
    """

    def __init__(self, config: ProviderConfig) -> None:
        self.name = config.name
        self._models = list(config.models)
        self._clients = UpstreamClients(
            timeout=config.timeout, connect_timeout=config.connect_timeout
        )
        key = config.api_key.get_secret_value() if config.api_key else None
        self._bearer = key or os.environ.get("AWS_BEARER_TOKEN_BEDROCK") or None
        self._region = config.region or region_of(config.base_url or "", None)
        self._credentials: Any = None
        self._credentials_lock = asyncio.Lock()

    async def _frozen_credentials(self) -> Any:
        credentials = self._credentials
        if credentials is not None and not (
            isinstance(credentials, RefreshableCredentials) and credentials.refresh_needed()
        ):
            return credentials.get_frozen_credentials()
        async with self._credentials_lock:
            try:
                if self._credentials is None:
                    self._credentials = await asyncio.to_thread(_resolve_credentials)
                if self._credentials is None:
                    raise UpstreamError(
                        502,
                        f"{self.name}: no AWS credentials (set AWS_ACCESS_KEY_ID and "
                        "AWS_SECRET_ACCESS_KEY, a profile or a role, or a Bedrock api_key)",
                        type_="upstream_auth_error",
                        retryable=True,
                    )
                # Refreshing may call STS or the instance metadata service: not on the loop.
                return await asyncio.to_thread(self._credentials.get_frozen_credentials)
            except BotoCoreError as exc:
                raise UpstreamError(
                    502,
                    f"{self.name}: AWS credentials unavailable: {exc}",
                    type_="upstream_auth_error",
                    retryable=True,
                ) from exc

    async def _request(self, endpoint: str, path: str, body: JSON) -> tuple[JSON, dict[str, str]]:
        """The Converse payload and the headers that authorise exactly its bytes."""
        payload = to_converse(body)
        if self._bearer:
            return payload, {
                "content-type": "application/json",
                "authorization": f"Bearer {self._bearer}",
            }
        region = region_of(endpoint, self._region)
        if region is None:
            raise UpstreamError(
                502,
                f"{self.name}: no region to sign for (set region or $AWS_REGION)",
                type_="upstream_auth_error",
                retryable=True,
            )
        credentials = await self._frozen_credentials()
        # The helpers serialise the payload again; orjson is deterministic, so the bytes sent
        # are the bytes signed.
        url = endpoint.rstrip("/") + path
        return payload, sign(credentials, region, url, orjson.dumps(payload))

    def _forget_rejected_credentials(self, error: UpstreamError) -> None:
        # Rotated keys or a new profile: resolve the chain again on the next request. Not for
        # AccessDenied (an IAM policy or model access), which new credentials would not fix.
        if error.code in _STALE_CREDENTIAL_ERRORS and not self._bearer:
            self._credentials = None

    async def chat(self, endpoint: str, body: JSON) -> ChatResponse:
        model = body["model"]
        where = f"{self.name} {endpoint}"
        path = model_path(model, "converse")
        payload, headers = await self._request(endpoint, path, body)
        headers["accept"] = "application/json"
        try:
            raw, _ = await post_json(
                self._clients.get(endpoint),
                path,
                payload,
                headers=headers,
                where=where,
                on_error=bedrock_error,
            )
        except UpstreamError as exc:
            self._forget_rejected_credentials(exc)
            raise
        data = loads(raw, where)
        if not isinstance(data, dict) or "output" not in data:
            raise UpstreamError(502, f"{where}: Converse answer has no output")
        return from_converse(data, f"chatcmpl-{uuid.uuid4().hex[:24]}", model)

    async def stream(self, endpoint: str, body: JSON) -> AsyncIterator[JSON]:
        model = body["model"]
        where = f"{self.name} {endpoint}"
        path = model_path(model, "converse-stream")
        translator = ConverseStreamTranslator(f"chatcmpl-{uuid.uuid4().hex[:24]}", model)
        payload, headers = await self._request(endpoint, path, body)
        headers["accept"] = EVENT_STREAM
        try:
            async with (
                open_stream(
                    self._clients.get(endpoint),
                    path,
                    payload,
                    headers=headers,
                    where=where,
                    on_error=bedrock_error,
                ) as response,
                aclosing(iter_frames(response, where)) as frames,
            ):
                async for frame in frames:
                    chunks = translator.feed_frame(frame.headers, frame.payload)
                    for chunk in translator.opening(chunks):
                        yield chunk
                    if translator.done:
                        return
        except UpstreamError as exc:
            exc.mid_stream = translator.started
            self._forget_rejected_credentials(exc)
            raise
        if translator.stop_reason is not None or translator.usage is not None:
            for chunk in translator.finish():  # one of messageStop and metadata never came
                yield chunk
            return
        raise UpstreamError(
            502, f"{where}: stream ended without messageStop", mid_stream=translator.started
        )

    async def embed(self, endpoint: str, body: JSON) -> EmbeddingResponse:
        raise UpstreamError(
            400,
            f"{self.name}: embeddings are not served through Bedrock's Converse API",
            type_="invalid_request_error",
            code="unsupported_operation",
            retryable=True,  # another provider may embed
        )

    async def list_models(self, endpoint: str) -> list[str]:
        # Listing is a control-plane call (bedrock, not bedrock-runtime): the config is the list.
        return list(self._models)

    async def probe(self, endpoint: str) -> Probe:
        """An unauthenticated HEAD: proves DNS, TCP and TLS to the endpoint, costs no tokens.

        Bedrock has no token-free authenticated runtime check, so health is mostly passive:
        credentials, throttling and model access show up in the outcomes of real requests.
        Any HTTP answer (usually a 403 or 404) counts as reachable.
        """
        started = time.perf_counter()
        try:
            await self._clients.get(endpoint).head("/")
        except httpx.HTTPError as exc:
            error = transport_error(exc, f"{self.name} {endpoint}")
            return Probe(False, (time.perf_counter() - started) * 1000, error=error.message)
        return Probe(True, (time.perf_counter() - started) * 1000)

    async def aclose(self) -> None:
        await self._clients.aclose()
