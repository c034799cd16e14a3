"""`omen demo`: the daemon on simulated GPU boxes and clouds, live traffic, and the console.

Everything runs in this one process: the simulated upstreams and the daemon on uvicorn
threads, the traffic generator on its own thread, the console in the foreground. The working
directory (config, store) is kept so `omen logs --config DIR/omen.toml` works afterwards.
"""

from __future__ import annotations

import os
import secrets
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Literal

import uvicorn

from omen.config import load_config
from omen.demo.traffic import CONTAINERS, TrafficGenerator
from omen.demo.upstreams import SimulatedCloud, SimulatedOllama


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Served:
    """An ASGI app on uvicorn in a background thread."""

    def __init__(self, app: Any, port: int, lifespan: Literal["on", "off"] = "off") -> None:
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="error",
            access_log=False,
            lifespan=lifespan,
            loop="asyncio",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


def demo_config(ports: dict[str, int], omen_port: int) -> str:
    containers = "\n".join(
        f"""
[containers.{name}]
api_key = "env:OMEN_DEMO_{name.upper()}_KEY"
[containers.{name}.budget]
daily = "{budget}"
alert_at_percent = 80
[containers.{name}.quotas]
max_requests_per_hour = {quota}
"""
        for name, budget, quota in (
            ("app", "0.50", 5000),
            ("dev", "0.20", 3000),
            ("analytics", "0.05", 2000),
            ("game", "0.10", 5000),
        )
    )
    endpoints = "".join(
        f'  {{ url = "http://127.0.0.1:{ports[name]}", name = "{name}", '
        f'gpu_metrics_url = "http://127.0.0.1:{ports[name]}/metrics" }},\n'
        for name in ("gpu-4090", "gpu-3070")
    )
    return f"""# Written by `omen demo`: simulated upstreams on this machine.
[server]
bind = "127.0.0.1:{omen_port}"
database = "omen.db"
log_level = "warning"

[auth]
api_keys = [{{ key = "env:OMEN_DEMO_ADMIN_KEY", scope = "admin", name = "demo-operator" }}]

[routing]
default_strategy = "balanced"
prefer_local = true
quality_threshold = 0.6

[routing.intent_rules]
code = {{ provider = "ollama", model = "deepseek-coder:6.7b" }}
reasoning = {{ provider = "openai", model = "gpt-4o" }}
general = {{ provider = "ollama", model = "llama3.1:8b" }}

[providers.ollama]
endpoints = [
{endpoints}]
models = ["deepseek-coder:6.7b", "llama3.1:8b"]
load_balancing = "least-loaded"
health_check_interval = "5s"
quality = 0.65

[providers.openai]
api_key = "env:OMEN_DEMO_UPSTREAM_KEY"
endpoints = [{{ url = "http://127.0.0.1:{ports["openai"]}/v1", name = "openai-sim" }}]
models = ["gpt-4o", "gpt-4o-mini"]
cost_per_1k_input_tokens = 0.0025
cost_per_1k_output_tokens = 0.01
health_check_interval = "10s"
quality = 0.92

[providers.xai]
api_key = "env:OMEN_DEMO_UPSTREAM_KEY"
endpoints = [{{ url = "http://127.0.0.1:{ports["xai"]}/v1", name = "xai-sim" }}]
models = ["grok-2"]
cost_per_1k_input_tokens = 0.002
cost_per_1k_output_tokens = 0.01
health_check_interval = "10s"
quality = 0.9
{containers}"""


def start_demo(
    directory: Path, rate: float
) -> tuple[list[_Served], TrafficGenerator, dict[str, str]]:
    """Start upstreams, daemon and traffic; returns what to stop and the demo's settings."""
    from omen.app import build_app

    sims: dict[str, Any] = {
        "gpu-4090": SimulatedOllama("gpu-4090", ["deepseek-coder:6.7b", "llama3.1:8b"], 24, 90),
        "gpu-3070": SimulatedOllama("gpu-3070", ["llama3.1:8b"], 8, 40),
        "openai": SimulatedCloud(["gpt-4o", "gpt-4o-mini"], 0.6),
        "xai": SimulatedCloud(["grok-2"], 0.9, error_rate=0.05),
    }
    ports = {name: _free_port() for name in sims}
    servers = [_Served(app, ports[name]) for name, app in sims.items()]
    for server in servers:
        server.start()
    keys = {name: f"sk-demo-{name}-{secrets.token_hex(8)}" for name in CONTAINERS}
    for name, key in keys.items():
        os.environ[f"OMEN_DEMO_{name.upper()}_KEY"] = key
    admin = f"sk-demo-admin-{secrets.token_hex(8)}"
    os.environ["OMEN_DEMO_ADMIN_KEY"] = admin
    os.environ["OMEN_DEMO_UPSTREAM_KEY"] = "sk-demo-upstream"
    omen_port = _free_port()
    config_path = directory / "omen.toml"
    config_path.write_text(demo_config(ports, omen_port))
    daemon = _Served(build_app(load_config(config_path)), omen_port, lifespan="on")
    daemon.start()
    servers.append(daemon)
    url = f"http://127.0.0.1:{omen_port}"
    traffic = TrafficGenerator(url, keys, rate)
    traffic.start()
    return (
        servers,
        traffic,
        {
            "url": url,
            "admin_key": admin,
            "database": str(directory / "omen.db"),
            "config": str(config_path),
        },
    )


def run_demo(directory: Path | None, seconds: float | None, headless: bool, rate: float) -> int:
    workdir = directory or Path(tempfile.mkdtemp(prefix="omen-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    servers, traffic, settings = start_demo(workdir, rate)
    print(f"omen demo: daemon {settings['url']}, store {settings['database']}", flush=True)
    try:
        if headless:
            time.sleep(seconds if seconds is not None else 30)
        else:
            from omen_tui.app import run

            run(
                database=Path(settings["database"]),
                url=settings["url"],
                admin_key=settings["admin_key"],
                readonly=False,
                mouse=True,
            )
    except KeyboardInterrupt:
        pass
    finally:
        traffic.stop()
        for server in reversed(servers):
            server.stop()
    print(
        f"omen demo: {traffic.sent} requests sent; history kept in {workdir} "
        f"(omen logs --config {settings['config']})"
    )
    return 0
