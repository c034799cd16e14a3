"""`omen import-boltfile`: a Boltfile's [services.NAME.omen] blocks as omen.toml
[containers.NAME] tables, with a note for everything that was not carried over.

The keys of a container table are those of a Boltfile's omen block (ContainerConfig says so),
so most values pass through; what moves is the seed's shorthand (`budget_limit`, quota keys
on the block itself, `${NAME}` secrets) and what goes is what Omen has no key for.
"""

from __future__ import annotations

import argparse
import datetime
import difflib
import math
import re
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from omen.config.model import (
    BudgetConfig,
    ContainerConfig,
    ContainerRouting,
    IntentRule,
    QuotaConfig,
    RateLimitConfig,
    Section,
)

PROG = "omen import-boltfile"
Table = dict[str, Any]

# Sub-tables of a container, each checked against its model's keys.
_SECTIONS: dict[str, type[Section]] = {
    "quotas": QuotaConfig,
    "budget": BudgetConfig,
    "rate_limit": RateLimitConfig,
    "routing": ContainerRouting,
}
# Keys of the block copied as they are: everything ContainerConfig has that is not a table.
_PLAIN_KEYS = frozenset(ContainerConfig.model_fields) - set(_SECTIONS) - {"name"}
# What a block may hold, sorted so a "did you mean" hint does not depend on hash order.
_BLOCK_KEYS = sorted({*_PLAIN_KEYS, *_SECTIONS, "budget_limit", *QuotaConfig.model_fields})
# Keys a Boltfile writes for Bolt's side of the connection; Omen has no place for them.
_NOT_IMPORTED = {
    "endpoint": "where Bolt finds Omen, a setting for Bolt's client; not imported",
    "name": "the container's name is the service's name; not imported",
}
_LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
_ENV_WHOLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_ENV_INSIDE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class BoltfileError(ValueError):
    """The Boltfile cannot be imported at all (not TOML, or [services] is not tables)."""


def import_boltfile(text: str, source: str = "Boltfile") -> tuple[str, list[str]]:
    """TOML of one [containers.NAME] table per omen block, and notes on what was not imported."""
    try:
        boltfile = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        reason = str(exc)
        raise BoltfileError(f"not valid TOML: {reason[:1].lower()}{reason[1:]}") from None
    services = boltfile.get("services", {})
    if not isinstance(services, dict):
        raise BoltfileError("services: must be [services.NAME] tables")
    notes: list[str] = []
    if "omen" in boltfile:
        notes.append(
            "omen: Bolt's own connection to Omen (endpoint, api_key) is not imported; "
            "keys in [omen.auth] belong in omen.toml's [auth] api_keys"
        )
    if not services:
        notes.append("services: no [services.NAME] tables, nothing to import")
    containers: dict[str, Table] = {}
    for name in sorted(services):
        service = services[name]
        where = f"services.{_key(name)}"
        block = service.get("omen") if isinstance(service, dict) else None
        if block is None:
            notes.append(f"{where}: no [{where}.omen] block, skipped")
        elif not isinstance(block, dict):
            notes.append(f"{where}.omen: must be a table, skipped")
        else:
            containers[name] = _container(block, f"{where}.omen", notes)
    return _write(containers, source), notes


def _container(block: Table, where: str, notes: list[str]) -> Table:
    """One omen block as a canonical container table; notes name every key left behind."""
    table: Table = {}
    sections: dict[str, Table] = {}
    shorthand: list[tuple[str, str, Any]] = []  # (section, key, value) written on the block
    for key, value in block.items():
        path = f"{where}.{_key(key)}"
        if key in _PLAIN_KEYS:
            table[key] = _value(value, path, notes)
            if key == "local_endpoint" and isinstance(value, str):
                _note_loopback(value, path, notes)
        elif key in _SECTIONS:
            if isinstance(value, dict):
                sections[key] = _section(key, value, path, notes)
            else:
                notes.append(f"{path}: must be a table, not imported")
        elif key == "budget_limit":  # the seed: "USD per day"
            shorthand.append(("budget", "daily", _value(value, path, notes)))
        elif key in QuotaConfig.model_fields:  # the seed's gaming example writes them here
            shorthand.append(("quotas", key, _value(value, path, notes)))
        elif key in _NOT_IMPORTED:
            notes.append(f"{path}: {_NOT_IMPORTED[key]}")
        else:
            notes.append(f"{path}: {_unknown(key, _BLOCK_KEYS)}")
    for section, key, value in shorthand:
        target = sections.setdefault(section, {})
        written = "budget_limit" if section == "budget" else key
        if key in target and target[key] != value:
            notes.append(f"{where}.{written}: ignored, {section}.{key} is also set")
        target.setdefault(key, value)
    return table | {name: sections[name] for name in sections if sections[name]}


def _note_loopback(url: str, where: str, notes: list[str]) -> None:
    """The seed's hybrid example writes http://localhost:11434, which is the service's own
    network; Omen calls the box itself, so from Omen's host that is Omen's localhost."""
    try:
        host = urlsplit(url).hostname
    except ValueError:  # `omen config check` names the bad URL
        return
    if host in _LOOPBACK_HOSTS:
        notes.append(
            f"{where}: imported, but Omen calls this box itself and {host} is Omen's own "
            "host; unless Omen runs beside the box, write an address Omen can reach"
        )


def _section(name: str, values: Table, where: str, notes: list[str]) -> Table:
    model = _SECTIONS[name]
    section: Table = {}
    for key, value in values.items():
        path = f"{where}.{_key(key)}"
        if key not in model.model_fields:
            notes.append(f"{path}: {_unknown(key, list(model.model_fields))}")
        elif name == "routing" and key == "intents":
            if isinstance(value, dict):
                section[key] = {
                    intent: rule
                    for intent, item in value.items()
                    if (rule := _intent(item, f"{path}.{_key(intent)}", notes)) is not None
                }
            else:
                notes.append(f"{path}: must be a table of intent = provider, not imported")
        else:
            section[key] = _value(value, path, notes)
    return section


def _intent(rule: Any, where: str, notes: list[str]) -> Table | None:
    """`code = "ollama"` (the Boltfile's form) as omen.toml's `code = { provider = "ollama" }`."""
    if isinstance(rule, str):
        return {"provider": rule}
    if not isinstance(rule, dict):
        notes.append(f"{where}: must be a provider name or a table, not imported")
        return None
    kept: Table = {}
    for key, value in rule.items():
        if key in IntentRule.model_fields:
            kept[key] = _value(value, f"{where}.{_key(key)}", notes)
        else:
            notes.append(f"{where}.{_key(key)}: {_unknown(key, list(IntentRule.model_fields))}")
    return kept


def _value(value: Any, where: str, notes: list[str]) -> Any:
    """The value, with a shell-style `${NAME}` secret written as Omen's `env:NAME`."""
    if not isinstance(value, str):
        return value
    match = _ENV_WHOLE.fullmatch(value)
    if match:
        return f"env:{match.group(1) or match.group(2)}"
    if _ENV_INSIDE.search(value):
        notes.append(f"{where}: Omen reads only whole values from the environment; copied as is")
    elif where.endswith(".api_key") and not value.startswith("env:"):
        notes.append(f"{where}: a key written in the file; better env:NAME, read at startup")
    return value


def _unknown(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key, not imported{hint}"


# --- TOML out: tomllib only reads, and these few value types are all an omen block holds ----


def _write(containers: dict[str, Table], source: str) -> str:
    origin = "".join(char if char.isprintable() else "?" for char in source)
    lines = [f"# [containers] imported by `omen import-boltfile` from {origin}"]
    for name in sorted(containers):
        lines += _table(("containers", name), containers[name])
    return "\n".join(lines) + "\n"


def _table(path: tuple[str, ...], table: Table) -> list[str]:
    """A [header] with the plain keys, then each sub-table under its own header."""
    nested = [key for key in sorted(table) if _is_section(path, key, table[key])]
    plain = [key for key in sorted(table) if key not in nested]
    lines = []
    if plain or not nested or len(path) == 2:  # [a.b.c] alone makes [a.b]: no empty header
        lines = ["", f"[{'.'.join(_key(part) for part in path)}]"]
    lines += [f"{_key(key)} = {_toml(table[key])}" for key in plain]
    for key in nested:
        lines += _table((*path, key), table[key])
    return lines


def _is_section(path: tuple[str, ...], key: str, value: Any) -> bool:
    # Sub-tables of a container, and routing.intents, get headers; anything else is inline.
    return isinstance(value, dict) and (len(path) == 2 or (path[-1], key) == ("routing", "intents"))


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{_key(key)} = {_toml(value[key])}" for key in sorted(value))
        return "{ " + items + " }" if items else "{}"
    if isinstance(value, datetime.date | datetime.time):  # datetime is a date
        return value.isoformat()
    raise TypeError(f"no TOML form for {type(value).__name__}")  # tomllib returns no other


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f"}
_ESCAPES["\r"] = "\\r"


def _string(text: str) -> str:
    """A TOML basic string: quote, backslash and control characters escaped."""
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


# --- the command ------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="PATH", help="the Boltfile to read")
    parser.add_argument("--out", metavar="FILE", help="write the tables here (default: stdout)")
    parser.add_argument("--force", action="store_true", help="with --out: overwrite FILE")


def run(args: argparse.Namespace) -> int:
    """Notes on stderr, TOML on stdout or in --out; a file problem is one line and exit 1."""
    source = Path(args.path)
    try:
        text = source.read_text(encoding="utf-8")
        output, notes = import_boltfile(text, args.path)
    except BoltfileError as exc:
        return _fail(f"{args.path}: {exc}")
    except FileNotFoundError:
        return _fail(f"{args.path}: no such file")
    except IsADirectoryError:
        return _fail(f"{args.path}: is a directory, not a Boltfile")
    except UnicodeDecodeError:
        return _fail(f"{args.path}: not UTF-8 text")
    except OSError as exc:
        return _fail(f"{args.path}: cannot read: {exc.strerror or exc}")
    if args.out is None:
        sys.stdout.write(output)
    else:
        out = Path(args.out)
        if out.is_dir():
            return _fail(f"--out {args.out}: is a directory")
        if out.exists() and out.resolve() == source.resolve():
            return _fail(f"--out {args.out}: is the Boltfile being read")
        try:
            # "x" refuses an existing file in the step that creates it: no check-then-write race.
            with out.open("w" if args.force else "x", encoding="utf-8") as file:
                file.write(output)
        except FileExistsError:
            return _fail(f"--out {args.out}: exists; add --force to overwrite it")
        except OSError as exc:
            return _fail(f"--out {args.out}: cannot write: {exc.strerror or exc}")
    # After the tables, so a failure stays one line and the notes end the terminal's output.
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def _fail(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return 1
