"""How numbers look in the console: money, tokens, latency, times, and text bars.

Colours are the 16 ANSI names, so they read the same in 16, 256 and true colour over SSH.
"""

from __future__ import annotations

import math
import time

from rich.text import Text

LEVEL_STYLES = {"ok": "green", "soft": "yellow", "hard": "bold red", "none": "dim"}
HEALTH_STYLES = {
    "healthy": "green",
    "unhealthy": "bold red",
    "cooling": "yellow",
    "degraded": "yellow",  # a fleet's instances disagree: some see it down
    "drained": "magenta",
    "unknown": "dim",
}
_EIGHTHS = " ▏▎▍▌▋▊▉█"


def money(value: float | None, *, none: str = "-") -> str:
    """$12.34; under a cent four places ($0.0008); under a hundredth of a cent its first
    significant digit ($0.00008, $0.000003), so a cheap request never reads as $0. Nine
    characters at most (for narrow columns): below a millionth of a dollar, `<$.000001`.
    """
    if value is None:
        return none
    if value == 0:
        return "$0"
    size = abs(value)
    sign = "-" if value < 0 else ""
    if size < 0.000001:
        return f"{sign}<$.000001"
    if size < 0.0001:
        places = -math.floor(math.log10(size))  # 0.00008 -> 5: the first significant digit
        digits = f"{size:.{places}f}".rstrip("0")  # 0.000096 rounds up to 0.00010 -> 0.0001
        return f"{sign}${digits}"
    if size < 0.01:
        return f"{sign}${size:.4f}"
    if size < 1000:
        return f"{sign}${size:.2f}"
    return f"{sign}${size:,.0f}"


def count(value: float | None) -> str:
    """1234 -> 1.2k, for tokens and requests in narrow columns."""
    if value is None:
        return "-"
    if abs(value) < 1000:
        return f"{value:g}" if isinstance(value, float) else str(value)
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.1f}{unit}"
    return str(value)


def millis(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1000:
        return f"{value:.0f}ms"
    return f"{value / 1000:.1f}s"


def percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction * 100:.0f}%"


def gib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**30:.1f}G"


def clock(ts: float) -> str:
    """Local wall-clock time of a moment, HH:MM:SS."""
    return time.strftime("%H:%M:%S", time.localtime(ts))


def stamp(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def ago(ts: float | None, now: float) -> str:
    if ts is None:
        return "never"
    seconds = max(0.0, now - ts)
    if seconds < 60:
        return f"{seconds:.0f}s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m ago"
    if seconds < 86400:
        return f"{seconds / 3600:.0f}h ago"
    return f"{seconds / 86400:.0f}d ago"


def level_of(fraction: float | None) -> str:
    if fraction is None:
        return "none"
    if fraction >= 1.0:
        return "hard"
    return "soft" if fraction >= 0.9 else "ok"


def bar(fraction: float | None, width: int, *, label: bool = True, known: bool = True) -> Text:
    """A gauge `███▍    42%`, coloured green / yellow at 90% / red at 100%.

    No fraction: "no limit", or "limit ?" when the limit is not known (daemon unreachable).
    """
    if fraction is None:
        words = "no limit" if known else "limit ?"
        return Text(words.ljust(width + (5 if label else 0)), style="dim")
    style = LEVEL_STYLES[level_of(fraction)]
    filled = max(0.0, min(1.0, fraction)) * width
    whole = int(filled)
    eighths = int((filled - whole) * 8)
    body = "█" * whole + (_EIGHTHS[eighths] if whole < width and eighths else "")
    text = Text(body.ljust(width), style=style)
    text.stylize("on grey23", len(body), width)
    if label:
        text.append(f"{fraction * 100:>4.0f}%", style=style)
    return text


def styled(value: str, style: str) -> Text:
    return Text(value, style=style)


def status_text(status: int) -> Text:
    style = "bold red" if status >= 500 else "yellow" if status >= 400 else "green"
    return Text(str(status), style=style)


def elide(value: str, width: int) -> str:
    """Fit `value` into `width` cells by cutting its middle: `ollama/deepseek-coder-v2:16b` →
    `ollama/deep…der-v2:16b`, so that names differing at the end (gpt-4o, gpt-4o-mini; two
    boxes on one host) stay apart."""
    if width <= 0:
        return ""
    if len(value) <= width:
        return value
    if width == 1:
        return "…"
    tail = (width - 1) // 2
    head = width - 1 - tail
    return value[:head] + "…" + value[len(value) - tail :]
