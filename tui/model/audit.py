"""The audit trail as the console shows it: the store's newest audit rows, and for each who
acted (a key, or a signed-in operator with the role they acted as), what, on what, and what
changed — in the words `omen logs --audit` uses.

One bounded read (`ORDER BY ts DESC LIMIT`, served by the `audit_ts` index), never a scan.
"""

from __future__ import annotations

from omen_store import AuditRow, StoreReader, audit_change

AUDIT_LIMIT = 200  # rows the screen holds: the newest, which is what an operator looks for

# Actors that are not a person or a key: what they stand for, said in the strip.
SYSTEM_ACTORS = {
    "omen": "the daemon itself",
    "sighup": "a SIGHUP to the daemon",
    "loopback": "someone on the daemon's host (no keys configured: loopback only)",
}


def read_audit(reader: StoreReader, limit: int = AUDIT_LIMIT) -> list[AuditRow]:
    """The newest `limit` audit rows, newest first."""
    return reader.audit_rows(limit=limit)


def who(row: AuditRow) -> str:
    """`ada@example.com (admin)` for a signed-in operator; a key id or a system actor as is."""
    return f"{row.actor} ({row.role})" if row.role else row.actor


def is_system(row: AuditRow) -> bool:
    return not row.role and row.actor in SYSTEM_ACTORS


def who_in_full(row: AuditRow) -> str:
    """Who acted, said in words: the strip under the table."""
    if row.role:
        return f"{row.actor}, signed in as {row.role}"
    if row.actor.startswith("key_"):
        return f"API key {row.actor}"
    if row.actor in SYSTEM_ACTORS:
        return f"{row.actor} ({SYSTEM_ACTORS[row.actor]})"
    return row.actor


# One wording for the CLI and the console (omen_store.audit_change).
change = audit_change


# -- the table's columns -------------------------------------------------------------------

ORDER = ("time", "who", "action", "target", "change")  # left to right
MINIMUM = {"time": 11, "who": 10, "action": 6, "target": 8, "change": 10}
CAPS = {"who": 32, "action": 13, "target": 28}  # longer values are middle-elided
GROWS = ("who", "action", "target")  # room goes to them in this order; `change` gets the rest
LEAST = sum(MINIMUM.values()) + len(ORDER)  # 50 cells: below it `change` is left to the strip


def widths(room: int, widest: dict[str, int]) -> dict[str, int]:
    """Content widths of the audit table for `room` cells, each column followed by a one-cell
    gap. The change is the least important column (the strip shows it whole), so it gets
    what who, action and target leave, and goes first when the terminal is narrow."""
    columns = [name for name in ORDER if name != "change" or room >= LEAST]
    sized = {name: MINIMUM[name] for name in columns}
    left = room - sum(sized.values()) - len(columns)
    for name in GROWS:
        want = max(MINIMUM[name], min(widest.get(name, 0), CAPS[name]))
        extra = max(0, min(left, want - sized[name]))
        sized[name] += extra
        left -= extra
    if "change" in sized:
        sized["change"] += max(0, left)
    return sized
