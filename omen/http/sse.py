"""A lean ASGI response for server-sent events fed by a stream pump.

Starlette's StreamingResponse runs an anyio task group per response to watch for a
disconnect; on the hot path that costs more than the rest of a stream's setup. One waiter on
`receive()` does the same job: when the client goes, sending stops (the pump carries on and
records the real usage) and the pump is told who hung up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from starlette.types import Message, Receive, Scope, Send


class EventStreamResponse:
    def __init__(
        self,
        body: AsyncIterator[bytes],
        headers: dict[str, str],
        on_disconnect: Callable[[], None],
    ) -> None:
        self.body = body
        self.on_disconnect = on_disconnect
        raw = [(b"content-type", b"text/event-stream; charset=utf-8")]
        raw.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())
        self.raw_headers = raw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        waiter: asyncio.Future[Message] = asyncio.ensure_future(receive())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async for part in self.body:
                if waiter.done():
                    self.on_disconnect()
                    return
                await send({"type": "http.response.body", "body": part, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            self.on_disconnect()
        finally:
            waiter.cancel()
            aclose = getattr(self.body, "aclose", None)
            if aclose is not None:
                await aclose()
