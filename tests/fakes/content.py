"""Deterministic content the fakes derive from a request: text pieces, token estimates,
embedding vectors and provider-shaped ids."""

from __future__ import annotations

import base64
import hashlib
import math
import random
import re
import string
import struct
import uuid
from typing import Any

_WORD_PIECE = re.compile(r"\s*\S+|\s+")
# Splits '{"city":"New York City"}' into '{"', 'city', '":"', 'New', ' York', ' City', '"}'
# exactly as OpenAI's recorded tool-call stream does.
_JSON_PIECE = re.compile(r'[{}":,\[\]]+|\s*[^{}":,\[\]\s]+|\s+')
_ALNUM = string.ascii_letters + string.digits
_rng = random.Random()


def text_pieces(text: str) -> list[str]:
    """Split ``text`` into the word pieces a model would stream ("Hello!", " How", …)."""
    return _WORD_PIECE.findall(text)


def argument_pieces(arguments_json: str) -> list[str]:
    """Split a tool call's JSON arguments into stream-sized pieces."""
    return _JSON_PIECE.findall(arguments_json)


def _words_in(content: Any) -> int:
    if isinstance(content, str):
        return len(content.split())
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, dict):
                text = part.get("text")
                total += len(text.split()) if isinstance(text, str) else 85  # an image tile
        return total
    return 0


def estimate_prompt_tokens(messages: Any) -> int:
    """Words of every message plus a few framing tokens per message, like a tokenizer would."""
    if not isinstance(messages, list):
        return 3
    total = 3
    for message in messages:
        if isinstance(message, dict):
            total += 4 + _words_in(message.get("content"))
    return total


def count_input_words(inputs: list[str]) -> int:
    return sum(max(1, len(text.split())) for text in inputs)


def embedding_for(text: str, dimensions: int = 8) -> list[float]:
    """A unit vector that depends only on ``text`` and ``dimensions``."""
    raw = b""
    counter = 0
    while len(raw) < dimensions * 2:
        raw += hashlib.blake2b(f"{counter}:{text}".encode(), digest_size=64).digest()
        counter += 1
    values = [
        (int.from_bytes(raw[i * 2 : i * 2 + 2], "little") / 32767.5) - 1.0
        for i in range(dimensions)
    ]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


def embedding_as_base64(vector: list[float]) -> str:
    """OpenAI's ``encoding_format: base64``: little-endian float32s."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def embedding_inputs(value: Any) -> list[str]:
    """Normalise an embeddings ``input`` (string, list of strings, or token lists) to strings."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item if isinstance(item, str) else str(item) for item in value]
    return [str(value)]


def random_alnum(length: int) -> str:
    return "".join(_rng.choices(_ALNUM, k=length))


def chat_completion_id() -> str:
    return "chatcmpl-" + random_alnum(29)


def tool_call_id() -> str:
    return "call_" + random_alnum(24)


def xai_tool_call_id() -> str:
    return f"call_{_rng.randrange(10**7, 10**8)}"


def xai_id() -> str:
    return str(uuid.uuid4())


def obfuscation() -> str:
    """Random padding of random length, like the current API's ``obfuscation`` field."""
    return random_alnum(_rng.randrange(0, 16))
