"""`omen keys create|list|revoke`: container keys through the daemon's admin API, no restart.

`create` prints the new key alone on stdout (so `KEY=$(omen keys create app)` works) and what
it is on stderr; the key is never shown again. Every failure is one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any
from urllib.parse import quote

import orjson

from omen.admin_client import Refused, admin_call


def add_arguments(
    create: argparse.ArgumentParser,
    listing: argparse.ArgumentParser,
    revoke: argparse.ArgumentParser,
) -> None:
    create.add_argument(
        "container",
        nargs="?",
        metavar="CONTAINER",
        help="the container the key acts for (left out with --scope admin)",
    )
    create.add_argument("--name", metavar="N", help="what the key is for, e.g. `ci` or `laptop`")
    create.add_argument(
        "--scope",
        choices=["user", "admin"],
        default="user",
        help="user: the container's requests (default); admin: the admin API, every container",
    )
    listing.add_argument("container", nargs="?", metavar="CONTAINER", help="only its keys")
    listing.add_argument("--json", action="store_true", help="one JSON object per key and line")
    revoke.add_argument("key_id", metavar="KEY_ID", help="the key's id (key_…, `omen keys list`)")
    for parser in (create, listing, revoke):
        parser.add_argument("--url", metavar="URL", help="daemon URL (default: from server.bind)")


def create_body(args: argparse.Namespace) -> dict[str, Any] | str:
    """The request for `omen keys create`, or what is wrong with the arguments."""
    if args.scope == "admin" and args.container:
        return "an admin key acts for every container: leave CONTAINER out"
    if args.scope == "user" and not args.container:
        return "give the CONTAINER the key acts for (or --scope admin for an admin key)"
    body: dict[str, Any] = {"scope": args.scope}
    if args.container:
        body["container"] = args.container
    if args.name:
        body["name"] = args.name
    return body


def run(args: argparse.Namespace, url: str, credential: str | None) -> int:
    prog = f"omen keys {args.keys_command}"
    try:
        if args.keys_command == "create":
            body = create_body(args)
            if isinstance(body, str):
                print(f"{prog}: {body}", file=sys.stderr)
                return 2
            made = admin_call("POST", url, "/admin/keys", credential, body)
            return _created(made)
        if args.keys_command == "list":
            path = "/admin/keys" + (f"?container={quote(args.container)}" if args.container else "")
            return _listed(admin_call("GET", url, path, credential).get("keys"), args.json, url)
        key_id = quote(args.key_id, safe="")
        gone = admin_call("POST", url, f"/admin/keys/{key_id}/revoke", credential)
        print(f"revoked {gone.get('key_id')} ({_owner(gone)}); it is refused from now on")
        return 0
    except Refused as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1


def _created(made: dict[str, Any]) -> int:
    key = made.get("key")
    if not isinstance(key, str):
        raise Refused("the daemon did not answer like Omen's admin API; is --url right?")
    print(key)
    sys.stdout.flush()
    print(
        f"created {made.get('key_id')} ({_owner(made)}); the key above is shown only this once",
        file=sys.stderr,
    )
    return 0


def _listed(keys: object, as_json: bool, url: str) -> int:
    if not isinstance(keys, list):
        raise Refused(f"{url} did not answer like Omen's admin API; is --url right?")
    if as_json:
        for entry in keys:
            print(orjson.dumps(entry).decode())
        return 0
    if not keys:
        print("no keys")
        return 0
    rows = [("KEY ID", "CONTAINER", "SCOPE", "NAME", "SOURCE", "CREATED", "BY", "STATE")]
    for entry in keys:
        created = entry.get("created")
        rows.append(
            (
                str(entry.get("key_id")),
                entry.get("container") or "-",
                str(entry.get("scope")),
                entry.get("name") or "-",
                entry.get("where") or "admin api",
                _when(created) if isinstance(created, int | float) else "-",
                entry.get("created_by") or "-",
                "active" if entry.get("active") else f"revoked {_when(entry.get('revoked'))}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


def _owner(entry: dict[str, Any]) -> str:
    where = f"container {entry.get('container')}" if entry.get("container") else "admin"
    return f"{where}, name {entry['name']}" if entry.get("name") else where


def _when(ts: object) -> str:
    if not isinstance(ts, int | float):
        return ""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))
