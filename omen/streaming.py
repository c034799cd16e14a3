"""A streamed answer after its first event: a pump task that owns the upstream stream.

The gateway fails over until an upstream yields its first event, then hands the stream here.
The pump is a task of its own, so a client that hangs up does not stop it: it reads the
upstream to the end (bounded by the provider's timeout) to learn the real usage, and records
the request with its exact cost either way. The client's side only reads from a queue.
Translated streams are OpenAI chunks that the client's encoder turns into its format;
passed-through streams are the upstream's own events (`Relayed`), forwarded as they came.
After the first byte reached the client nothing is resent; an upstream failure then ends
the stream with an error event in the client's format.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from omen.calls import Attempt, CallContext
from omen.fleet import EndpointState
from omen.formats.base import ChunkEncoder
from omen.formats.chat import OpenAIEncoder
from omen.providers import JSON, Relayed, UpstreamError, Usage
from omen.routing import Candidate, RouteDecision

if TYPE_CHECKING:
    from omen.gateway import Gateway

log = logging.getLogger("omen.stream")

_MAX_QUEUED = 64  # events waiting for a slow client before the pump waits too


class StreamPump:
    def __init__(
        self,
        gateway: Gateway,
        ctx: CallContext,
        decision: RouteDecision,
        candidate: Candidate,
        state: EndpointState,
        upstream: AsyncIterator[JSON | Relayed],
        first: JSON | Relayed,
        attempts: list[Attempt],
        began: float,
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
        self.encoder: ChunkEncoder = ctx.encoder or OpenAIEncoder(
            bool((ctx.body.get("stream_options") or {}).get("include_usage"))
        )
        # Bounded: a slow client holds the pump, which stops reading the upstream (TCP
        # backpressure) instead of buffering the stream in memory.
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=_MAX_QUEUED)
        self.client_closed = False
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._pump())
        self.gateway.track(self.task)

    async def _pump(self) -> None:
        usage: Usage | None = None
        model = self.candidate.model
        error: UpstreamError | None = None
        relayed = isinstance(self.first, Relayed)
        try:
            item: JSON | Relayed | None = self.first
            while item is not None:
                if isinstance(item, Relayed):
                    usage = item.usage or usage
                    model = item.model or model
                    data = item.data
                else:
                    if item.get("model"):
                        model = item["model"]
                    if item.get("usage"):
                        usage = Usage.from_openai(item["usage"])
                    data = self.encoder.chunk(item)
                if data:
                    await self._send(data)
                item = await anext(self.upstream, None)
            if not relayed:  # a relayed stream carried its own ending
                await self._send(self.encoder.done(usage))
        except UpstreamError as exc:
            error = exc
        except Exception as exc:  # a broken upstream must still end the client's stream
            log.exception("stream pump failed", extra={"request_id": self.ctx.request_id})
            error = UpstreamError(502, f"{self.candidate.provider}: {exc}", mid_stream=True)
        finally:
            self.gateway.fleet.end(self.state)
            if error is not None:
                self.gateway.report_failure(self.state, error)
            else:
                self.gateway.fleet.record_success(self.state, _ms(self.began), self.ttft_ms)
            # The row and the spend first: a client that never reads again cannot hold them.
            estimated = usage is None
            if usage is None:
                # No usage reported (a cut or failed stream): the prompt was sent and is
                # billed, so row and limits both count Omen's estimate of it.
                route = self.ctx.route
                usage = Usage(prompt_tokens=route.est_prompt_tokens if route else 0)
            self._record(usage, model, error, estimated=estimated)
            await self._settle(usage)
            if error is None:
                await self.gateway.pin_session(self.ctx, self.candidate)
            elif not error.delivered:
                await self._send(self.encoder.error(error))
            await self._send(None)

    async def _settle(self, usage: Usage) -> None:
        admission = self.ctx.admission
        if admission is None:
            return
        await self.gateway.usage.settle(
            admission, usage.total_tokens, self.gateway.recorder.price(self.candidate, usage)
        )

    def _record(
        self, usage: Usage, model: str, error: UpstreamError | None, *, estimated: bool
    ) -> None:
        status = 200
        self.attempts.append(
            Attempt(self.candidate, 200, error.message if error else None, _ms(self.began))
        )
        final = usage
        cost = self.gateway.recorder.price(self.candidate, final)
        message = None
        if error is not None:
            message = f"stream ended by upstream error after first byte: {error.message}"
        if estimated:
            note = "no usage from the upstream: prompt tokens estimated, output unknown"
            message = f"{message}; {note}" if message else note
        self.gateway.recorder.record(
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

    async def _send(self, data: bytes | None) -> None:
        """Hand bytes to the client's side, waiting while it is behind; dropped once it left
        (the pump still reads the upstream to its end, for the usage)."""
        if not self.client_closed:
            await self.queue.put(data)

    def client_gone(self) -> None:
        self.client_closed = True
        while not self.queue.empty():  # free a pump waiting on a full queue
            self.queue.get_nowait()

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
                self.client_gone()


async def close_quietly(upstream: AsyncIterator[JSON | Relayed]) -> None:
    aclose = getattr(upstream, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:  # closing a failed stream must not mask the failure
            log.debug("closing a failed upstream stream raised", exc_info=True)


def _ms(began: float) -> float:
    return (time.perf_counter() - began) * 1000
