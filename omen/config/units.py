"""How the configuration writes durations, money and sizes, and pydantic types that read them."""

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated

from pydantic import BeforeValidator

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
# A whole duration is one or more parts ("1h30m"); checked first so "5x" is not half-read.
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+")
_PLAIN_NUMBER = re.compile(r"\d+(?:\.\d+)?")

_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")

DURATION_HINT = "write e.g. 250ms, 30s, 5m, 1h, 7d, or a number of seconds"
SIZE_HINT = "write e.g. 512KiB, 32MiB, 10MB, or a number of bytes"


def _number(value: object, what: str) -> float | None:
    """The value as a float when it is a TOML number, None when it is something else."""
    # TOML booleans are Python ints; `timeout = true` is a mistake, not one second.
    if isinstance(value, bool):
        raise ValueError(f"expected {what}, got a boolean")
    if isinstance(value, int | float):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"expected {what}, got {value!r}")
        if number < 0:
            raise ValueError("must not be negative")
        return number
    if not isinstance(value, str):
        raise ValueError(f"expected {what}, got {type(value).__name__}")
    return None


def parse_duration(value: object) -> float:
    """Seconds from "250ms", "30s", "5m", "1h", "7d", "1h30m", or a plain number of seconds."""
    number = _number(value, "a duration")
    if number is not None:
        return number
    text = str(value).strip()
    if text.startswith("-"):
        raise ValueError("must not be negative")
    if _PLAIN_NUMBER.fullmatch(text):
        return float(text)
    if not _DURATION.fullmatch(text):
        raise ValueError(f"not a duration: {text!r} ({DURATION_HINT})")
    return sum(
        float(amount) * _DURATION_UNITS[unit] for amount, unit in _DURATION_PART.findall(text)
    )


def parse_money(value: object) -> float:
    """US dollars from a TOML number or a string such as "10.00" or "$10.00"."""
    number = _number(value, "an amount in USD")
    if number is not None:
        return number
    text = str(value).strip().removeprefix("$").strip()
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not an amount of money: {value!r} (write e.g. 10.00)") from None
    if not amount.is_finite():
        raise ValueError(f"not an amount of money: {value!r} (write e.g. 10.00)")
    if amount < 0:
        raise ValueError("must not be negative")
    return float(amount)


def parse_size(value: object) -> int:
    """Bytes from "512KiB", "32MiB", "10MB" (1024s or 1000s as written), or a plain integer."""
    number = _number(value, "a size")
    if number is not None:
        if not number.is_integer():
            raise ValueError(f"a size in bytes must be a whole number ({SIZE_HINT})")
        return int(number)
    text = str(value).strip()
    if text.startswith("-"):
        raise ValueError("must not be negative")
    if text.isdigit():
        return int(text)
    match = _SIZE.fullmatch(text.lower())
    if match is None or match.group(2) not in _SIZE_UNITS:
        raise ValueError(f"not a size: {text!r} ({SIZE_HINT})")
    return int(Decimal(match.group(1)) * _SIZE_UNITS[match.group(2)])


Duration = Annotated[float, BeforeValidator(parse_duration)]
Money = Annotated[float, BeforeValidator(parse_money)]
Size = Annotated[int, BeforeValidator(parse_size)]
