"""Run one fake upstream in the foreground for benchmarks::

python -m tests.fakes --kind openai --port 9001 --no-record --delay-ms 0
"""

from __future__ import annotations

import argparse

import uvicorn

from tests.fakes.asgi import ASGIApp
from tests.fakes.behaviour import Delay, Reply, Script, TextReply
from tests.fakes.ollama_upstream import make_ollama_app
from tests.fakes.openai_upstream import make_openai_app
from tests.fakes.server import uvicorn_config
from tests.fakes.state import FakeState

# About 20 tokens, so a benchmark's responses look like a short real answer.
BENCH_TEXT = (
    "Sure! Here is a short answer: the capital of France is Paris, a city known for art and food."
)


def build_app(args: argparse.Namespace) -> ASGIApp:
    reply: Reply = TextReply(text=BENCH_TEXT)
    if args.delay_ms > 0:
        reply = Delay(args.delay_ms / 1000, reply)
    fake = FakeState(
        models=args.models or [],
        api_key=args.api_key,
        script=Script(default=reply),
        record=args.record,
    )
    if args.kind == "ollama":
        return make_ollama_app(fake)
    return make_openai_app(fake, args.flavour)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes", description=__doc__)
    parser.add_argument("--kind", choices=["openai", "ollama"], default="openai")
    parser.add_argument("--flavour", choices=["openai", "xai", "azure"], default="openai")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument(
        "--no-record", dest="record", action="store_false", help="don't keep requests"
    )
    parser.add_argument(
        "--delay-ms", type=float, default=0.0, help="wait before each reply's headers"
    )
    parser.add_argument("--api-key", default=None, help="require this key (default: accept any)")
    parser.add_argument("--models", nargs="*", default=None, help="known models (default: any)")
    args = parser.parse_args(argv)
    uvicorn.Server(uvicorn_config(build_app(args), args.host, args.port)).run()


if __name__ == "__main__":
    main()
