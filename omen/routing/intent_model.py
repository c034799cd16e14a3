"""The learned text model behind intent classification: features, weights, scoring.

A multinomial logistic regression over binary features of the prompt: lower-cased words and
word pairs, plus a few named shapes (code fence, stack trace, LaTeX, $ amount, arithmetic…)
that words alone miss. A second, binary head over the same features estimates difficulty.
Weights are trained offline by scripts/train_intents.py from data/intents/ and shipped in
intent_model.bin next to this file; scoring is a few hundred dict look-ups in pure Python, so
it stays well under a millisecond and needs no numerical library. Every score is a sum of
named feature weights, which is what makes the answer explainable.
"""

from __future__ import annotations

import functools
import json
import math
import re
import struct
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

CLASSES = ("code", "math", "reasoning", "general")
MODEL_PATH = Path(__file__).with_name("intent_model.bin")
_MAGIC = b"OMIM\x01"

# Only a bounded slice of a long prompt is read: its head (the ask, usually) and its tail.
HEAD_CHARS, TAIL_CHARS = 600, 200
HEAD_TOKENS, TAIL_TOKENS = 90, 30
SHAPE_HEAD, SHAPE_TAIL = 500, 200  # named shapes are looked for in a smaller slice still
SYSTEM_CHARS = 500
SYSTEM_WEIGHT = 0.7  # a system prompt tips a vague question; it does not decide alone
# Persona boilerplate says nothing about the task ("You are a helpful assistant").
_SYSTEM_STOP = frozenset(
    [
        "you",
        "are",
        "your",
        "the",
        "and",
        "that",
        "this",
        "with",
        "will",
        "should",
        "always",
        "never",
        "helpful",
        "assistant",
        "answer",
        "answers",
        "user",
        "users",
        "please",
        "respond",
        "reply",
        "concise",
        "friendly",
        "expert",
        "senior",
    ]
)

_DATE = re.compile(r"\b\d{1,4}[/.-]\d{1,2}[/.-]\d{2,4}\b|\b\d{1,2}:\d{2}\b")
_TOKEN = re.compile(r"\\[a-z]+|[^\W\d_]+(?:'[^\W\d_]+)?|\d+(?:[.,]\d+)?|[^\w\s]")

# Named shapes: (name, expression, gate). A shape fires at most once and carries its own
# weights. The gate is a few plain substrings of the lower-cased text, at least one of which
# any match must contain; checking them first (`in` is far cheaper than a regex scan) keeps
# long prompts under the latency budget. Expressions marked lower run on lower-cased text.
_SHAPE_SPECS: tuple[tuple[str, str, tuple[str, ...], bool], ...] = (
    ("code fence", r"```", ("```",), False),
    (
        "stack trace",
        r"Traceback \(most recent call last\)|^\s+at [\w.$<>]+\(|Exception in thread"
        r"|^panic: |error\[E\d{4}\]|npm ERR!|Segmentation fault|^\s*File \".+\", line \d+"
        r"|\w(?:Error|Exception): ",
        (
            "error",
            "exception",
            "traceback",
            "panic: ",
            "npm err",
            "segmentation",
            'file "',
            "\tat ",
            "  at ",
        ),
        False,
    ),
    (
        "code syntax",
        r"^\s*(?:def|class|fn|func|function|public|private|import|from \S+ import"
        r"|#include|package|using|const|let|var)\b[^\n]*[(:{=;]|[;{]\s*$|=>|::|->\s*\w"
        r"|\w\.\w+\(|\w\[\w*\]|\bself\.|\bthis\.",
        (),
        False,
    ),
    ("indented block", r"(?:^(?: {4}|\t)\S[^\n]*\n){2,}", ("\n    ", "\n\t"), False),
    (
        "latex",
        r"\\(?:frac|dfrac|sqrt|int|sum|prod|lim|cdot|times|infty|pi|theta|alpha|binom"
        r"|mathbb|angle|le|ge|neq|log|sin|cos|tan|left|right|begin)\b|\$[^$\n]{1,80}\$",
        ("\\", "$"),
        False,
    ),
    (
        "equation",
        r"[a-z0-9)]\s*[+\-*/^]\s*[a-z0-9(]\s*=|=\s*-?\d|\b[a-z]\s*=\s*-?\d",
        ("=",),
        False,
    ),
    ("$ amount", r"\$\s?\d", ("$",), False),
    ("percent", r"\d\s?%|\bper ?cent\b", ("%", "per cent", "percent"), True),
    ("arithmetic", r"\d\s?[+*/×÷^]\s?\d|\d\s[-]\s\d", (), False),
    (
        "unit rate",
        r"\bper (?:hour|day|week|month|year|minute|second|kg|pound|mile|unit)\b",
        ("per ",),
        True,
    ),
    ("multiple choice", r"^\s*\(?[a-e][).:]\s+\S", (), True),
    # Options that are words (people, verdicts, claims) read like a deduction puzzle;
    # options that are numbers read like a calculation.
    (
        "worded options",
        r"^\s*\(?[a-e][).:]\s+[^\d\n]{2,}$|\([a-e]\) [^\d()\n]{2,}\([b-f]\)",
        (),
        True,
    ),
    ("numeric options", r"^\s*\(?[a-e][).:]\s*[-$]?\d|\([a-e]\)\s?[-$]?\d", (), True),
    ("if-then", r"\bif\b[^.?!\n]{1,120}?\bthen\b", ("then",), True),
    (
        "deduction ask",
        r"must (?:also )?be (?:true|false)|can(?:not)? be (?:properly |logically )?inferred"
        r"|most strongly supported|follows? (?:logically|necessarily)|deductively valid"
        r"|valid or invalid|logically follows?",
        ("must", "infer", "support", "follow", "valid"),
        True,
    ),
    (
        "quantity",
        r"\d\s?(?:cm|mm|km|kg|mg|ml|mph|km/h|m/s|miles?|meters?|metres?|feet|inches"
        r"|pounds?|ounces?|liters?|litres?|gallons?|dollars?|cents?|hours?|minutes?)\b",
        (),
        True,
    ),
    (
        "shell",
        r"^\s*\$ \w|\bsudo \w|^\s*(?:git|npm|pip|docker|kubectl|cargo|curl) [-\w]",
        ("$ ", "sudo", "git ", "npm ", "pip ", "docker ", "kubectl ", "cargo ", "curl "),
        False,
    ),
    (
        "sql",
        r"\bselect\b[^;\n]{1,120}\bfrom\b|\binsert into\b|\bcreate table\b",
        ("select", "insert into", "create table"),
        True,
    ),
    (
        "markup",
        r"^\s*</?[a-z][\w-]*(?:\s[^>]*)?>|^\s*[\w.-]+:\s*\n\s+[-\w]",
        ("<", ":"),
        False,
    ),
)
_SHAPES: tuple[tuple[str, re.Pattern[str], tuple[str, ...], bool], ...] = tuple(
    (name, re.compile(regex, re.MULTILINE), gate, lower)
    for name, regex, gate, lower in _SHAPE_SPECS
)
SHAPE_NAMES = frozenset(spec[0] for spec in _SHAPES)
_SHAPE_RANK = {spec[0]: i for i, spec in enumerate(_SHAPES)}
# Bookkeeping features: they shift every score a little but explain nothing on their own.
_QUIET = ("length:", "numbers:0")


def _bounded(text: str, head: int, tail: int) -> str:
    if len(text) <= head + tail:
        return text
    return text[:head] + "\n" + text[-tail:]


def _shapes(text: str, lowered: str) -> list[str]:
    found = []
    for name, pattern, gate, lower in _SHAPES:
        if gate and not any(g in lowered for g in gate):
            continue
        if pattern.search(lowered if lower else text):
            found.append(name)
    return found


def _tokens(lowered: str) -> list[str]:
    tokens = _TOKEN.findall(_DATE.sub(" <date> ", lowered))
    if len(tokens) > HEAD_TOKENS + TAIL_TOKENS:
        tokens = tokens[:HEAD_TOKENS] + tokens[-TAIL_TOKENS:]
    return ["<n>" if t[0].isdigit() else t for t in tokens]


def features(text: str, system: str = "") -> dict[str, float]:
    """Binary features of the prompt (and, weaker, of the system prompt)."""
    text = _bounded(text, HEAD_CHARS, TAIL_CHARS)
    lowered = text.lower()
    feats: dict[str, float] = {}
    tokens = _tokens(lowered)
    if tokens:
        feats["^" + tokens[0]] = 1.0
    numbers = 0
    previous = "<s>"
    for token in tokens:
        feats[token] = 1.0
        feats[previous + " " + token] = 1.0
        previous = token
        numbers += token == "<n>"
    if len(text) > SHAPE_HEAD + SHAPE_TAIL:
        window = _bounded(text, SHAPE_HEAD, SHAPE_TAIL)
        shapes = _shapes(window, window.lower())
    else:
        shapes = _shapes(text, lowered)
    for name in shapes:
        feats[name] = 1.0
    feats["numbers:" + ("0" if not numbers else "1-2" if numbers < 3 else "3+")] = 1.0
    size = len(text)
    feats["length:" + ("short" if size < 60 else "medium" if size < 400 else "long")] = 1.0
    if system:
        system = _bounded(system, SYSTEM_CHARS, 0)
        lowered = system.lower()
        for token in _tokens(lowered):
            if len(token) > 3 and token not in _SYSTEM_STOP and token[0] != "<":
                feats.setdefault(token, SYSTEM_WEIGHT)
        for name in _shapes(system, lowered):
            feats.setdefault(name, SYSTEM_WEIGHT)
    return feats


@dataclass(frozen=True, slots=True)
class Prediction:
    probabilities: tuple[tuple[str, float], ...]  # every class, most likely first
    signals: tuple[str, ...]  # the features that pushed hardest toward the winner
    difficulty: float
    known: int  # how many of the prompt's features the model has weights for

    @property
    def intent(self) -> str:
        return self.probabilities[0][0]


class Model:
    """Weights per feature: one per class, then the difficulty weight."""

    def __init__(
        self,
        classes: tuple[str, ...],
        weights: dict[str, tuple[float, ...]],
        bias: tuple[float, ...],
    ) -> None:
        self.classes = classes
        self.weights = weights
        self.bias = bias
        # A feature's pull toward one class is its weight there minus its mean weight:
        # computed once here, not per feature per request.
        n = len(classes)
        self._mean = {name: sum(w[:n]) / n for name, w in weights.items()}

    def predict(self, feats: dict[str, float], top: int = 3) -> Prediction:
        n = len(self.classes)
        present: list[tuple[str, float, tuple[float, ...]]] = []
        get = self.weights.get
        for name, value in feats.items():
            w = get(name)
            if w is not None:
                present.append((name, value, w))
        if n == 4:  # the shipped shape, unrolled: this loop is most of the cost
            t0, t1, t2, t3, t4 = self.bias
            for _, value, (w0, w1, w2, w3, w4) in present:
                t0 += w0 * value
                t1 += w1 * value
                t2 += w2 * value
                t3 += w3 * value
                t4 += w4 * value
            totals = [t0, t1, t2, t3, t4]
        else:
            totals = list(self.bias)
            for _, value, w in present:
                for i in range(n + 1):
                    totals[i] += w[i] * value
        known = 0
        for name, _, _ in present:
            if not name.startswith(_QUIET):
                known += 1
        peak = max(totals[:n])
        exps = [math.exp(t - peak) for t in totals[:n]]
        norm = sum(exps)
        ranked = sorted(
            ((c, e / norm) for c, e in zip(self.classes, exps, strict=True)),
            key=lambda kv: -kv[1],
        )
        best = self.classes.index(ranked[0][0])
        # Named shapes that back the winner come first, in their fixed order (a code fence
        # before generic code syntax), then the words that pushed hardest.
        # Features that read the same ("summarize" and "<s> summarize") pool their gain.
        pooled: dict[str, tuple[int, float]] = {}
        mean = self._mean
        for name, value, w in present:
            gain = value * (w[best] - mean[name])
            if gain > 0.05 and not name.startswith(_QUIET):
                label = _label(name)
                rank, total = pooled.get(label, (_SHAPE_RANK.get(name, len(_SHAPE_RANK)), 0.0))
                pooled[label] = (rank, total + gain)
        gains = sorted((rank, -gain, label) for label, (rank, gain) in pooled.items())
        signals = tuple(label for _, _, label in gains[:top])
        difficulty = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, totals[n]))))
        return Prediction(tuple(ranked), signals, difficulty, known)


@functools.lru_cache(maxsize=65536)
def _label(name: str) -> str:
    if name in SHAPE_NAMES:
        return name
    if name.startswith("numbers:"):
        return f"{name[8:]} numbers"
    if name.startswith("length:"):
        return f"{name[7:]} prompt"
    if name.startswith("^"):
        return f'starts "{name[1:]}"'
    return f'"{name.replace("<s> ", "").replace("<n>", "N").replace("<date>", "DATE")}"'


def save(
    path: Path,
    classes: Iterable[str],
    bias: Iterable[float],
    weights: dict[str, list[float]],
    meta: dict[str, object],
) -> None:
    names = sorted(weights)
    classes = tuple(classes)
    header = json.dumps(
        {"classes": classes, "bias": list(bias), "names": names, "meta": meta},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    flat = array("f", (x for name in names for x in weights[name]))
    with path.open("wb") as f:
        f.write(_MAGIC + struct.pack("<I", len(header)) + header)
        flat.tofile(f)


def load(path: Path = MODEL_PATH) -> Model:
    data = path.read_bytes()
    if not data.startswith(_MAGIC):
        raise ValueError(f"{path} is not an intent model")
    (size,) = struct.unpack_from("<I", data, len(_MAGIC))
    start = len(_MAGIC) + 4
    header = json.loads(data[start : start + size])
    flat = array("f")
    flat.frombytes(data[start + size :])
    classes = tuple(header["classes"])
    width = len(classes) + 1
    names = header["names"]
    if len(flat) != len(names) * width:
        raise ValueError(f"{path}: {len(flat)} weights for {len(names)} features")
    weights = {name: tuple(flat[i * width : (i + 1) * width]) for i, name in enumerate(names)}
    return Model(classes, weights, tuple(header["bias"]))


@cache
def shipped() -> Model:
    """The model in the package, read once per process."""
    return load(MODEL_PATH)
