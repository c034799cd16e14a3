"""The `omen` command: serve, tui, logs, replay, config check."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from omen.config import (
    ConfigError,
    LoadedConfig,
    check_config,
    find_config_path,
    load_config,
    parse_duration,
)


def _load(args: argparse.Namespace) -> LoadedConfig:
    try:
        return load_config(find_config_path(args.config))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise SystemExit(1) from None


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from omen.app import build_app
    from omen.auth import KeyRing, is_loopback
    from omen.http.protocol import HeaderDeadlineProtocol
    from omen.log import setup_logging
    from omen_store import StoreUnusableError, check_store

    loaded = _load(args)
    server = loaded.config.server
    if args.bind:
        host, _, port = args.bind.rpartition(":")
        if not host or not port.isdigit():
            print(f"--bind: expected HOST:PORT, got {args.bind!r}", file=sys.stderr)
            return 2
        server.bind = args.bind
    setup_logging(args.level or server.log_level, server.log_format)
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if KeyRing(loaded.config).empty and not is_loopback(server.host):
        print(
            f"refusing to serve on {server.bind} without API keys: configure [auth] api_keys "
            "or container api_key, or bind to 127.0.0.1",
            file=sys.stderr,
        )
        return 1
    # The store is opened (and migrated) here, so that an unusable one is one line, not a
    # traceback from the server's startup.
    try:
        check_store(server.database)
    except StoreUnusableError as exc:
        print(f"omen serve: {exc}", file=sys.stderr)
        return 1
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:  # pragma: no cover - platforms without uvloop
        loop = "asyncio"
    uvicorn.run(
        build_app(loaded),
        host=server.host.strip("[]"),
        port=server.port,
        http=HeaderDeadlineProtocol,
        loop=loop,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=15,
        server_header=False,
    )
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    try:
        path = find_config_path(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem)
        return 1
    problems, loaded = check_config(path)
    errors = [p for p in problems if p.severity == "error"]
    for problem in problems:
        prefix = "" if problem.severity == "error" else "warning: "
        print(f"{prefix}{problem}")
    if errors:
        return 1
    where = path if path is not None else "(built-in defaults)"
    assert loaded is not None
    config = loaded.config
    print(
        f"{where}: OK — {len(config.providers)} provider(s), {len(config.containers)} "
        f"container(s), database {config.server.database}"
    )
    return 0


def daemon_url(loaded: LoadedConfig, explicit: str | None) -> str:
    if explicit:
        return explicit.rstrip("/")
    host, port = loaded.config.server.host, loaded.config.server.port
    if host in ("0.0.0.0", "::", "[::]", ""):
        host = "127.0.0.1"
    return f"http://{host}:{port}"


def admin_key(loaded: LoadedConfig) -> str | None:
    for entry in loaded.config.auth.api_keys:
        if entry.scope == "admin" and entry.key is not None:
            return entry.key.get_secret_value()
    return os.environ.get("OMEN_ADMIN_KEY") or None


def cmd_replay(args: argparse.Namespace) -> int:
    import httpx

    loaded = _load(args)
    url = daemon_url(loaded, args.url)
    key = admin_key(loaded)
    body: dict[str, object] = {"mode": "reroute" if args.reroute else "same"}
    if args.provider:
        body["provider"] = args.provider
    if args.model:
        body["model"] = args.model
    headers = {"authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx.post(
            f"{url}/admin/requests/{args.request_id}/replay",
            json=body,
            headers=headers,
            timeout=120,
        )
    except httpx.HTTPError as exc:
        print(f"cannot reach the daemon at {url}: {exc}", file=sys.stderr)
        return 1
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict) or (response.status_code == 200 and "replay" not in data):
        print(
            f"{url} did not answer like Omen's admin API (HTTP {response.status_code}); "
            "is --url right?",
            file=sys.stderr,
        )
        return 1
    if response.status_code != 200:
        error = data.get("error")
        message = (error.get("message") if isinstance(error, dict) else None) or (
            f"HTTP {response.status_code}"
        )
        hint = ""
        if response.status_code == 401 and not key:
            hint = " (set OMEN_ADMIN_KEY to an admin-scope key)"
        print(f"replay refused ({response.status_code}): {message}{hint}", file=sys.stderr)
        return 1
    old, new = data["original"], data["replay"]
    rows = [
        ("request", old["id"], new["request_id"]),
        ("provider", old["provider"], new.get("provider")),
        ("model", old["model"], new.get("model")),
        ("status", old["status"], new.get("status")),
        ("latency", f"{old['latency_ms']:.0f} ms", f"{new.get('latency_ms') or 0:.0f} ms"),
        (
            "tokens",
            f"{old['prompt_tokens']}+{old['completion_tokens']}",
            f"{new.get('prompt_tokens')}+{new.get('completion_tokens')}",
        ),
        ("cost", f"${old['cost_usd']:.6f}", f"${new.get('cost_usd') or 0:.6f}"),
    ]
    print(f"{'':10} {'original':<40} replay")
    for label, before, after in rows:
        print(f"{label:10} {before!s:<40} {after!s}")
    if new.get("error") or new.get("status") != 200:
        print(f"\nreplay failed: {new.get('error') or 'no answer'}")
        return 1
    elif new.get("answer") is not None:
        print(f"\nreplay answer:\n{new['answer']}")
    return 0


def cmd_tui(args: argparse.Namespace) -> int:
    from omen_tui.app import run

    loaded = _load(args)
    database = Path(args.db) if args.db else loaded.config.server.database
    run(
        database=database,
        url=daemon_url(loaded, args.url),
        admin_key=admin_key(loaded),
        readonly=args.readonly,
        mouse=not args.no_mouse,
        time_zone=loaded.config.server.time_zone,
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from omen.demo.run import run_demo

    if args.dir and Path(args.dir).exists() and not Path(args.dir).is_dir():
        print(f"omen demo: --dir {args.dir} is a file, not a directory", file=sys.stderr)
        return 2

    return run_demo(Path(args.dir) if args.dir else None, args.seconds, args.headless, args.rate)


def cmd_logs(args: argparse.Namespace) -> int:
    from omen.logview import run_logs

    # With --db the store is read directly: logs must work even when the config is broken.
    database = Path(args.db) if args.db else _load(args).config.server.database
    return run_logs(args, database)


def _duration(text: str) -> float:
    """argparse type: `30s`, `5m`, `1h`, `7d` (a bad value is one line of usage error)."""
    try:
        seconds = parse_duration(text)
    except (ValueError, TypeError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("must be longer than 0 (write e.g. 30s, 5m, 1h, 7d)")
    return seconds


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value <= 10_000:
        raise argparse.ArgumentTypeError("must be more than 0 and at most 10000")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _version() -> str:
    try:
        return importlib.metadata.version("omen")
    except importlib.metadata.PackageNotFoundError:  # running from a checkout, not installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omen", description="AI router for containers")
    parser.add_argument("--version", action="version", version=f"omen {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", help="config file (default: $OMEN_CONFIG, then ./omen.toml)")
        return p

    serve = with_config(sub.add_parser("serve", help="run the daemon (foreground)"))
    serve.add_argument("--bind", help="HOST:PORT to listen on (overrides server.bind)")
    serve.add_argument(
        "--level",
        type=str.lower,
        choices=["debug", "info", "warning", "error"],
        help="log level (default: server.log_level)",
    )
    serve.set_defaults(func=cmd_serve)

    logs = with_config(sub.add_parser("logs", help="requests and decisions from the store"))
    logs.add_argument("--container")
    logs.add_argument("--provider")
    logs.add_argument("--level", choices=["info", "warn", "error"], help="minimum level")
    logs.add_argument("--since", type=_duration, help="only newer than this: 30s, 5m, 1h, 7d")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new requests")
    logs.add_argument("--json", action="store_true", help="one JSON object per line")
    logs.add_argument("--limit", type=_count, default=50, help="at most this many (default 50)")
    logs.add_argument("--audit", action="store_true", help="list audit rows instead")
    logs.add_argument("--db", help="store path (default: server.database of the config)")
    logs.set_defaults(func=cmd_logs)

    replay = with_config(sub.add_parser("replay", help="re-send a stored request, old vs new"))
    replay.add_argument("request_id")
    replay.add_argument("--provider", help="send it to this provider")
    replay.add_argument("--model", help="and/or this model")
    replay.add_argument(
        "--reroute", action="store_true", help="route it again (default: same route)"
    )
    replay.add_argument("--url", help="daemon URL (default: from server.bind)")
    replay.set_defaults(func=cmd_replay)

    tui = with_config(sub.add_parser("tui", help="the operator console"))
    tui.add_argument("--db", help="store path (default: server.database of the config)")
    tui.add_argument("--url", help="daemon URL (default: from server.bind)")
    tui.add_argument("--readonly", action="store_true", help="hide every action")
    tui.add_argument("--no-mouse", action="store_true", help="keyboard only")
    tui.set_defaults(func=cmd_tui)

    demo = sub.add_parser("demo", help="simulated upstreams, live traffic and the console")
    demo.add_argument(
        "--dir", help="where to keep the demo's config and store (default: a temp dir)"
    )
    demo.add_argument("--rate", type=_positive, default=4.0, help="requests per second (default 4)")
    demo.add_argument("--headless", action="store_true", help="no console: run for --seconds")
    demo.add_argument("--seconds", type=_positive, help="with --headless: how long (default 30)")
    demo.set_defaults(func=cmd_demo)

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = with_config(config_sub.add_parser("check", help="validate the configuration"))
    check.set_defaults(func=cmd_config_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
