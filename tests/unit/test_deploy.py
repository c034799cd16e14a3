"""The deployment files in deploy/ point at real things: the `omen` command lines parse with the
CLI's own parser, ports match the config's bind, probes hit routes the app serves, the configs
pass Omen's own validation, and the service wrappers keep the hardening and drain they claim.

PyYAML is not a dependency: compose.yaml and kubernetes.yaml are read with the small reader
below, which takes the subset of YAML those files use and refuses anything else (so a file
that grows anchors or flow mappings fails here rather than being half-read).
"""

from __future__ import annotations

import http.server
import inspect
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest

from omen.app import build_app
from omen.auth import KeyRing
from omen.cli import build_parser
from omen.config import LoadedConfig, load_config
from omen.daemon import Daemon

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ENV_REFERENCE = re.compile(r'"env:([A-Z0-9_]+)"')


# --- a reader for the YAML subset the deploy files use --------------------------------------


class YamlSubsetError(ValueError):
    """The text uses YAML this reader does not take."""


@dataclass
class _Line:
    number: int
    indent: int
    text: str


_PLAIN_INT = re.compile(r"[-+]?[0-9]+")


def _strip_comment(text: str) -> str:
    quote = ""
    for index, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'" and (index == 0 or text[index - 1] in " [,:"):
            quote = char
        elif char == "#" and (index == 0 or text[index - 1] == " "):
            return text[:index].rstrip()
    return text.rstrip()


def _scalar(text: str, line: int) -> Any:
    if text.startswith('"'):
        if not text.endswith('"') or len(text) < 2:
            raise YamlSubsetError(f"line {line}: unterminated string {text!r}")
        return json.loads(text)
    if text.startswith("'"):
        if not text.endswith("'") or len(text) < 2:
            raise YamlSubsetError(f"line {line}: unterminated string {text!r}")
        return text[1:-1].replace("''", "'")
    if text.startswith("[") or text == "{}":
        return _flow(text, line)
    if text[:1] in ("{", "&", "*", "!", "|", ">", "%", "@", "`"):
        raise YamlSubsetError(f"line {line}: not in the subset: {text!r}")
    if text in ("", "~", "null"):
        return None
    if text in ("true", "false"):
        return text == "true"
    if _PLAIN_INT.fullmatch(text):
        return int(text)
    if ": " in text or text.endswith(":"):
        raise YamlSubsetError(f"line {line}: a plain string holding ': ' {text!r}")
    return text


def _flow(text: str, line: int) -> Any:
    """[a, "b", c] of scalars, or {}."""
    if text == "{}":
        return {}
    if not text.endswith("]"):
        raise YamlSubsetError(f"line {line}: flow sequence not closed on its line: {text!r}")
    inner = text[1:-1].strip()
    items: list[Any] = []
    while inner:
        if inner[0] in "\"'":
            end = inner.find(inner[0], 1)
            if end < 0:
                raise YamlSubsetError(f"line {line}: unterminated string in {text!r}")
            items.append(_scalar(inner[: end + 1], line))
            inner = inner[end + 1 :].lstrip()
        else:
            item, _, _ = inner.partition(",")
            items.append(_scalar(item.strip(), line))
            inner = inner[len(item) :].lstrip()
        if inner.startswith(","):
            inner = inner[1:].lstrip()
        elif inner:
            raise YamlSubsetError(f"line {line}: expected ',' in {text!r}")
    return items


class _Reader:
    def __init__(self, lines: list[_Line], raw: list[str]) -> None:
        self.lines = lines
        self.raw = raw  # the document's lines as written, for block scalars
        self.at = 0

    def block(self, indent: int) -> Any:
        line = self.lines[self.at]
        if line.indent != indent:
            raise YamlSubsetError(f"line {line.number}: unexpected indentation")
        if line.text == "-" or line.text.startswith("- "):
            return self.sequence(indent)
        return self.mapping(indent)

    def sequence(self, indent: int) -> list[Any]:
        items: list[Any] = []
        while self.at < len(self.lines) and self.lines[self.at].indent == indent:
            line = self.lines[self.at]
            if not (line.text == "-" or line.text.startswith("- ")):
                raise YamlSubsetError(f"line {line.number}: expected '- ' in a sequence")
            rest = line.text[1:].lstrip()
            if not rest:
                raise YamlSubsetError(f"line {line.number}: an empty '-' item")
            if _key_value(rest) is not None:
                # "- key: value" opens a mapping whose keys sit where `key` is.
                inner = indent + (len(line.text) - len(rest))
                self.lines[self.at] = _Line(line.number, inner, rest)
                items.append(self.mapping(inner))
            else:
                items.append(_scalar(rest, line.number))
                self.at += 1
        return items

    def mapping(self, indent: int) -> dict[str, Any]:
        table: dict[str, Any] = {}
        while self.at < len(self.lines) and self.lines[self.at].indent == indent:
            line = self.lines[self.at]
            pair = _key_value(line.text)
            if pair is None:
                raise YamlSubsetError(f"line {line.number}: expected 'key: value'")
            key, value = pair
            if key in table:
                raise YamlSubsetError(f"line {line.number}: duplicate key {key!r}")
            self.at += 1
            if value in ("|", "|-"):
                table[key] = self.literal(indent, line.number, keep_newline=value == "|")
            elif value:
                table[key] = _scalar(value, line.number)
            elif self.at < len(self.lines) and self.lines[self.at].indent > indent:
                table[key] = self.block(self.lines[self.at].indent)
            else:
                table[key] = None
        if self.at < len(self.lines) and self.lines[self.at].indent > indent:
            raise YamlSubsetError(f"line {self.lines[self.at].number}: unexpected indentation")
        return table

    def literal(self, indent: int, number: int, keep_newline: bool) -> str:
        """A `|` block: the raw lines more indented than its key, comments and all."""
        body: list[str] = []
        index = number + 1  # raw lines are 1-based: raw[number] is the key's own line
        while index < len(self.raw):
            text = self.raw[index]
            if text.strip() and len(text) - len(text.lstrip(" ")) <= indent:
                break
            body.append(text)
            index += 1
        while body and not body[-1].strip():
            body.pop()
        if not body:
            raise YamlSubsetError(f"line {number}: an empty block scalar")
        margin = min(len(t) - len(t.lstrip(" ")) for t in body if t.strip())
        while self.at < len(self.lines) and self.lines[self.at].number <= number + len(body):
            self.at += 1
        text = "\n".join(t[margin:] for t in body)
        return text + "\n" if keep_newline else text


def _key_value(text: str) -> tuple[str, str] | None:
    match = re.match(r"""([A-Za-z0-9_./-]+|"[^"]*"):(?: (.*)|$)""", text)
    if match is None:
        return None
    key = match.group(1)
    return (json.loads(key) if key.startswith('"') else key), (match.group(2) or "").strip()


def load_yaml_documents(text: str) -> list[Any]:
    """Every document of a multi-document file, in the subset the deploy files use."""
    if "\t" in text:
        raise YamlSubsetError("tabs are not YAML indentation")
    documents: list[Any] = []
    chunks: list[list[str]] = [[]]
    for raw in text.split("\n"):
        if raw.rstrip() == "---":
            chunks.append([])
        else:
            chunks[-1].append(raw)
    for chunk in chunks:
        raw_lines = ["", *chunk]  # 1-based numbering within the document
        lines = [
            _Line(number, len(raw) - len(raw.lstrip(" ")), _strip_comment(raw.strip()))
            for number, raw in enumerate(chunk, start=1)
        ]
        lines = [line for line in lines if line.text]
        if not lines:
            continue
        reader = _Reader(lines, raw_lines)
        documents.append(reader.block(lines[0].indent))
        if reader.at != len(reader.lines):
            raise YamlSubsetError(f"line {reader.lines[reader.at].number}: not read")
    return documents


# --- readers for the Dockerfile and the unit ------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    argument: str


def dockerfile_instructions(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending = f"{pending} {line}" if pending else line
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        keyword, _, argument = pending.partition(" ")
        instructions.append(Instruction(keyword.upper(), argument.strip()))
        pending = ""
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """The instructions of each FROM stage (ARGs before the first FROM are left out)."""
    found: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def exec_form(argument: str) -> list[str]:
    argv = json.loads(argument)
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), argument
    return argv


def unit_settings(text: str) -> dict[str, dict[str, list[str]]]:
    """section -> key -> every value given (a key may repeat; an empty value resets it)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None, f"a setting outside any section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"not key=value: {line}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


# --- what Omen itself says ------------------------------------------------------------------


def get_routes() -> set[str]:
    """The GET routes of the real app, built on a throwaway config (nothing starts)."""
    loaded = load_config(None, env={})
    app: Any = build_app(loaded)
    return {route.path for route in app.app.routes if "GET" in (route.methods or set())}


def drain_seconds() -> int:
    """How long `omen serve` may take after SIGTERM before it has flushed the store: uvicorn's
    graceful shutdown, then the gateway's wait for in-flight requests."""
    cli = (ROOT / "omen" / "cli.py").read_text()
    graceful = re.search(r"timeout_graceful_shutdown=(\d+)", cli)
    idle = re.search(r"gateway\.wait_idle\(timeout=(\d+)\)", inspect.getsource(Daemon.stop))
    assert graceful and idle, "the drain timeouts moved: update drain_seconds()"
    return int(graceful.group(1)) + int(idle.group(1))


def serve_argv(argv: list[str]) -> Any:
    """The argv after `omen`, parsed by the CLI's own parser; must be `serve`."""
    args = build_parser().parse_args(argv)
    assert args.command == "serve", argv
    return args


def fake_env(names: list[str] | set[str], **given: str) -> dict[str, str]:
    return {name: f"test-{name.lower()}" for name in names} | given


def env_references(toml_text: str) -> set[str]:
    return set(ENV_REFERENCE.findall(toml_text))


def load_toml_text(text: str, tmp_path: Path, env: Mapping[str, str]) -> LoadedConfig:
    path = tmp_path / "omen.toml"
    path.write_text(text)
    return load_config(path, env=env)


def seconds(value: str) -> int:
    match = re.fullmatch(r"(\d+)\s*(s|min|m)?", value)
    assert match, f"not a duration this test reads: {value!r}"
    return int(match.group(1)) * (60 if match.group(2) in ("min", "m") else 1)


DOCKER_TOML = DEPLOY / "omen.docker.toml"


@pytest.fixture(scope="module")
def routes() -> set[str]:
    return get_routes()


# --- the image's config ---------------------------------------------------------------------


def test_image_config_passes_omens_validation_with_its_keys_set() -> None:
    text = DOCKER_TOML.read_text()
    names = env_references(text)
    assert "OMEN_ADMIN_KEY" in names
    loaded = load_config(DOCKER_TOML, env=fake_env(names))
    assert [str(w) for w in loaded.warnings] == []
    server = loaded.config.server
    assert (server.host, server.port) == ("0.0.0.0", 8080)
    assert server.database == Path("/var/lib/omen/omen.db")
    assert not KeyRing(loaded.config).empty


def test_an_empty_key_variable_admits_nobody() -> None:
    """compose passes unset optional keys as empty strings: they must not become a key ""."""
    env = fake_env(env_references(DOCKER_TOML.read_text()), OMEN_USER_KEY="")
    keys = KeyRing(load_config(DOCKER_TOML, env=env).config)
    assert keys.authenticate("") is None
    assert keys.authenticate("test-omen_admin_key") is not None


def test_the_image_without_a_key_refuses_to_start(tmp_path: Path) -> None:
    """What the Dockerfile's comment promises: no key, no serving on 0.0.0.0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMEN_")}
    env["OMEN_DATABASE"] = str(tmp_path / "omen.db")
    done = subprocess.run(
        [sys.executable, "-m", "omen", "serve", "--config", str(DOCKER_TOML)],
        capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "refusing to serve on 0.0.0.0:8080 without API keys" in done.stderr


# --- Dockerfile -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return dockerfile_instructions((DEPLOY / "Dockerfile").read_text())


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    return stages(instructions)[-1]


def only(stage: list[Instruction], keyword: str) -> str:
    found = [i.argument for i in stage if i.keyword == keyword]
    assert len(found) == 1, f"{keyword}: {found}"
    return found[0]


def test_dockerfile_is_multi_stage_on_slim_python_3_11_or_later(
    dockerfile: list[Instruction],
) -> None:
    args = dict(
        i.argument.split("=", 1) for i in dockerfile if i.keyword == "ARG" and "=" in i.argument
    )
    images = [re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], only([i], "FROM").split()[0])
              for i in dockerfile if i.keyword == "FROM"]  # fmt: skip
    assert len(images) >= 2
    for image in images:
        match = re.fullmatch(r"python:3\.(\d+)-slim(-\w+)?", image)
        assert match and int(match.group(1)) >= 11, image
    build = " ".join(i.argument for i in stages(dockerfile)[0] if i.keyword == "RUN")
    assert "pip wheel" in build and "-c constraints.txt" in build


def test_dockerfile_links_the_packages_as_the_checkout_does(dockerfile: list[Instruction]) -> None:
    run = " ".join(i.argument for i in stages(dockerfile)[0] if i.keyword == "RUN")
    for link in ("omen_store", "omen_tui"):
        target = os.readlink(ROOT / link)
        assert f"ln -s {target} {link}" in run


def test_dockerfile_copies_only_what_exists_and_the_ignore_file_lets_through(
    dockerfile: list[Instruction],
) -> None:
    allowed = [
        line[1:]
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    for instruction in dockerfile:
        if instruction.keyword != "COPY" or instruction.argument.startswith("--from"):
            continue
        *sources, _ = instruction.argument.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source in allowed, f"{source} is not let through Dockerfile.dockerignore"


def test_dockerfile_runs_omen_serve_as_a_non_root_user_on_the_configs_port(
    dockerfile: list[Instruction],
) -> None:
    stage = final_stage(dockerfile)
    user = only(stage, "USER").split(":")[0]
    assert user not in ("root", "0")
    assert any("useradd" in i.argument and f" {user}" in i.argument for i in stage)
    assert only(stage, "STOPSIGNAL") == "SIGTERM"
    assert only(stage, "EXPOSE") == "8080"

    copies = [i.argument.split() for i in stage if i.keyword == "COPY"]
    config_in_image = next(dst for *src, dst in copies if src == ["deploy/omen.docker.toml"])
    assert ["--from=build", "/opt/omen/.venv", "/opt/omen/.venv"] in copies
    entrypoint = exec_form(only(stage, "ENTRYPOINT"))
    assert entrypoint == ["/opt/omen/.venv/bin/omen"]
    args = serve_argv(exec_form(only(stage, "CMD")))
    assert args.config == config_in_image
    assert args.bind is None  # the port EXPOSEd is the config's

    loaded = load_config(DOCKER_TOML, env=fake_env(env_references(DOCKER_TOML.read_text())))
    assert str(loaded.config.server.port) == only(stage, "EXPOSE")
    assert str(loaded.config.server.database.parent) in json.loads(only(stage, "VOLUME"))


def test_dockerfile_healthcheck_asks_ready_on_the_configs_port(
    dockerfile: list[Instruction], routes: set[str]
) -> None:
    healthcheck = only(final_stage(dockerfile), "HEALTHCHECK")
    argv = exec_form(healthcheck.split(" CMD ", 1)[1])
    assert argv[0] == "/opt/omen/.venv/bin/python" and argv[1] == "-c"
    (url,) = re.findall(r"http://[^'\"]+", argv[2])
    parts = urlsplit(url)
    assert (parts.hostname, parts.port, parts.path) == ("127.0.0.1", 8080, "/ready")
    assert parts.path in routes


class _Answer(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def ready_server() -> Iterator[tuple[str, type[_Answer]]]:
    handler = type("Answer", (_Answer,), {})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_port}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_dockerfile_healthcheck_fails_on_503_and_passes_on_200(
    dockerfile: list[Instruction], ready_server: tuple[str, type[_Answer]]
) -> None:
    """The command itself, run against a stand-in answering as /ready does."""
    address, handler = ready_server
    healthcheck = only(final_stage(dockerfile), "HEALTHCHECK")
    code = exec_form(healthcheck.split(" CMD ", 1)[1])[2].replace("127.0.0.1:8080", address)
    outcomes = []
    for status in (200, 503):
        handler.status = status
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
        outcomes.append(done.returncode)
    assert outcomes[0] == 0 and outcomes[1] == 1


# --- compose.yaml ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    (document,) = load_yaml_documents((DEPLOY / "compose.yaml").read_text())
    assert isinstance(document, dict)
    return document


def omen_services(compose: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose["services"]
    return {name: s for name, s in services.items() if s.get("image") == "omen:local"}


def compose_env(environment: Mapping[str, Any]) -> dict[str, str]:
    """The environment as compose would pass it: ${X:?...} given, ${X:-} empty."""
    env = {}
    for name, value in environment.items():
        text = str(value)
        env[name] = re.sub(
            r"\$\{(\w+)(:[?-][^}]*)?\}",
            lambda m: "" if (m.group(2) or "").startswith(":-") else f"test-{m.group(1).lower()}",
            text,
        )
    return env


def test_compose_runs_two_instances_of_one_image_and_one_config(
    compose: dict[str, Any],
) -> None:
    instances = omen_services(compose)
    assert len(instances) == 2
    builds = [s["build"] for s in instances.values()]
    assert builds == [{"context": "..", "dockerfile": "deploy/Dockerfile"}] * 2
    assert (DEPLOY / builds[0]["context"] / builds[0]["dockerfile"]).is_file()
    for service in instances.values():
        args = serve_argv(service["command"])
        assert args.config == "/etc/omen/omen.toml"
        assert "./omen.docker.toml:/etc/omen/omen.toml:ro" in service["volumes"]
    first, second = (dict(s["environment"]) for s in instances.values())
    # One fleet: the same settings, but each instance names itself on the rows it writes.
    assert first.pop("OMEN_INSTANCE") != second.pop("OMEN_INSTANCE")
    assert first == second


def test_compose_instances_share_one_postgresql_store(compose: dict[str, Any]) -> None:
    services = compose["services"]
    urls = set()
    for name, service in omen_services(compose).items():
        url = compose_env(service["environment"])["OMEN_DATABASE"]
        parts = urlsplit(url)
        assert parts.scheme == "postgresql", name
        assert parts.hostname in services and "postgres" in services[parts.hostname]["image"]
        database = services[parts.hostname]["environment"]
        assert parts.username == database["POSTGRES_USER"]
        assert parts.path == "/" + database["POSTGRES_DB"]
        urls.add(url)
    assert len(urls) == 1


def test_compose_gives_each_instance_its_own_spill_volume(compose: dict[str, Any]) -> None:
    data = []
    for service in omen_services(compose).values():
        (volume,) = [v.split(":")[0] for v in service["volumes"] if ":/var/lib/omen" in v]
        assert volume in compose["volumes"]
        spill = compose_env(service["environment"])["OMEN_SERVER__SPILL_PATH"]
        assert spill.startswith("/var/lib/omen/")
        data.append(volume)
    assert len(set(data)) == len(data)


def test_compose_config_validates_and_points_at_services_that_exist(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    services = compose["services"]
    text = DOCKER_TOML.read_text()
    for name, service in omen_services(compose).items():
        environment = service["environment"]
        assert env_references(text) <= set(environment), name
        loaded = load_config(DOCKER_TOML, env=compose_env(environment))
        config = loaded.config
        redis = urlsplit(config.server.redis_url)
        assert redis.hostname in services and redis.hostname == "redis", name
        for endpoint in config.providers["ollama"].endpoints:
            assert urlsplit(endpoint.url).hostname in services
        assert not KeyRing(config).empty
        published = [p.rsplit(":", 1)[1] for p in service["ports"]]
        assert published == [str(config.server.port)]
        assert seconds(service["stop_grace_period"]) >= drain_seconds() + 5


def test_compose_depends_on_healthy_services_with_health_checks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in omen_services(compose).items():
        for dependency, condition in service["depends_on"].items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert condition["condition"] == "service_healthy"
            assert services[dependency]["healthcheck"]["test"][0] == "CMD"
        assert "postgres" in service["depends_on"]  # the shared store


# --- omen.service ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return unit_settings((DEPLOY / "omen.service").read_text())


def test_unit_runs_omen_serve_from_the_venv(unit: dict[str, dict[str, list[str]]]) -> None:
    service = unit["Service"]
    (exec_start,) = service["ExecStart"]
    binary, *argv = shlex.split(exec_start)
    assert binary == "/opt/omen/.venv/bin/omen"
    assert serve_argv(argv).config == "/etc/omen/omen.toml"
    assert service["EnvironmentFile"] == ["-/etc/omen/omen.env"]
    assert service["Restart"] == ["on-failure"]
    assert service["User"][0] not in ("root", "0")


def test_unit_reload_sends_the_sighup_the_daemon_handles(
    unit: dict[str, dict[str, list[str]]],
) -> None:
    assert unit["Service"]["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert "signal.SIGHUP" in inspect.getsource(Daemon.install_reload)


def test_unit_waits_for_the_graceful_drain(unit: dict[str, dict[str, list[str]]]) -> None:
    service = unit["Service"]
    assert service["KillSignal"] == ["SIGTERM"]
    (timeout,) = service["TimeoutStopSec"]
    assert seconds(timeout) >= drain_seconds() + 5


def test_unit_is_hardened(unit: dict[str, dict[str, list[str]]]) -> None:
    service = {key: values[-1] for key, values in unit["Service"].items()}
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "StateDirectory": "omen",
        "CapabilityBoundingSet": "",
        "AmbientCapabilities": "",
        "RestrictNamespaces": "yes",
        "RestrictSUIDSGID": "yes",
        "LockPersonality": "yes",
    }.items():
        assert service.get(key) == value, key
    assert {"AF_INET", "AF_INET6"} <= set(service["RestrictAddressFamilies"].split())
    assert unit["Service"]["SystemCallFilter"][0] == "@system-service"
    # ProtectSystem=strict: the state directory is the one place the store can be written.
    assert "/var/lib/omen" in service["ReadWritePaths"].split()
    assert service["WorkingDirectory"] == "/var/lib/omen"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """The unit as systemd reads it; ExecStart points at this venv's omen, which exists here."""
    omen = Path(sys.executable).parent / "omen"
    if not omen.is_file():
        pytest.skip("no omen console script beside this Python")
    text = (DEPLOY / "omen.service").read_text().replace("/opt/omen/.venv/bin/omen", str(omen))
    (tmp_path / "omen.service").write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "omen.service")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


# --- kubernetes.yaml ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kube() -> dict[tuple[str, str], dict[str, Any]]:
    documents = load_yaml_documents((DEPLOY / "kubernetes.yaml").read_text())
    return {(d["kind"], d["metadata"]["name"]): d for d in documents}


def omen_container(kube: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    (container,) = kube["Deployment", "omen"]["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def container_port(container: Mapping[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    assert isinstance(number, int)
    return number


def test_kubernetes_config_validates_with_the_deployments_environment(
    kube: dict[tuple[str, str], dict[str, Any]], tmp_path: Path
) -> None:
    container = omen_container(kube)
    names = {entry["name"] for entry in container["env"]}
    text = kube["ConfigMap", "omen-config"]["data"]["omen.toml"]
    assert env_references(text) <= names
    loaded = load_toml_text(text, tmp_path, fake_env(names))
    config = loaded.config
    assert [str(w) for w in loaded.warnings] == []
    assert config.server.host == "0.0.0.0"
    (port,) = container["ports"]
    assert port["containerPort"] == config.server.port
    redis = urlsplit(config.server.redis_url).hostname
    assert ("Service", redis) in kube


def test_kubernetes_keys_come_from_one_secret_and_the_admin_key_is_required(
    kube: dict[tuple[str, str], dict[str, Any]],
) -> None:
    env = omen_container(kube)["env"]
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "secretKeyRef" in e["valueFrom"]
    }
    assert {ref["name"] for ref in refs.values()} == {"omen-keys"}
    assert refs["OMEN_ADMIN_KEY"].get("optional", False) is False
    assert refs["OMEN_DATABASE"].get("optional") is True  # a fleet's store, when there is one


def test_kubernetes_pods_name_their_rows_after_themselves(
    kube: dict[tuple[str, str], dict[str, Any]],
) -> None:
    (instance,) = [e for e in omen_container(kube)["env"] if e["name"] == "OMEN_INSTANCE"]
    assert instance["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_kubernetes_runs_omen_serve_on_the_configmap(
    kube: dict[tuple[str, str], dict[str, Any]],
) -> None:
    deployment = kube["Deployment", "omen"]
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    container = omen_container(kube)
    args = serve_argv(container["args"])
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    config_path = PurePosixPath(args.config)
    mount = mounts[str(config_path.parent)]
    assert volumes[mount["name"]]["configMap"]["name"] == "omen-config"
    assert config_path.name in kube["ConfigMap", "omen-config"]["data"]


def test_kubernetes_probes_hit_the_apps_routes_on_the_containers_port(
    kube: dict[tuple[str, str], dict[str, Any]], routes: set[str]
) -> None:
    container = omen_container(kube)
    (port,) = container["ports"]
    for probe, path in (("readinessProbe", "/ready"), ("livenessProbe", "/health")):
        get = container[probe]["httpGet"]
        assert get["path"] == path and path in routes
        assert container_port(container, get["port"]) == port["containerPort"]
    (service_port,) = kube["Service", "omen"]["spec"]["ports"]
    assert container_port(container, service_port["targetPort"]) == port["containerPort"]
    pod_labels = kube["Deployment", "omen"]["spec"]["template"]["metadata"]["labels"]
    assert kube["Service", "omen"]["spec"]["selector"].items() <= pod_labels.items()


def test_kubernetes_pod_is_non_root_with_a_read_only_root_and_a_writable_store(
    kube: dict[tuple[str, str], dict[str, Any]], dockerfile: list[Instruction], tmp_path: Path
) -> None:
    pod = kube["Deployment", "omen"]["spec"]["template"]["spec"]
    container = omen_container(kube)
    assert pod["securityContext"]["runAsNonRoot"] is True
    uid = pod["securityContext"]["runAsUser"]
    assert uid != 0
    image_user = " ".join(i.argument for i in final_stage(dockerfile) if i.keyword == "RUN")
    assert f"--uid {uid} " in image_user  # the image's own user, owner of its data folder
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]

    # Without the secret's optional database-url the pod's store is the config's SQLite file.
    names = {entry["name"] for entry in container["env"]} - {"OMEN_DATABASE"}
    text = kube["ConfigMap", "omen-config"]["data"]["omen.toml"]
    database = load_toml_text(text, tmp_path, fake_env(names)).config.server.database
    assert isinstance(database, Path)
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    data = mounts[str(database.parent)]
    assert not data.get("readOnly", False)
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert "emptyDir" in volumes[data["name"]] or "persistentVolumeClaim" in volumes[data["name"]]
    assert "/tmp" in mounts
    assert set(container["resources"]) == {"requests", "limits"}
    grace = pod["terminationGracePeriodSeconds"]
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert grace >= drain_seconds() + int(pre_stop[1]) + 5


# --- the reader itself ----------------------------------------------------------------------


def test_yaml_reader_refuses_what_it_does_not_understand() -> None:
    for text in ("a: &x 1\nb: *x\n", "a: {b: 1}\n", "a: >\n  folded\n", "a:\n\tb: 1\n"):
        with pytest.raises(YamlSubsetError):
            load_yaml_documents(text)


def test_yaml_reader_reads_the_subset() -> None:
    text = (
        'a: 1\nb: "x # y"  # comment\nc:\n  - d: [e, "f g"]\n    h: |\n      t = 1\n\n      u\ni:\n'
    )
    assert load_yaml_documents(text) == [
        {"a": 1, "b": "x # y", "c": [{"d": ["e", "f g"], "h": "t = 1\n\nu\n"}], "i": None}
    ]


@pytest.mark.parametrize("name", ["compose.yaml", "kubernetes.yaml"])
def test_yaml_reader_agrees_with_pyyaml(name: str) -> None:
    yaml = pytest.importorskip("yaml")
    text = (DEPLOY / name).read_text()
    assert load_yaml_documents(text) == [d for d in yaml.safe_load_all(text) if d is not None]
