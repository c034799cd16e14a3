"""The `omen` command: serve, tui, logs, replay, keys, login, logout, whatif, import-boltfile,
config check, demo."""

from __future__ import annotations

import argparse
import difflib
import errno
import importlib.metadata
import logging
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import NoReturn, Protocol

from omen import boltfile as boltfile_command
from omen import key_commands
from omen import whatif as whatif_command
from omen.admin_client import Refused, admin_call
from omen.config import (
    ConfigError,
    LoadedConfig,
    check_config,
    find_config_path,
    load_config,
)
from omen.config.model import split_bind


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
    # The port is taken before the app starts: a busy port is one line, not "omen ready"
    # followed by uvicorn's bind error and a shutdown.
    sockets = _listen(server.host, server.port, server.bind)
    if isinstance(sockets, str):
        print(f"omen serve: {sockets}", file=sys.stderr)
        return 1
    # The store is opened (and migrated) here, so that an unusable one is one line, not a
    # traceback from the server's startup.
    try:
        check_store(server.database)
    except StoreUnusableError as exc:
        for sock in sockets:
            sock.close()
        print(f"omen serve: {exc}", file=sys.stderr)
        return 1
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:  # pragma: no cover - platforms without uvloop
        loop = "asyncio"

    class Daemon(uvicorn.Server):
        """uvicorn on the sockets bound above; it says where it listens, as uvicorn.run does."""

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            logging.getLogger("uvicorn.error").info(
                "Uvicorn running on http://%s (Press CTRL+C to quit)", server.bind
            )

    daemon = Daemon(
        uvicorn.Config(
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
    )
    daemon.run(sockets=sockets)
    return 0 if daemon.started else 3  # 3: the app failed to start, as uvicorn.run says


def _listen(host: str, port: int, bind: str) -> list[socket.socket] | str:
    """Listening sockets on every address of host (as asyncio would bind), or why not."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror:
        return f"cannot listen on {bind}: no address found for {host!r}"
    sockets: list[socket.socket] = []
    seen: set[object] = set()
    for family, kind, proto, _, address in infos:
        if address in seen:
            continue
        seen.add(address)
        sock = socket.socket(family, kind, proto)
        sockets.append(sock)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
        except OSError as exc:
            for opened in sockets:
                opened.close()
            return _bind_failure(exc, bind, host)
    return sockets


def _bind_failure(exc: OSError, bind: str, host: str) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"port {bind} is already in use (another omen serve, or set server.bind / --bind)"
    if exc.errno == errno.EACCES:
        return f"not allowed to listen on {bind} (ports below 1024 need privileges)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {bind}: {host} is not an address of this machine"
    return f"cannot listen on {bind}: {(exc.strerror or str(exc)).lower()}"


def cmd_config_check(args: argparse.Namespace) -> int:
    try:
        path = find_config_path(args.config)
    except ConfigError as exc:  # no such file: nothing was checked, so not a report line
        for problem in exc.problems:
            print(f"omen config check: {problem}", file=sys.stderr)
        return 1
    problems, loaded = check_config(path)
    if loaded is None and [p.path for p in problems] == [str(path)]:
        # The file itself could not be read or parsed (TOML syntax): there is no report.
        print(f"omen config check: {problems[0]}", file=sys.stderr)
        return 1
    errors = [p for p in problems if p.severity == "error"]
    for problem in problems:
        prefix = "" if problem.severity == "error" else "warning: "
        print(f"{prefix}{problem}")
    if errors:
        return 1
    from omen_store import display_store

    where = path if path is not None else "(built-in defaults)"
    assert loaded is not None
    config = loaded.config
    local = sum(1 for c in config.containers.values() if c.enabled and c.local_endpoint)
    print(
        f"{where}: OK — {_tally('provider', config.providers)}; "
        f"{_tally('container', config.containers)}"
        f"{f' ({local} with a local_endpoint)' if local else ''}; "
        f"database {display_store(config.server.database)}"
    )
    return 0


class _Switchable(Protocol):
    @property
    def enabled(self) -> bool: ...


def _tally(kind: str, tables: Mapping[str, _Switchable]) -> str:
    """`3 providers enabled, 1 disabled (ollama)`: a disabled table is not counted as in use."""
    if not tables:
        return f"no {kind}s"
    disabled = sorted(name for name, table in tables.items() if not table.enabled)
    enabled = len(tables) - len(disabled)
    text = f"{enabled} {kind}{'' if enabled == 1 else 's'} enabled"
    if disabled:
        text += f", {len(disabled)} disabled ({', '.join(disabled)})"
    return text


def daemon_url(loaded: LoadedConfig, explicit: str | None) -> str:
    if explicit:
        return explicit.rstrip("/")
    host, port = loaded.config.server.host, loaded.config.server.port
    if host in ("0.0.0.0", "::", "[::]", ""):
        host = "127.0.0.1"
    return f"http://{host}:{port}"


def _provider_serving(url: str, key: str | None, model: str) -> str:
    """A provider of the daemon that serves model, from its /v1/models (the admin replay API
    keeps the original provider when given a model alone, which may not serve it)."""
    listed = admin_call("GET", url, "/v1/models", key, what="replay refused", timeout=120).get(
        "data"
    )
    if not isinstance(listed, list):
        raise Refused(f"{url} did not answer like Omen's /v1/models; is --url right?")
    owners = {
        str(entry.get("id")): str(entry.get("owned_by"))
        for entry in listed
        if isinstance(entry, dict) and entry.get("owned_by") != "omen"  # `auto` is no model
    }
    owner = owners.get(model) or owners.get(model.removesuffix(":latest"))
    if owner is not None:
        return owner
    if model == "auto":
        raise Refused("--model auto: use --reroute to let the router choose again")
    close = difflib.get_close_matches(model, list(owners), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else " (see GET /v1/models)"
    raise Refused(f"no provider of the daemon at {url} serves model {model!r}{hint}")


def cmd_replay(args: argparse.Namespace) -> int:
    if args.reroute and (args.provider or args.model):
        print(
            "omen replay: --reroute routes the request again; give it without --provider/--model",
            file=sys.stderr,
        )
        return 2
    from omen.login import admin_credentials

    loaded = _load(args)
    url = daemon_url(loaded, args.url)
    key = admin_credentials(loaded)
    body: dict[str, object] = {"mode": "reroute" if args.reroute else "same"}
    try:
        if args.model:
            body["model"] = args.model
            body["provider"] = args.provider or _provider_serving(url, key, args.model)
        elif args.provider:
            body["provider"] = args.provider
        data = admin_call(
            "POST",
            url,
            f"/admin/requests/{args.request_id}/replay",
            key,
            body,
            what="replay refused",
            timeout=120,
        )
    except Refused as exc:
        print(exc, file=sys.stderr)
        return 1
    if "replay" not in data or "original" not in data:
        print(f"{url} did not answer like Omen's admin API; is --url right?", file=sys.stderr)
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


def cmd_keys(args: argparse.Namespace) -> int:
    from omen.login import admin_credentials

    loaded = _load(args)
    return key_commands.run(args, daemon_url(loaded, args.url), admin_credentials(loaded))


def cmd_login(args: argparse.Namespace) -> int:
    from omen.login.command import run_login

    loaded = _load(args)
    return run_login(args, loaded, daemon_url(loaded, args.url))


def cmd_logout(args: argparse.Namespace) -> int:
    from omen.login.command import run_logout

    return run_logout(args)


def cmd_tui(args: argparse.Namespace) -> int:
    from omen.login import admin_credentials
    from omen_tui.app import run

    loaded = _load(args)
    if args.db:
        trouble = _unusable_store(args.db)
        if trouble is not None:
            print(f"omen tui: {trouble}", file=sys.stderr)
            return 1
    database = store_arg(args.db) if args.db else loaded.config.server.database
    # A fleet's daemons (`--url a,b` or `--url a --url b`): actions go to the first that answers.
    given = [url for urls in args.url or [] for url in urls.split(",") if url.strip()]
    urls = [daemon_url(loaded, url.strip()) for url in given] or [daemon_url(loaded, None)]
    run(
        database=database,
        url=urls,
        admin_key=partial(admin_credentials, loaded),  # asked per call: a token is refreshed
        readonly=args.readonly,
        mouse=not args.no_mouse,
        time_zone=loaded.config.server.time_zone,
    )
    return 0


def _unusable_store(db: str) -> str | None:
    """Why an explicit --db can never show anything, or None. A file not there yet is fine
    (the console waits for `omen serve` to create it); a folder that does not exist is not."""
    from omen_store import StoreError, StoreMissingError, StoreReader, display_store, is_postgres

    if "://" in db:
        if not is_postgres(db):
            return f"--db {display_store(db)} is neither a store file nor a postgresql:// URL"
        try:
            StoreReader(db).close()
        except StoreMissingError:  # no tables yet: the first `omen serve` creates them
            return None
        except StoreError as exc:
            return str(exc)
        return None
    path = Path(db).expanduser()
    if path.is_dir():
        return f"--db {db} is a directory, not a store file"
    if not path.exists():
        if not path.parent.is_dir():
            return f"no store at {db}, and no folder {path.parent} for one"
        return None
    try:
        StoreReader(path).close()
    except StoreMissingError:  # an empty file: a daemon is creating it
        return None
    except StoreError as exc:
        return str(exc)
    return None


def cmd_demo(args: argparse.Namespace) -> int:
    from omen.demo.run import run_demo

    if args.dir and Path(args.dir).exists() and not Path(args.dir).is_dir():
        print(f"omen demo: --dir {args.dir} is a file, not a directory", file=sys.stderr)
        return 2

    return run_demo(Path(args.dir) if args.dir else None, args.seconds, args.headless, args.rate)


def cmd_logs(args: argparse.Namespace) -> int:
    from omen.logview import run_logs

    # With --db the store is read directly: logs must work even when the config is broken.
    database = store_arg(args.db) if args.db else _load(args).config.server.database
    return run_logs(args, database)


def store_arg(text: str) -> Path | str:
    """--db: a SQLite file's path, or a fleet's postgresql:// URL (kept as the string)."""
    from omen_store import is_postgres

    return text if is_postgres(text) else Path(text).expanduser()


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


def _bind(text: str) -> str:
    """argparse type for --bind: the same HOST:PORT rules as server.bind."""
    try:
        split_bind(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _version() -> str:
    try:
        return importlib.metadata.version("omen")
    except importlib.metadata.PackageNotFoundError:  # running from a checkout, not installed
        return "unknown"


class _Parser(argparse.ArgumentParser):
    """A usage error is one line that points at --help, not a usage block then the error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _command(
    sub: argparse._SubParsersAction[_Parser], name: str, summary: str, *, config: bool = True
) -> _Parser:
    """A subcommand whose one-sentence summary shows in `omen --help` and in its own --help."""
    parser = sub.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".")
    if config:
        parser.add_argument(
            "--config", metavar="PATH", help="config file (default: $OMEN_CONFIG, then ./omen.toml)"
        )
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="omen",
        description="Omen, an AI router for containers: the daemon, its console and tools.",
    )
    parser.add_argument("--version", action="version", version=f"omen {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = _command(sub, "serve", "run the daemon in the foreground, logging to stderr")
    serve.add_argument(
        "--bind", type=_bind, metavar="HOST:PORT", help="listen here (overrides server.bind)"
    )
    serve.add_argument(
        "--level",
        type=str.lower,
        choices=["debug", "info", "warning", "error"],
        help="log level (default: server.log_level)",
    )
    serve.set_defaults(func=cmd_serve)

    logs = _command(sub, "logs", "print requests and decisions from the store")
    logs.add_argument("--container", metavar="NAME", help="only this container's requests")
    logs.add_argument("--provider", metavar="NAME", help="only requests served by this provider")
    logs.add_argument("--level", choices=["info", "warn", "error"], help="minimum level")
    logs.add_argument(
        "--instance", metavar="NAME", help="only requests served by this instance of a fleet"
    )
    logs.add_argument(
        "--since",
        type=whatif_command.since_duration,
        metavar="DUR",
        help="only newer than this: 30s, 5m, 1h, 7d",
    )
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new requests")
    logs.add_argument("--json", action="store_true", help="one JSON object per line")
    logs.add_argument(
        "--limit", type=_count, default=50, metavar="N", help="at most this many (default 50)"
    )
    logs.add_argument(
        "--audit", action="store_true", help="list audit rows instead: who did what, when"
    )
    logs.add_argument(
        "--db",
        metavar="PATH|URL",
        help="store: a SQLite path or a postgresql:// URL (default: server.database of the config)",
    )
    logs.set_defaults(func=cmd_logs)

    replay = _command(sub, "replay", "re-send a stored request through the daemon, old vs new")
    replay.add_argument("request_id", help="the request's id (x-omen-request-id, omen logs)")
    replay.add_argument("--provider", metavar="NAME", help="send it to this provider")
    replay.add_argument(
        "--model",
        metavar="MODEL",
        help="and/or this model (alone: a provider that serves it is chosen)",
    )
    replay.add_argument(
        "--reroute", action="store_true", help="route it again (default: same route)"
    )
    replay.add_argument("--url", help="daemon URL (default: from server.bind)")
    replay.set_defaults(func=cmd_replay)

    keys = _command(
        sub, "keys", "make, list and revoke container API keys, no restart", config=False
    )
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    key_commands.add_arguments(
        create=_command(keys_sub, "create", "make a new key for a container; it is shown once"),
        listing=_command(keys_sub, "list", "list the keys, a container's or all, never the keys"),
        revoke=_command(keys_sub, "revoke", "refuse a key from now on, on every instance"),
    )
    keys.set_defaults(func=cmd_keys)

    login = _command(sub, "login", "sign an operator in for admin calls (OIDC or GitHub)")
    which = login.add_mutually_exclusive_group()
    which.add_argument(
        "--issuer", metavar="URL", help="OIDC issuer to sign in at (default: auth.oidc.issuer)"
    )
    which.add_argument("--github", action="store_true", help="sign in with GitHub instead")
    login.add_argument(
        "--client-id",
        metavar="ID",
        help="OAuth client id of the console (default: client_id of [auth.oidc], or of "
        "[auth.github] with --github)",
    )
    login.add_argument(
        "--url", metavar="DAEMON", help="daemon to ask for your role (default: from server.bind)"
    )
    login.set_defaults(func=cmd_login)

    logout = _command(sub, "logout", "forget the operator's stored sign-ins", config=False)
    which = logout.add_mutually_exclusive_group()
    which.add_argument("--issuer", metavar="URL", help="sign out of this issuer only")
    which.add_argument("--github", action="store_true", help="sign out of GitHub only")
    logout.set_defaults(func=cmd_logout)

    tui = _command(sub, "tui", "open the operator console in this terminal")
    tui.add_argument(
        "--db",
        metavar="PATH|URL",
        help="store: a SQLite path or a postgresql:// URL (default: server.database of the config)",
    )
    tui.add_argument(
        "--url",
        action="append",
        metavar="URL[,URL…]",
        help="daemon URL for actions (default: from server.bind); a fleet's daemons: several, "
        "comma-separated or repeated — actions go to the first that answers",
    )
    tui.add_argument("--readonly", action="store_true", help="hide every action")
    tui.add_argument("--no-mouse", action="store_true", help="keyboard only")
    tui.set_defaults(func=cmd_tui)

    demo = _command(
        sub,
        "demo",
        "run the daemon on simulated upstreams with live traffic and the console",
        config=False,
    )
    demo.add_argument(
        "--dir",
        metavar="PATH",
        help="where to keep the demo's config and store (default: a temp dir)",
    )
    demo.add_argument("--rate", type=_positive, default=4.0, help="requests per second (default 4)")
    demo.add_argument("--headless", action="store_true", help="no console: run for --seconds")
    demo.add_argument("--seconds", type=_positive, help="with --headless: how long (default 30)")
    demo.set_defaults(func=cmd_demo)

    whatif = _command(
        sub,
        "whatif",
        "re-route the stored decisions under another policy or price list: actual vs what-if",
    )
    whatif_command.add_arguments(whatif)
    whatif.set_defaults(func=whatif_command.run)

    bolt = _command(
        sub,
        "import-boltfile",
        "turn a Boltfile's [services.X.omen] blocks into [containers.X] tables",
        config=False,
    )
    boltfile_command.add_arguments(bolt)
    bolt.set_defaults(func=boltfile_command.run)

    config = _command(sub, "config", "configuration tools", config=False)
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="COMMAND")
    check = _command(
        config_sub, "check", "validate the configuration and print each problem with its key"
    )
    check.set_defaults(func=cmd_config_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        result: int = args.func(args)
        sys.stdout.flush()  # a reader that went away shows here, not as a traceback at exit
    except KeyboardInterrupt:  # Ctrl-C while waiting on the daemon: no traceback
        return 130
    except BrokenPipeError:
        # `omen logs | head`: the reader has what it wanted; stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for other tools
    return result


if __name__ == "__main__":
    sys.exit(main())
