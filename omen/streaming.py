"""Streamed chat: failover until the first chunk, then a pump that owns the upstream stream.

The pump is a task of its own, so a client that hangs up does not stop it: it reads the
upstream to the end (bounded by the provider's timeout) to learn the real usage, and records
the request with its exact cost either way. The client's side only reads from a queue.
After the first byte reached the client nothing is resent; an upstream failure then ends
the stream with an OpenAI-style error event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Protocol

import orjson

from omen.fleet import EndpointState
from omen.gateway import Attempt, CallContext, Failover, Gateway
from omen.providers import JSON, UpstreamError, Usage
from omen.routing import Candidate, RouteDecision

log = logging.getLogger("omen.stream")

DONE = b"data: [DONE]\n\n"


def sse(chunk: JSON) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


class ChunkEncoder(Protocol):
    """Turns OpenAI chunks into what the client's wire format wants on the socket."""

    def chunk(self, chunk: JSON) -> bytes: ...

    def done(self, usage: Usage | None) -> bytes: ...

    def error(self, error: UpstreamError) -> bytes: ...


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


class StreamPump:
    def __init__(
        self,
        gateway: Gateway,
        ctx: CallContext,
        decision: RouteDecision,
        candidate: Candidate,
        state: EndpointState,
        upstream: AsyncIterator[JSON],
        first: JSON,
        attempts: list[Attempt],
        began: float,
        encoder: ChunkEncoder | None = None,
    ) -> None:
        self.gateway = gateway
        self.ctx = ctx
        self.decision = decision
        self.candidate = candidate
        self.state = state
        self.upstream = upstream
        self.first = first
        self.attempts = attempts
        self.began = began
        self.ttft_ms = ctx.elapsed_ms()
        options = ctx.body.get("stream_options") or {}
        self.encoder = encoder or OpenAIEncoder(bool(options.get("include_usage")))
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.client_closed = False
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._pump())
        self.gateway.track(self.task)

    async def _pump(self) -> None:
        usage: Usage | None = None
        model = self.candidate.model
        error: UpstreamError | None = None
        try:
            chunk: JSON | None = self.first
            while chunk is not None:
                if chunk.get("model"):
                    model = chunk["model"]
                if chunk.get("usage"):
                    usage = Usage.from_openai(chunk["usage"])
                data = self.encoder.chunk(chunk)
                if data:
                    self.queue.put_nowait(data)
                chunk = await anext(self.upstream, None)
            self.queue.put_nowait(self.encoder.done(usage))
        except UpstreamError as exc:
            error = exc
        except Exception as exc:  # a broken upstream must still end the client's stream
            log.exception("stream pump failed", extra={"request_id": self.ctx.request_id})
            error = UpstreamError(502, f"{self.candidate.provider}: {exc}", mid_stream=True)
        finally:
            self.state.in_flight -= 1
            if error is not None:
                self.queue.put_nowait(self.encoder.error(error))
                self.gateway.report_failure(self.state, error)
            else:
                self.gateway.fleet.record_success(self.state, _ms(self.began), self.ttft_ms)
            self.queue.put_nowait(None)
            self._record(usage, model, error)
            await self._settle(usage)

    async def _settle(self, usage: Usage | None) -> None:
        admission = self.ctx.admission
        if admission is None:
            return
        if usage is None:
            return  # no usage reported: the reservation stands as the best estimate
        await self.gateway.usage.settle(
            admission, usage.total_tokens, self.gateway.price(self.candidate, usage)
        )

    def _record(self, usage: Usage | None, model: str, error: UpstreamError | None) -> None:
        status = 200
        self.attempts.append(
            Attempt(self.candidate, 200, error.message if error else None, _ms(self.began))
        )
        final = usage or Usage()
        cost = self.gateway.price(self.candidate, final)
        message = None
        if error is not None:
            message = f"stream ended by upstream error after first byte: {error.message}"
        elif usage is None:
            message = "upstream stream carried no usage; tokens unknown"
        self.gateway.record(
            self.ctx,
            self.decision,
            self.candidate,
            status,
            final,
            cost,
            attempts=self.attempts,
            error=message,
            ttft_ms=self.ttft_ms,
            client_closed=self.client_closed,
            model=model,
        )

    def client_gone(self) -> None:
        self.client_closed = True

    async def body(self) -> AsyncIterator[bytes]:
        finished = False
        try:
            while not finished:
                item = await self.queue.get()
                # Whatever else is already queued goes out in the same write: fewer sends,
                # same SSE bytes.
                parts = []
                while item is not None:
                    parts.append(item)
                    if self.queue.empty():
                        break
                    item = self.queue.get_nowait()
                finished = item is None
                if parts:
                    yield b"".join(parts)
        finally:
            if not finished:
                self.client_closed = True


async def open_stream(
    gateway: Gateway, ctx: CallContext, encoder: ChunkEncoder | None = None
) -> StreamPump:
    """Route and open the upstream stream, failing over until one yields its first chunk."""
    decision = gateway.decide(ctx, gateway.fleet.chat_models())
    await gateway.admit(ctx, decision)
    failover = Failover(gateway, ctx, decision)
    for candidate, state, provider, body in failover.tries():
        began = time.perf_counter()
        state.in_flight += 1
        upstream = provider.stream(candidate.url, body)
        try:
            with gateway.tracing.span(
                "omen.upstream",
                provider=candidate.provider,
                endpoint=candidate.endpoint,
                model=candidate.model,
                stream=True,
            ):
                first = await anext(upstream)
        except (UpstreamError, StopAsyncIteration) as exc:
            state.in_flight -= 1
            await _close(upstream)
            if isinstance(exc, StopAsyncIteration):
                exc = UpstreamError(502, f"{candidate.provider}: empty stream")
            if failover.failed(candidate, state, exc, began):
                continue
            break
        except BaseException:
            state.in_flight -= 1
            await _close(upstream)
            raise
        pump = StreamPump(
            gateway,
            ctx,
            decision,
            candidate,
            state,
            upstream,
            first,
            failover.attempts,
            began,
            encoder,
        )
        pump.start()
        return pump
    raise await failover.give_up()


async def _close(upstream: AsyncIterator[JSON]) -> None:
    aclose = getattr(upstream, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:  # closing a failed stream must not mask the failure
            log.debug("closing a failed upstream stream raised", exc_info=True)


def _ms(began: float) -> float:
    return (time.perf_counter() - began) * 1000
