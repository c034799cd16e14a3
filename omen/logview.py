"""`omen logs`: the request log and the audit trail, read straight from the store (works with
the daemon down)."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from omen_store import AuditRow, RequestRow, StoreError, StoreReader, audit_change

_FOLLOW_POLL_S = 0.5


def format_row(row: RequestRow) -> str:
    when = datetime.fromtimestamp(row.ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
    route = f"{row.provider or '-'}/{row.model or row.requested_model}"
    if row.endpoint:
        route += f"@{row.endpoint}"
    tokens = f"{row.prompt_tokens}+{row.completion_tokens}tok"
    flags = " stream" if row.stream else ""
    if row.client_closed:
        flags += " client-closed"
    served = f"{row.id}@{row.instance}" if row.instance else row.id  # which instance of a fleet
    text = (
        f"{when} {served} {row.level.upper():5} {row.container} {row.status} {route} "
        f"{row.latency_ms:.0f}ms {tokens} ${row.cost_usd:.6f}{flags} | {row.reason}"
    )
    if row.error and row.error not in row.reason:
        text += f" | error: {row.error}"
    return text


def format_audit(row: AuditRow) -> str:
    """One line: when, who (with the role a signed-in operator acted as), what, on what, and
    what changed."""
    when = datetime.fromtimestamp(row.ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
    who = f"{row.actor} ({row.role})" if row.role else row.actor
    text = f"{when} {who} {row.action} {row.target}"
    change = audit_change(row.before, row.after)
    if change:
        text += f" {change}"
    if row.detail:
        text += f" | {row.detail}"
    return text


def row_json(row: RequestRow) -> dict[str, Any]:
    data = {name: getattr(row, name) for name in row.__dataclass_fields__}
    data["level"] = row.level
    return data


def _print(rows: list[RequestRow], as_json: bool) -> None:
    for row in rows:
        if as_json:
            sys.stdout.write(orjson.dumps(row_json(row), default=str).decode() + "\n")
        else:
            sys.stdout.write(format_row(row) + "\n")
    sys.stdout.flush()


def run_logs(args: argparse.Namespace, database: Path | str) -> int:
    try:
        reader = StoreReader(database)
    except StoreError as exc:  # missing, not a database, unreadable: one line, no traceback
        print(exc, file=sys.stderr)
        return 1
    since_ts = time.time() - args.since if args.since else None
    if args.audit:
        audit_rows = reader.audit_rows(since_ts=since_ts, limit=args.limit)
        for audit in reversed(audit_rows):  # oldest first, like a log
            if args.json:
                fields = {name: getattr(audit, name) for name in audit.__dataclass_fields__}
                print(orjson.dumps(fields, default=str).decode())
            else:
                print(format_audit(audit))
        if not audit_rows and not args.json:
            print("no audit rows" + (" in that period" if since_ts else ""), file=sys.stderr)
        return 0
    filters = {
        "container": args.container,
        "provider": args.provider,
        "level": args.level,
        "instance": args.instance,
    }
    rows = reader.recent_requests(**filters, since_ts=since_ts, limit=args.limit)
    rows.reverse()  # oldest first, like a log
    _print(rows, args.json)
    if not rows and not args.json:
        print("no requests match" + (" (yet; following)" if args.follow else ""), file=sys.stderr)
    if not args.follow:
        return 0
    last = max((r.rowid for r in rows), default=reader.max_rowid())
    try:
        while True:
            time.sleep(_FOLLOW_POLL_S)
            fresh = reader.recent_requests(**filters, after_rowid=last, limit=1000)
            if fresh:
                _print(fresh, args.json)
                last = max(last, fresh[-1].rowid)
    except KeyboardInterrupt:
        return 0
