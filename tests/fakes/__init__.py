"""Fake upstream AI providers (OpenAI, xAI, Azure, Ollama) that speak the real wire formats.

They stand where the outside world would be in Omen's tests and benchmarks::

    fake = FakeState(models=["gpt-4o"], api_key="sk-test")
    with run_fake(make_openai_app(fake)) as upstream:
        fake.script.push(ErrorReply(429))
        ...  # point Omen at upstream.url + "/v1"
"""

from tests.fakes.anthropic_upstream import PromptCache, make_anthropic_app
from tests.fakes.bedrock_upstream import make_bedrock_app
from tests.fakes.behaviour import (
    CutStream,
    Delay,
    ErrorReply,
    MidStreamError,
    Reply,
    Script,
    TextReply,
    ToolCall,
    ToolCallReply,
)
from tests.fakes.gemini_upstream import GeminiKnobs, make_gemini_app
from tests.fakes.ollama_upstream import make_ollama_app
from tests.fakes.openai_upstream import make_openai_app
from tests.fakes.server import RunningFake, refusing_url, run_fake
from tests.fakes.state import FakeState, RecordedRequest

__all__ = [
    "CutStream",
    "Delay",
    "ErrorReply",
    "FakeState",
    "GeminiKnobs",
    "MidStreamError",
    "PromptCache",
    "RecordedRequest",
    "Reply",
    "RunningFake",
    "Script",
    "TextReply",
    "ToolCall",
    "ToolCallReply",
    "make_anthropic_app",
    "make_bedrock_app",
    "make_gemini_app",
    "make_ollama_app",
    "make_openai_app",
    "refusing_url",
    "run_fake",
]
