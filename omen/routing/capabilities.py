"""What a model can do — see images, call tools, how long a context it takes — from its name.

Well-known families are recognised by name; `[providers.X.model_info."model"]` overrides any
of it. An unknown model is assumed to handle text and tools with an 8k context: routing would
rather try a model than refuse a request on a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Capabilities:
    vision: bool
    tools: bool
    context_window: int


_DEFAULT = Capabilities(vision=False, tools=True, context_window=8192)

# (pattern on the lower-cased model name, vision, tools, context window); first match wins.
_FAMILIES: tuple[tuple[re.Pattern[str], bool, bool, int], ...] = tuple(
    (re.compile(pattern), vision, tools, window)
    for pattern, vision, tools, window in (
        (r"embed", False, False, 8192),
        (r"^(?:gpt-4\.1|gpt-5)", True, True, 1_000_000),
        (r"^(?:gpt-4o|gpt-4-turbo|gpt-4-vision|chatgpt-4o|o1|o3|o4)", True, True, 128_000),
        (r"^gpt-4", False, True, 8192),
        (r"^gpt-3\.5", False, True, 16_385),
        (r"claude", True, True, 200_000),
        (r"gemini", True, True, 1_000_000),
        (r"grok-.*vision|grok-4", True, True, 256_000),
        (r"grok", False, True, 131_072),
        (
            r"llava|bakllava|vision|-vl\b|vl:|qwen2\.5vl|minicpm-v|moondream|gemma3",
            True,
            False,
            8192,
        ),
        (r"llama3\.[123]|llama-3\.[123]|llama4", False, True, 131_072),
        (r"qwen2\.5|qwen3", False, True, 32_768),
        (r"mistral|mixtral|command-r|hermes|firefunction", False, True, 32_768),
        (r"deepseek-coder|codellama|starcoder|phi|gemma|tinyllama", False, False, 16_384),
    )
)


def infer_capabilities(model: str) -> Capabilities:
    name = model.lower().split("/")[-1]
    for pattern, vision, tools, window in _FAMILIES:
        if pattern.search(name):
            return Capabilities(vision, tools, window)
    return _DEFAULT
