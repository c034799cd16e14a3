"""Real coding agents (Codex CLI, Claude Code from npm) as Omen's clients.

The agents are installed by scripts/agents.sh into .cache/agents (once; a no-op afterwards)
and run headless as subprocesses with HOME, CODEX_HOME and their config in tmp paths, talking
to `omen serve` (tests/integration/conftest.py) or straight to a fake upstream on 127.0.0.1.
An agent whose npm install fails skips its tests with npm's reason; everything else fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import (
    FakeState,
    PromptCache,
    RecordedRequest,
    Script,
    TextReply,
    ToolCallReply,
    asgi,
    make_anthropic_app,
    make_ollama_app,
    make_openai_app,
    run_fake,
)
from tests.fakes.anthropic_upstream import Thinking
from tests.fakes.asgi import ASGIApp, Receive, Scope, Send
from tests.fakes.behaviour import Reply
from tests.integration.conftest import UPSTREAM_KEY, omen_factory  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[2]
AGENT_TIMEOUT = 90  # seconds for one agent run; a healthy one takes about one
INSTALL_TIMEOUT = 360  # a first npm install fetches ~300 MB
# The first test of a session pays for the npm install inside its own time limit.
AGENT_TEST_TIMEOUT = INSTALL_TIMEOUT + 2 * AGENT_TIMEOUT

# A command whose output is not in its own text: the marker can only reach the upstream
# inside the tool result, never by echoing the tool call's arguments.
MARKER_COMMAND = "echo omen-$((6 * 7))-marker"
MARKER = "omen-42-marker"


# --- installing -------------------------------------------------------------------------


def _unavailable(reason: str) -> None:
    """Skip on a developer's machine without npm; fail in CI (OMEN_REQUIRE_AGENTS=1)."""
    if os.environ.get("OMEN_REQUIRE_AGENTS") == "1":
        pytest.fail(f"{reason} (OMEN_REQUIRE_AGENTS=1: the real agents are required)")
    pytest.skip(reason)


def install_agent(name: str) -> Path:
    """The agent's binary, installed by scripts/agents.sh; skips when npm cannot install it."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        _unavailable(f"{name}: node/npm are not on PATH, so the agent cannot be installed")
    try:
        done = subprocess.run(
            ["bash", str(ROOT / "scripts" / "agents.sh"), name],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        _unavailable(f"{name}: npm install did not finish in {INSTALL_TIMEOUT} s")
    paths = dict(
        line.split("=", 1) for line in done.stdout.splitlines() if line.startswith(f"{name}=")
    )
    if done.returncode != 0 or name not in paths:
        _unavailable(f"{name}: npm could not install it:\n{done.stderr[-3000:]}")
    return Path(paths[name])


@pytest.fixture(scope="session")
def codex_bin() -> Path:
    return install_agent("codex")


@pytest.fixture(scope="session")
def claude_bin() -> Path:
    return install_agent("claude")


# --- running ----------------------------------------------------------------------------


@dataclass
class AgentRun:
    """One finished agent process."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def ok(self) -> AgentRun:
        assert self.returncode == 0, self.describe()
        return self

    def describe(self) -> str:
        return (
            f"$ {' '.join(self.args)}\nexit {self.returncode}\n"
            f"--- stdout\n{self.stdout[-4000:]}\n--- stderr\n{self.stderr[-4000:]}"
        )


def base_env(home: Path) -> dict[str, str]:
    """A clean environment: no proxies, no user config, nothing from the test runner's HOME."""
    node_dir = str(Path(shutil.which("node") or "/usr/bin/node").parent)
    path = dict.fromkeys([node_dir, "/usr/local/bin", "/usr/bin", "/bin"])  # ordered, no repeats
    return {
        "PATH": os.pathsep.join(path),
        "HOME": str(home),
        "TMPDIR": str(home / "tmp"),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "NO_COLOR": "1",
    }


def run_agent(args: list[str], env: dict[str, str], cwd: Path) -> AgentRun:
    try:
        done = subprocess.run(
            args,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=AGENT_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        pytest.fail(f"agent ran past {AGENT_TIMEOUT} s\n{AgentRun(args, -9, out, err).describe()}")
    return AgentRun(args, done.returncode, done.stdout, done.stderr)


class Codex:
    """`codex exec` with its own CODEX_HOME whose config.toml points at ``base_url``.

    The config is what a user writes to aim Codex at Omen (README), plus switches that keep a
    test run off the network: no update check, no analytics, no plugin sync (which otherwise
    resolves github.com).
    """

    def __init__(self, binary: Path, root: Path, base_url: str, api_key: str, model: str) -> None:
        self.binary = binary
        self.home = root / "home"
        self.codex_home = root / "codex-home"
        self.workdir = root / "work"
        for folder in (self.home, self.home / "tmp", self.codex_home, self.workdir):
            folder.mkdir(parents=True, exist_ok=True)
        self.api_key = api_key
        (self.codex_home / "config.toml").write_text(
            f'model = "{model}"\n'
            'model_provider = "omen"\n'
            "check_for_update_on_startup = false\n"
            "\n[analytics]\nenabled = false\n"
            "\n[feedback]\nenabled = false\n"
            "\n[features]\nplugins = false\n"
            "\n[model_providers.omen]\n"
            'name = "Omen"\n'
            f'base_url = "{base_url}"\n'
            'env_key = "OMEN_API_KEY"\n'
            'wire_api = "responses"\n'
        )

    def exec(self, prompt: str, *extra: str) -> AgentRun:
        env = base_env(self.home)
        env.update(CODEX_HOME=str(self.codex_home), OMEN_API_KEY=self.api_key)
        args = [
            str(self.binary),
            "exec",
            *extra,
            "--skip-git-repo-check",
            "--dangerously-bypass-approvals-and-sandbox",
            "--color",
            "never",
            "-C",
            str(self.workdir),
            prompt,
        ]
        return run_agent(args, env, self.workdir)

    def resume(self, session_id: str, prompt: str) -> AgentRun:
        """A later turn of the same conversation (`codex exec resume ID PROMPT`)."""
        env = base_env(self.home)
        env.update(CODEX_HOME=str(self.codex_home), OMEN_API_KEY=self.api_key)
        args = [
            str(self.binary),
            "exec",
            "--skip-git-repo-check",
            "--dangerously-bypass-approvals-and-sandbox",
            "--color",
            "never",
            "-C",
            str(self.workdir),
            "resume",
            session_id,
            prompt,
        ]
        return run_agent(args, env, self.workdir)

    @staticmethod
    def session_id(run: AgentRun) -> str:
        """The conversation id Codex prints in its banner (it sends it as `session-id`)."""
        for line in run.stderr.splitlines():
            if line.startswith("session id:"):
                return line.split(":", 1)[1].strip()
        raise AssertionError(f"no session id in Codex's banner\n{run.describe()}")


class ClaudeCode:
    """`claude -p` with its own HOME, aimed at ``base_url`` by ANTHROPIC_BASE_URL."""

    def __init__(self, binary: Path, root: Path, base_url: str, api_key: str) -> None:
        self.binary = binary
        self.home = root / "home"
        self.workdir = root / "work"
        for folder in (self.home, self.home / "tmp", self.workdir):
            folder.mkdir(parents=True, exist_ok=True)
        self.base_url = base_url
        self.api_key = api_key

    def ask(self, prompt: str, model: str, *extra: str) -> AgentRun:
        env = base_env(self.home)
        env.update(
            ANTHROPIC_BASE_URL=self.base_url,
            ANTHROPIC_API_KEY=self.api_key,
            ANTHROPIC_DEFAULT_HAIKU_MODEL=model,  # its side calls, if it makes any
            CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
            DISABLE_AUTOUPDATER="1",
            # --dangerously-skip-permissions refuses to run as root unless told it is sandboxed.
            IS_SANDBOX="1",
        )
        args = [
            str(self.binary),
            "-p",
            prompt,
            "--model",
            model,
            "--dangerously-skip-permissions",
            *extra,
        ]
        return run_agent(args, env, self.workdir)


def new_session_id() -> str:
    return str(uuid.uuid4())


# --- what the upstream was sent ---------------------------------------------------------

INFERENCE_PATHS = ("/v1/messages", "/v1/responses", "/v1/chat/completions", "/api/chat")


def inference_requests(fake: FakeState) -> list[RecordedRequest]:
    return [r for r in fake.requests if r.method == "POST" and r.path in INFERENCE_PATHS]


def _text_of(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(_text_of(part) for part in value)
    if isinstance(value, dict):
        return _text_of(value.get("text") or value.get("output") or value.get("content") or "")
    return ""


def tool_results(request: RecordedRequest) -> list[str]:
    """The text of every tool result in ``request``'s body, whatever its wire format."""
    body = request.json if isinstance(request.json, dict) else {}
    found: list[str] = []
    if request.path == "/v1/responses":
        for item in body.get("input") or []:
            if isinstance(item, dict) and item.get("type") == "function_call_output":
                found.append(_text_of(item.get("output")))
        return found
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        if message.get("role") == "tool":  # OpenAI chat, Ollama
            found.append(_text_of(message.get("content")))
        elif isinstance(message.get("content"), list):  # Anthropic
            for block in message["content"]:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    found.append(_text_of(block.get("content")))
    return found


# --- what Omen recorded -----------------------------------------------------------------


def store_rows(database: Path, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Every row of the `requests` table, oldest first, once there are ``count`` of them
    (the writer commits within its flush interval)."""
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while True:
        try:
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
                conn.row_factory = sqlite3.Row
                rows = [dict(r) for r in conn.execute("SELECT * FROM requests ORDER BY seq")]
        except sqlite3.Error:
            rows = []
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def decision_of(row: dict[str, Any]) -> dict[str, Any]:
    raw = row.get("decision")
    return json.loads(raw) if raw else {}


def session_of(row: dict[str, Any]) -> str | None:
    """The session Omen put the request in: its column, else the decision's `session`."""
    if row.get("session"):
        return str(row["session"])
    session = decision_of(row).get("session")
    if isinstance(session, dict):
        return str(session.get("id")) if session.get("id") else None
    return str(session) if session else None


# --- a recording Responses server, for what Codex sends with nobody in between -----------


def _sse(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + json.dumps(data).encode() + b"\n\n"


def responses_events(model: str, reply: Reply, number: int) -> list[bytes]:
    """The Responses event stream Codex needs: created, item added/deltas/done, completed."""
    response: dict[str, Any] = {
        "id": f"resp_rec{number:04d}",
        "object": "response",
        "created_at": int(time.time()),
        "model": model,
        "status": "in_progress",
        "output": [],
    }
    events = [_sse("response.created", {"type": "response.created", "response": response})]
    items: list[dict[str, Any]] = []
    if isinstance(reply, ToolCallReply):
        for index, call in enumerate(reply.calls):
            item = {
                "id": f"fc_rec{number:04d}_{index}",
                "type": "function_call",
                "status": "completed",
                "call_id": call.id or f"call_rec{number:04d}_{index}",
                "name": call.name,
                "arguments": json.dumps(call.arguments),
            }
            added = {**item, "arguments": "", "status": "in_progress"}
            events.append(
                _sse(
                    "response.output_item.added",
                    {"type": "response.output_item.added", "output_index": index, "item": added},
                )
            )
            delta = {
                "type": "response.function_call_arguments.delta",
                "item_id": item["id"],
                "output_index": index,
                "delta": item["arguments"],
            }
            events.append(_sse(delta["type"], delta))
            done = {"type": "response.output_item.done", "output_index": index, "item": item}
            events.append(_sse(done["type"], done))
            items.append(item)
    else:
        text = reply.text if isinstance(reply, TextReply) else "recorded"
        part = {"type": "output_text", "text": text, "annotations": []}
        item = {
            "id": f"msg_rec{number:04d}",
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [part],
        }
        added = {**item, "content": [], "status": "in_progress"}
        events.append(
            _sse(
                "response.output_item.added",
                {"type": "response.output_item.added", "output_index": 0, "item": added},
            )
        )
        delta = {
            "type": "response.output_text.delta",
            "item_id": item["id"],
            "output_index": 0,
            "content_index": 0,
            "delta": text,
        }
        events.append(_sse(delta["type"], delta))
        done = {"type": "response.output_item.done", "output_index": 0, "item": item}
        events.append(_sse(done["type"], done))
        items.append(item)
    usage = {
        "input_tokens": 100,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 10,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 110,
    }
    completed = {**response, "status": "completed", "output": items, "usage": usage}
    events.append(_sse("response.completed", {"type": "response.completed", "response": completed}))
    return events


def make_recorder_app(fake: FakeState) -> ASGIApp:
    """Records every request (method, path, query, headers, body) into ``fake`` and answers
    `POST …/responses` with ``fake.script``'s reply as a Responses stream; anything else 404s,
    so a route an agent probes shows up in the record instead of being served by accident."""
    numbers = iter(range(1, 1_000_000))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await asgi.serve_lifespan(receive, send)
            return
        payload = asgi.parse_json(await asgi.read_body(receive))
        asgi.remember(fake, scope, payload)
        if scope["method"] == "POST" and scope["path"].endswith("/responses"):
            model = payload.get("model", "") if isinstance(payload, dict) else ""
            reply = fake.script.next_for(model)
            await asgi.start_stream(send, asgi.SSE)
            for event in responses_events(model, reply, next(numbers)):
                await asgi.stream_part(send, event)
            await asgi.end_stream(send)
            return
        error = {"error": {"message": "not recorded here", "type": "invalid_request_error"}}
        await asgi.send_json(send, 404, error)

    return app


@dataclass
class Recorder:
    fake: FakeState
    url: str


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    fake = FakeState()
    with run_fake(make_recorder_app(fake)) as server:
        yield Recorder(fake, server.url)


# --- fake upstreams and Omen's config for them --------------------------------------------

OPENAI_MODEL = "gpt-5.5"  # a model Codex knows: it then sends its full tool set
ANTHROPIC_MODEL = "claude-sonnet-5-5"  # what Claude Code 2.1 sends for `--model sonnet`
OLLAMA_MODEL = "qwen3-coder:30b"
INPUT_PER_1K = 0.003
OUTPUT_PER_1K = 0.015
CONTAINER = '\n[containers.app]\napi_key = "env:TEST_APP_KEY"\n'


@dataclass
class Upstream:
    """One fake provider, possibly on several endpoints that share one script."""

    kind: str  # openai | anthropic | ollama
    model: str
    fakes: list[FakeState]
    urls: list[str]
    cache: PromptCache
    thinking: Thinking

    @property
    def fake(self) -> FakeState:
        return self.fakes[0]

    @property
    def script(self) -> Script:
        return self.fakes[0].script

    def inference(self) -> list[RecordedRequest]:
        return [r for fake in self.fakes for r in inference_requests(fake)]

    def toml(self, extra: str = "") -> str:
        """This upstream as an Omen provider table."""
        head = f"\n[providers.{self.kind}]\n"
        if self.kind == "ollama":
            endpoints = ", ".join(f'"{url}"' for url in self.urls)
            where = f"endpoints = [{endpoints}]\n"
        else:
            suffix = "/v1" if self.kind == "openai" else ""
            where = f'api_key = "env:TEST_UPSTREAM_KEY"\nbase_url = "{self.urls[0]}{suffix}"\n'
        prices = (
            ""
            if self.kind == "ollama"
            else f"cost_per_1k_input_tokens = {INPUT_PER_1K}\n"
            f"cost_per_1k_output_tokens = {OUTPUT_PER_1K}\n"
        )
        return (
            head
            + where
            + f'models = ["{self.model}"]\n'
            + prices
            + 'health_check_interval = "1h"\n'
            + extra
        )


@pytest.fixture
def start_upstream() -> Iterator[Callable[..., Upstream]]:
    """Starts fake upstreams for the test; ``endpoints`` > 1 serves one provider from several
    ports (Ollama boxes), all reading the same ``script``."""
    with contextlib.ExitStack() as stack:

        def start(
            kind: str, model: str = "", endpoints: int = 1, script: Script | None = None
        ) -> Upstream:
            model = (
                model
                or {
                    "openai": OPENAI_MODEL,
                    "anthropic": ANTHROPIC_MODEL,
                    "ollama": OLLAMA_MODEL,
                }[kind]
            )
            shared = script if script is not None else Script()
            cache, thinking = PromptCache(), Thinking()
            fakes, urls = [], []
            for _ in range(endpoints):
                if kind == "ollama":
                    fake = FakeState(models=[model], loaded=[model], script=shared)
                    app = make_ollama_app(fake)
                elif kind == "anthropic":
                    fake = FakeState(models=[model], api_key=UPSTREAM_KEY, script=shared)
                    app = make_anthropic_app(fake, cache, thinking)
                else:
                    fake = FakeState(models=[model], api_key=UPSTREAM_KEY, script=shared)
                    app = make_openai_app(fake)
                server = stack.enter_context(run_fake(app))
                fakes.append(fake)
                urls.append(server.url)
            return Upstream(kind, model, fakes, urls, cache, thinking)

        yield start
