"""The floor under any proxy on Omen's stack: uvicorn (httptools, uvloop) in, one pooled aiohttp
session out, the body parsed and re-encoded with orjson, streams relayed chunk by chunk — and
nothing else (no auth, routing, limits, recording or metrics).

    python -m bench.bare_proxy PORT UPSTREAM_BASE_URL

`bench/overhead.py` runs it beside Omen so that the share of the direct throughput the stack
itself leaves is measured, not guessed.
"""

from __future__ import annotations

import sys

import aiohttp
import orjson
import uvicorn
from starlette.types import Receive, Scope, Send


class BareProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if self.session is None:
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))
        request = orjson.loads(body)
        async with self.session.post(
            self.upstream + scope["path"].removeprefix("/v1"),
            data=orjson.dumps(request),
            headers={"content-type": "application/json"},
        ) as upstream:
            kind = upstream.headers.get("content-type", "application/json").encode()
            if not request.get("stream"):
                out = orjson.dumps(orjson.loads(await upstream.read()))
                await send(
                    {
                        "type": "http.response.start",
                        "status": upstream.status,
                        "headers": [(b"content-type", kind)],
                    }
                )
                await send({"type": "http.response.body", "body": out})
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": upstream.status,
                    "headers": [(b"content-type", kind)],
                }
            )
            async for chunk in upstream.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})


def main() -> None:
    port, upstream = int(sys.argv[1]), sys.argv[2]
    uvicorn.run(
        BareProxy(upstream),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


if __name__ == "__main__":
    main()
