"""`omen serve` and `omen replay` as a new operator meets them: real processes, real ports."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.fakes import TextReply
from tests.integration.conftest import APP_KEY, Omen, Upstreams, omen_env, wait_for_rows


def test_serve_on_a_busy_port_is_one_line_and_never_says_ready(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "omen.toml"
        config.write_text(f'[server]\nbind = "127.0.0.1:{port}"\ndatabase = "omen.db"\n')
        done = subprocess.run(
            [sys.executable, "-m", "omen", "serve", "--config", str(config)],
            capture_output=True,
            text=True,
            env=omen_env(),
            cwd=tmp_path,
            timeout=30,
        )
        # The port's owner still has it: omen did not take it over with SO_REUSEADDR.
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"omen serve: port 127.0.0.1:{port} is already in use "
        "(another omen serve, or set server.bind / --bind)"
    ]
    assert "omen ready" not in done.stdout + done.stderr


def test_serve_says_where_it_listens_after_ready(omen: Omen) -> None:
    log = omen.log.read_text()
    assert log.index("omen ready") < log.index(f"running on http://127.0.0.1:{omen.port}")


def ask_ollama(omen: Omen) -> str:
    response = httpx.post(
        f"{omen.url}/v1/chat/completions",
        json={"model": "llama3.1:8b", "messages": [{"role": "user", "content": "Say hello"}]},
        headers={"authorization": f"Bearer {APP_KEY}"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.headers["x-omen-provider"] == "ollama"
    return response.headers["x-omen-request-id"]


def test_replay_with_only_a_model_goes_to_a_provider_that_serves_it(
    omen: Omen, upstreams: Upstreams
) -> None:
    original = ask_ollama(omen)
    wait_for_rows(omen.database, 1)
    upstreams.openai.script.push(TextReply("cloud answer", prompt_tokens=10, completion_tokens=5))
    result = omen.omen("replay", original, "--model", "gpt-4o")
    assert result.returncode == 0, result.stdout + result.stderr
    provider_row = next(line for line in result.stdout.splitlines() if line.startswith("provider"))
    assert provider_row.split() == ["provider", "ollama", "openai"]
    assert "cloud answer" in result.stdout


def test_replay_with_a_model_no_provider_serves_is_refused_before_sending(omen: Omen) -> None:
    original = ask_ollama(omen)
    wait_for_rows(omen.database, 1)
    result = omen.omen("replay", original, "--model", "gpt-4p")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"no provider of the daemon at {omen.url} serves model 'gpt-4p'; did you mean 'gpt-4o'?"
    ]
    assert '"action":"replay"' not in omen.omen("logs", "--audit", "--json").stdout
