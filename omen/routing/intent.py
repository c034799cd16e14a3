"""What a request is for (code, reasoning, vision, math, agent, general) and which signals said so.

`metadata.intent` from the client always wins. Otherwise the structure decides first (an image
part is vision, tool definitions or tool messages are an agent loop), then weighted text
signals over the system prompt and the last user message. Every signal that fired is named,
so the route reason can say `intent=code (code fence, python)`. Pure regular expressions over
a bounded slice of text: well under a millisecond on a typical request.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

INTENTS = ("code", "reasoning", "vision", "math", "agent", "general")

# Long prompts are judged by their head and tail: that is where the ask and the pasted
# material's nature show, and it keeps the cost flat for 100 KB contexts.
_HEAD, _TAIL = 6000, 2000


@dataclass(frozen=True, slots=True)
class Pattern:
    """A syntax signal: a regular expression over the original text.

    `hints` are lower-case substrings at least one of which any match contains: when none is
    in the text, the (comparatively slow) expression is not run at all.
    """

    intent: str
    name: str
    regex: str
    weight: float
    hints: tuple[str, ...] = ()

    @property
    def compiled(self) -> re.Pattern[str]:
        return _COMPILED[self.regex]


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """A word signal: whole words, word prefixes and phrases, over the lower-cased text."""

    intent: str
    name: str
    weight: float
    words: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()


def _v(
    intent: str, name: str, weight: float, words: str, prefixes: str = "", phrases: str = ""
) -> Vocabulary:
    return Vocabulary(
        intent,
        name,
        weight,
        frozenset(words.split()),
        tuple(prefixes.split()),
        tuple(p.strip() for p in phrases.split("|") if p.strip()),
    )


_PATTERNS = (
    Pattern("code", "code fence", r"```", 3.0, ("```",)),
    Pattern("code", "stack trace", r"Traceback \(most recent call last\)", 3.0, ("traceback",)),
    Pattern("code", "stack trace", r"^[ \t]+at [\w.$<>]+\(", 3.0, (" at ",)),
    Pattern(
        "code",
        "stack trace",
        r"Exception in thread|(?:Error|Exception): |^panic: |error\[E\d{4}\]",
        3.0,
        ("exception", "error", "panic:"),
    ),
    Pattern(
        "code",
        "stack trace",
        r"[Ss]egmentation fault|undefined reference to|npm ERR!",
        3.0,
        ("segmentation fault", "undefined reference", "npm err!"),
    ),
    Pattern("code", "stack trace", r'^[ \t]*File ".+", line \d+', 3.0, ('file "',)),
    Pattern(
        "code",
        "python",
        r"^[ \t]*(?:def|class) \w+.*:[ \t]*$|^[ \t]*(?:from \w[\w.]* )?import \w|\bself\.\w",
        2.0,
        ("def ", "class ", "import ", "self."),
    ),
    Pattern(
        "code",
        "javascript",
        r"\b(?:const|let) \w+ = |\bfunction\s*\w*\s*\(|=>\s*[{(]|console\.log|require\(['\"]"
        r"|\bexport (?:default|const|function)",
        2.0,
        ("const ", "let ", "function", "=>", "console.log", "require(", "export "),
    ),
    Pattern(
        "code",
        "go",
        r"^[ \t]*func (?:\(\w+ \*?\w+\) )?\w+\(|:= |^package \w+|\bfmt\.\w",
        2.0,
        ("func ", ":= ", "package ", "fmt."),
    ),
    Pattern(
        "code",
        "rust",
        r"\bfn \w+\s*[<(]|\blet mut |\bimpl\b[^\n]*\{|::new\(|\b(?:Result|Option)<",
        2.0,
        ("fn ", "let mut ", "impl", "::new(", "result<", "option<"),
    ),
    Pattern(
        "code",
        "java/c#",
        r"\b(?:public|private|protected)\s+(?:static\s+)?[\w<>\[\]]+\s+\w+\s*\(|System\.out\."
        r"|\bnew [A-Z]\w*\(\)",
        2.0,
        ("public ", "private ", "protected ", "system.out", "new "),
    ),
    Pattern(
        "code",
        "c/c++",
        r"#include\s*[<\"]|\bint main\s*\(|\bstd::|\bprintf\(|\bmalloc\(",
        2.0,
        ("#include", "int main", "std::", "printf(", "malloc("),
    ),
    Pattern(
        "code",
        "sql",
        r"(?i:\bSELECT\b[^;]{1,200}?\bFROM\b|\bINSERT INTO\b|\bCREATE (?:TABLE|INDEX)\b"
        r"|\bALTER TABLE\b|\bGROUP BY\b)",
        2.0,
        ("select", "insert into", "create table", "create index", "alter table", "group by"),
    ),
    Pattern(
        "code",
        "shell",
        r"^[ \t]*\$ \w|\bsudo \w|^[ \t]*(?:git|npm|pip|docker|kubectl|cargo|make|curl|chmod|ssh)"
        r" [-\w]",
        2.0,
        (
            "$ ",
            "sudo ",
            "git ",
            "npm ",
            "pip ",
            "docker ",
            "kubectl ",
            "cargo ",
            "make ",
            "curl ",
            "chmod ",
            "ssh ",
        ),
    ),
    Pattern(
        "code",
        "markup/config",
        r"^[ \t]*<(?:div|span|html|template|svg)\b|^[ \t]*[\w.-]+:[ \t]*\n[ \t]+- ",
        1.5,
        ("<div", "<span", "<html", "<template", "<svg", ":\n"),
    ),
    Pattern(
        "math",
        "latex",
        r"\\(?:frac|int|sum|sqrt|lim|prod|cdot|infty|partial|binom|mathbb)\b"
        r"|\$[^$\n]*[\\^_=][^$\n]*\$",
        3.0,
        ("\\", "$"),
    ),
    Pattern("math", "equation", r"\d ?[x-z]\b", 2.0, ("x", "y", "z")),
    Pattern("math", "equation", r"[a-z\d] ?\^ ?\d|[x-z]²", 2.0, ("^", "²")),
    Pattern("math", "equation", r"[x-z] ?[+\-*/] ?\d+ ?=|= ?0\b|f\([x-z]\) ?=", 2.0, ("=",)),
    Pattern("math", "equation", r"\d ?[×÷] ?\d|\d ?! ", 2.0, ("×", "÷", "!")),
    Pattern("math", "arithmetic", r"\d(?:\.\d+)? ?[+\-*/x×] ?\d", 1.0),
    Pattern("math", "arithmetic", r"\d ?% ?of\b|\bP\(", 1.0, ("%", "p(")),
)

_COMPILED = {p.regex: re.compile(p.regex, re.MULTILINE) for p in _PATTERNS}
_ALL_HINTS = frozenset(hint for p in _PATTERNS for hint in p.hints)
_WEIGHTS = {(p.intent, p.name): p.weight for p in _PATTERNS}

_VOCABULARIES = (
    _v(
        "code",
        "code terms",
        1.0,
        "function functions method methods compiler compile compiles compiled regex regexp"
        " exception exceptions segfault linter variable variables endpoint endpoints api sdk"
        " dependency dependencies codebase script scripts snippet repo repository query queries"
        " algorithm array arrays string strings integer integers boolean cron vim awk sed grep"
        " flexbox div makefile build ci docker formula spreadsheet",
        "refactor debug deploy crash implement",
        "unit test|stack trace|stacktrace|runtime error|null pointer|syntax error|pull request"
        "|merge conflict|source code|container image|o(n)|o(1)|o(log n)|o(n log n)|o(n^2)",
    ),
    _v(
        "code",
        "language name",
        1.0,
        "python javascript typescript golang rust java kotlin swift c++ c# ruby php bash"
        " powershell sql postgres postgresql mysql sqlite react vue django flask fastapi node"
        " node.js dockerfile kubernetes terraform yaml json html css",
    ),
    _v(
        "math",
        "proof",
        2.5,
        "prove proof theorem lemma corollary induction contradiction q.e.d",
    ),
    _v(
        "math",
        "math terms",
        1.0,
        "solve equation derivative differentiate integral integrate probability variance matrix"
        " matrices polynomial prime modulo factorial logarithm simplify inequality series vector"
        " geometry triangle radius hypotenuse arithmetic calculus quadratic permutation"
        " permutations combination combinations dice percent percentage regression maximize"
        " maximise minimize minimise markov derive mph chance odds inverse",
        "eigen converge algebra compound",
        "expected value|standard deviation|coin flip|interest rate|how many ways"
        "|confidence interval|stationary distribution|without replacement|multiples of"
        "|multiple of|sum of|km/h|m/s",
    ),
    _v(
        "reasoning",
        "why/how come",
        1.0,
        "why warum pourquoi",
        "",
        "how come|what causes|what caused|what explains|por qué|por que|how can both",
    ),
    _v(
        "reasoning",
        "trade-offs",
        1.5,
        "tradeoff tradeoffs trade-off trade-offs versus vs compare comparison prioritize"
        " prioritise",
        "weigh",
        "pros and cons|which is better|which would be better|should i|should we"
        "|decide between|poke holes|strongest argument|avantages et|vor- und nachteile",
    ),
    _v(
        "reasoning",
        "analysis",
        1.0,
        "evaluate implication implications consequence consequences critique justify argue"
        " argument decision risk risks plan architecture design reason reasoning postmortem"
        " estimate debate convince",
        "analy assess strateg analise",
        "root cause|what would you|how should|think it through",
    ),
    _v(
        "reasoning",
        "step by step",
        1.5,
        "",
        "",
        "step by step|step-by-step|think through|think carefully|first principles",
    ),
)

_WORD = re.compile(r"[a-z0-9+#]+(?:[.'/-][a-z0-9+#]+)*")

# Asking to translate, summarise or write prose about something is general work whatever the
# subject: a stronger case is needed before it counts as code, math or reasoning.
_PROSE_TASK = re.compile(
    r"^\W*(?:please\s+)?(?:translate|summari[sz]e|rewrite|reword|proofread|paraphrase"
    r"|write (?:a|an|me a) (?:\w+ ){0,2}(?:post|email|e-mail|poem|story|tweet|letter|toast|speech"
    r"|caption|slogan|haiku|song|limerick|bio|description|announcement))",
    re.IGNORECASE,
)
_PROSE_MIN_SCORE = 4.0

# When two intents score the same, the more specific one wins.
_PRECEDENCE = {"code": 3, "math": 2, "reasoning": 1}
_MIN_SCORE = 1.0  # below this, nothing was convincing: general
_SIGNAL_CAP = 3  # one kind of signal counts at most this many times


@dataclass(frozen=True, slots=True)
class IntentResult:
    intent: str
    source: str  # "metadata" | "structure" | "text" | "default"
    signals: tuple[str, ...] = ()
    scores: tuple[tuple[str, float], ...] = ()

    def explain(self) -> str:
        if self.source == "metadata":
            return f"intent={self.intent} (from metadata)"
        if not self.signals:
            return f"intent={self.intent} (no signals)"
        return f"intent={self.intent} ({', '.join(self.signals[:3])})"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _has_image(content: Any) -> bool:
    return isinstance(content, list) and any(
        isinstance(p, dict) and p.get("type") in ("image_url", "image", "input_image")
        for p in content
    )


def has_images(messages: list[Any]) -> bool:
    return any(isinstance(m, dict) and _has_image(m.get("content")) for m in messages)


def _bounded(text: str) -> str:
    if len(text) <= _HEAD + _TAIL:
        return text
    return text[:_HEAD] + "\n" + text[-_TAIL:]


def classify(body: dict[str, Any]) -> IntentResult:
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("intent"), str):
        asked = metadata["intent"].strip().lower()
        if asked:
            return IntentResult(asked, "metadata")
    messages = body.get("messages") or []
    if has_images(messages):
        return IntentResult("vision", "structure", ("image part",))
    if body.get("tools") or body.get("functions"):
        return IntentResult("agent", "structure", ("tool definitions",))
    for message in messages:
        if isinstance(message, dict) and (
            message.get("role") in ("tool", "function") or message.get("tool_calls")
        ):
            return IntentResult("agent", "structure", ("tool messages",))
    system = " ".join(
        _text_of(m.get("content"))
        for m in messages
        if isinstance(m, dict) and m.get("role") in ("system", "developer")
    )
    last_user = next(
        (
            _text_of(m.get("content"))
            for m in reversed(messages)
            if isinstance(m, dict) and m.get("role") == "user"
        ),
        "",
    )
    return classify_text(_bounded(last_user), _bounded(system))


def classify_text(text: str, system: str = "") -> IntentResult:
    scores = {"code": 0.0, "math": 0.0, "reasoning": 0.0}
    fired: dict[str, list[tuple[float, str]]] = {}

    def add(intent: str, name: str, weight: float, hits: int) -> None:
        if hits:
            # A strong signal counts once; a weaker one up to _SIGNAL_CAP times.
            gained = weight if weight >= 3.0 else weight * min(hits, _SIGNAL_CAP)
            scores[intent] += gained
            fired.setdefault(intent, []).append((gained, name))

    lower = text.lower()
    system_lower = system.lower()
    present = {hint for hint in _ALL_HINTS if hint in lower}  # one pass of cheap `in` tests
    counted: dict[tuple[str, str], int] = {}
    for pattern in _PATTERNS:
        key = (pattern.intent, pattern.name)
        hits = 0
        if not pattern.hints or not present.isdisjoint(pattern.hints):
            hits = sum(
                1 for _ in zip(range(_SIGNAL_CAP), pattern.compiled.finditer(text), strict=False)
            )
        if (
            not hits
            and system
            and pattern.weight < 3.0
            and (not pattern.hints or any(h in system_lower for h in pattern.hints))
        ):
            hits = 1 if pattern.compiled.search(system) else 0  # a coding system prompt, weakly
        counted[key] = counted.get(key, 0) + hits
    for (intent, name), hits in counted.items():
        add(intent, name, _WEIGHTS[(intent, name)], hits)

    words = Counter(_WORD.findall(lower))
    system_words = set(_WORD.findall(system_lower)) if system else set()
    for vocabulary in _VOCABULARIES:
        if len(words) < len(vocabulary.words):
            hits = sum(n for w, n in words.items() if w in vocabulary.words)
        else:
            hits = sum(words[w] for w in vocabulary.words if w in words)
        if vocabulary.prefixes:
            hits += sum(n for w, n in words.items() if w.startswith(vocabulary.prefixes))
        for phrase in vocabulary.phrases:
            hits += lower.count(phrase)
        if (
            not hits
            and system_words
            and (
                system_words & vocabulary.words
                or any(p in system_lower for p in vocabulary.phrases)
            )
        ):
            hits = 1
        add(vocabulary.intent, vocabulary.name, vocabulary.weight, hits)

    best = max(scores, key=lambda i: (scores[i], _PRECEDENCE[i]))
    ranked = tuple(sorted(scores.items(), key=lambda kv: -kv[1]))
    if scores[best] < _MIN_SCORE:
        return IntentResult("general", "default", (), ranked)
    if scores[best] < _PROSE_MIN_SCORE and _PROSE_TASK.search(text):
        return IntentResult("general", "text", ("prose task",), ranked)
    names = tuple(name for _, name in sorted(fired[best], key=lambda g: -g[0]))
    return IntentResult(best, "text", names, ranked)
