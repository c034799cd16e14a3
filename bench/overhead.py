"""What Omen adds: the same load sent straight to a fake upstream and through `omen serve`.

    python -m bench.overhead [--seconds 20] [--connections 50]

Starts one fake OpenAI-format upstream (tests/fakes, one process), one `omen serve` (one
process, real SQLite file) in front of it, and `bench.bare_proxy` (the same server and client
libraries with none of Omen's work: the floor for any proxy on this stack), then for
non-streaming and streaming requests: a sequential run (one connection: added latency per
request) and a concurrent run (requests/s at N connections). Load generator, upstream and the
proxies share this machine; each is measured alone, one after the other.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from bench.loadgen import Result, run_load

ROOT = Path(__file__).resolve().parent.parent
MODEL = "gpt-4o"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port} after {timeout}s")


def start_bare_proxy(upstream_port: int) -> tuple[int, subprocess.Popen[bytes]]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.bare_proxy",
            str(port),
            f"http://127.0.0.1:{upstream_port}/v1",
        ],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    wait_for(port)
    return port, proc


def start_processes(workdir: Path) -> tuple[int, int, list[subprocess.Popen[bytes]]]:
    upstream_port, omen_port = free_port(), free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    upstream = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes",
            "--kind",
            "openai",
            "--port",
            str(upstream_port),
            "--no-record",
        ],
        cwd=ROOT,
        env=env,
    )
    config = workdir / "omen.toml"
    config.write_text(
        f"""
[server]
bind = "127.0.0.1:{omen_port}"
database = "{workdir / "bench.db"}"
log_level = "warning"

[auth]
api_keys = [{{ key = "env:BENCH_KEY", scope = "user" }}]

[providers.openai]
api_key = "env:BENCH_UPSTREAM_KEY"
base_url = "http://127.0.0.1:{upstream_port}/v1"
models = ["{MODEL}"]
cost_per_1k_input_tokens = 0.0025
cost_per_1k_output_tokens = 0.01
health_check_interval = "30s"
"""
    )
    env.update(BENCH_KEY="sk-bench", BENCH_UPSTREAM_KEY="sk-upstream")
    omen = subprocess.Popen(
        [sys.executable, "-m", "omen", "serve", "--config", str(config)], cwd=workdir, env=env
    )
    wait_for(upstream_port)
    wait_for(omen_port)
    return upstream_port, omen_port, [upstream, omen]


def body(stream: bool) -> bytes:
    payload: dict[str, object] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Summarise the plot of Hamlet in one line."}],
    }
    if stream:
        payload["stream"] = True
    return orjson.dumps(payload)


async def measure(ports: dict[str, int], seconds: float, connections: int) -> None:
    rows: list[tuple[str, str, dict[str, Result]]] = []
    for stream in (False, True):
        payload = body(stream)
        kind = "stream" if stream else "non-stream"
        for label, conns in (("sequential", 1), (f"{connections} conns", connections)):
            results: dict[str, Result] = {}
            for name, port in ports.items():
                url = f"http://127.0.0.1:{port}/v1/chat/completions"
                # Warm the path (connections, caches) before measuring.
                await run_load(url, payload, connections=conns, seconds=1.0)
                results[name] = await run_load(url, payload, connections=conns, seconds=seconds)
            rows.append((kind, label, results))

    print()
    print(
        f"{'request':<11} {'load':<11} {'metric':<8} {'direct':>8} {'bare':>15} {'omen':>15} "
        f"{'direct p50':>10} {'bare +p50':>9} {'omen +p50':>9} {'omen +p95':>9} {'failed':>6}"
    )
    for kind, label, results in rows:
        direct, bare, via = results["direct"], results["bare"], results["omen"]
        for metric in ("latency", "ttft") if kind == "stream" else ("latency",):
            d, b, v = direct.summary(metric), bare.summary(metric), via.summary(metric)
            print(
                f"{kind:<11} {label:<11} {metric:<8} {direct.rps:>8.0f} "
                f"{bare.rps:>7.0f} ({bare.rps / direct.rps:>4.0%}) "
                f"{via.rps:>7.0f} ({via.rps / direct.rps:>4.0%}) "
                f"{d['p50']:>8.2f}ms {b['p50'] - d['p50']:>7.2f}ms {v['p50'] - d['p50']:>7.2f}ms "
                f"{v['p95'] - d['p95']:>7.2f}ms {via.failed + bare.failed:>6}"
            )
    print(
        "\nrequests/s (share of direct); latency: full response time; ttft: time to the first SSE "
        "event; +p50/+p95: through the proxy minus direct, same percentile. bare: "
        "bench.bare_proxy, uvicorn + aiohttp with none of Omen's work."
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    with tempfile.TemporaryDirectory() as tmp:
        upstream_port, omen_port, procs = start_processes(Path(tmp))
        bare_port, bare = start_bare_proxy(upstream_port)
        procs.append(bare)
        ports = {"direct": upstream_port, "bare": bare_port, "omen": omen_port}
        try:
            asyncio.run(measure(ports, args.seconds, args.connections))
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=20)


if __name__ == "__main__":
    main()
