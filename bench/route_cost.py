"""What Omen's routing costs on the seed's development-container day, next to cloud-only.

    python -m bench.route_cost [--seed 20240601] [--keep DIR]

Replays the seed's "Cost Analysis" workload (100 code-explain, 50 simple-edit, 10 refactoring
and 5 architecture calls a day; see bench/workloads/dev_day.py) through `omen serve` with the
official `openai` SDK, `model: "auto"`, against two in-process fake upstreams: an Ollama
(free, quality 0.6) and an OpenAI-format upstream standing in for Claude Sonnet ($3 / $15 per
million input / output tokens, quality 0.95). Before each request both fakes are scripted to
report the call's token counts, so whichever provider Omen picks reports the right usage.

The day runs twice, each against a fresh `omen serve` and store:
  (a) classifier only: no metadata.intent, Omen's classifier decides; container rules
      code -> ollama, reasoning -> claude (the seed's dev container);
  (b) with client hints: metadata.intent per task (explain, code, refactor, reasoning) and the
      seed's full dev-container rules (plus refactor -> claude, explain -> ollama).

Costs come from Omen's answers (x-omen-cost-usd, x-omen-provider, x-omen-intent) and are
cross-checked against its SQLite store (per request and the spend_daily rollup). The
cloud-only baseline prices every call at the Claude rates with the same token counts.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import httpx
import openai
from openai.types.chat import ChatCompletionMessageParam

from bench.overhead import ROOT, free_port, wait_for
from bench.workloads.dev_day import (
    SEED_CLOUD_PER_CALL,
    SEED_CLOUD_TOTAL,
    SEED_OMEN_TOTAL,
    SEED_SAVINGS,
    TASKS,
    Call,
    build_day,
)
from omen_store import StoreReader, day_name
from tests.fakes import (
    FakeState,
    RunningFake,
    TextReply,
    make_ollama_app,
    make_openai_app,
    run_fake,
)

CONTAINER = "dev"
CONTAINER_KEY = "sk-omen-dev-bench"
CLAUDE_KEY = "sk-ant-bench-upstream"
OLLAMA_MODELS = ["deepseek-coder:6.7b", "llama3.1:8b-instruct"]
CLAUDE_MODEL = "claude-sonnet-4"
CLAUDE_IN_PER_1K = 0.003
CLAUDE_OUT_PER_1K = 0.015
COST_TOLERANCE = 1e-6  # x-omen-cost-usd has 6 decimals

BASE_RULES = {"code": "ollama", "reasoning": "claude"}
HINT_RULES = {**BASE_RULES, "refactor": "claude", "explain": "ollama"}


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    hints: bool
    container_rules: dict[str, str]


SCENARIOS = (
    Scenario("a", "(a) classifier only", hints=False, container_rules=BASE_RULES),
    Scenario("b", "(b) with client hints", hints=True, container_rules=HINT_RULES),
)


@dataclass
class Outcome:
    """What Omen answered for one call."""

    call: Call
    request_id: str = ""
    provider: str = "-"
    model: str = "-"
    intent: str = "-"
    cost: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None


@dataclass
class RunResult:
    scenario: Scenario
    outcomes: list[Outcome]
    store_problems: list[str] = field(default_factory=list)
    store_requests: int = 0
    store_cost: float = 0.0

    @property
    def cost(self) -> float:
        return sum(o.cost for o in self.outcomes)

    @property
    def errors(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error is not None]


def cloud_cost(prompt_tokens: int, completion_tokens: int) -> float:
    """What a call costs when it goes to Claude Sonnet."""
    return prompt_tokens * CLAUDE_IN_PER_1K / 1000 + completion_tokens * CLAUDE_OUT_PER_1K / 1000


def baseline(calls: Iterable[Call]) -> float:
    return sum(cloud_cost(c.prompt_tokens, c.completion_tokens) for c in calls)


# -- Omen --------------------------------------------------------------------------------------


def omen_config(scenario: Scenario, port: int, database: Path, ollama: str, claude: str) -> str:
    rules = "\n".join(f'intents.{k} = "{v}"' for k, v in scenario.container_rules.items())
    return f"""
[server]
bind = "127.0.0.1:{port}"
database = "{database}"
log_level = "warning"
time_zone = "UTC"

[routing]
default_strategy = "balanced"
prefer_local = true

[routing.intent_rules]
code = {{ provider = "ollama", model = "deepseek-coder:6.7b" }}
reasoning = {{ provider = "claude", model = "{CLAUDE_MODEL}" }}

[providers.ollama]
base_url = "{ollama}"
models = {OLLAMA_MODELS!r}
cost_per_token = 0.0
quality = 0.6

[providers.claude]
type = "openai"
api_key = "env:BENCH_CLAUDE_KEY"
base_url = "{claude}/v1"
models = ["{CLAUDE_MODEL}"]
cost_per_1k_input_tokens = {CLAUDE_IN_PER_1K}
cost_per_1k_output_tokens = {CLAUDE_OUT_PER_1K}
quality = 0.95

[containers.{CONTAINER}]
api_key = "env:BENCH_DEV_KEY"
router_strategy = "balanced"
prefer_local = true

[containers.{CONTAINER}.budget]
daily = "5.00"

[containers.{CONTAINER}.routing]
{rules}
"""


def start_omen(workdir: Path, config_text: str, port: int) -> subprocess.Popen[bytes]:
    config = workdir / "omen.toml"
    config.write_text(config_text)
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        BENCH_CLAUDE_KEY=CLAUDE_KEY,
        BENCH_DEV_KEY=CONTAINER_KEY,
    )
    log = (workdir / "omen.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "omen", "serve", "--config", str(config)],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(port)
        wait_ready(f"http://127.0.0.1:{port}", process)
    except Exception:
        stop_omen(process)
        sys.stderr.write((workdir / "omen.log").read_text())
        raise
    return process


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Until /ready says an endpoint is usable (health probes have run)."""
    deadline = time.monotonic() + timeout
    headers = {"authorization": f"Bearer {CONTAINER_KEY}"}
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"omen serve exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/ready", headers=headers, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"omen at {url} not ready after {timeout}s")


def stop_omen(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM: Omen flushes its store writer before it exits."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- one run of the day ------------------------------------------------------------------------


def send_day(
    client: openai.OpenAI, calls: list[Call], fakes: list[FakeState], hints: bool
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for call in calls:
        reply = TextReply(
            call.reply_text,
            prompt_tokens=call.prompt_tokens,
            completion_tokens=call.completion_tokens,
        )
        for fake in fakes:
            fake.script.default = reply
        outcome = Outcome(call)
        try:
            raw = client.chat.completions.with_raw_response.create(
                model="auto",
                messages=cast("list[ChatCompletionMessageParam]", list(call.messages)),
                max_tokens=call.max_tokens,
                temperature=0.2,
                metadata={"intent": call.hint_intent} if hints else openai.omit,
            )
        except openai.APIStatusError as exc:
            outcome.error = f"{exc.status_code}: {exc.message}"
            outcomes.append(outcome)
            continue
        except openai.APIError as exc:
            outcome.error = str(exc)
            outcomes.append(outcome)
            continue
        completion = raw.parse()
        outcome.request_id = raw.headers.get("x-omen-request-id", "")
        outcome.provider = raw.headers.get("x-omen-provider", "?")
        outcome.model = raw.headers.get("x-omen-model", completion.model)
        outcome.intent = raw.headers.get("x-omen-intent", "?")
        outcome.cost = float(raw.headers.get("x-omen-cost-usd", "nan"))
        if completion.usage is not None:
            outcome.prompt_tokens = completion.usage.prompt_tokens
            outcome.completion_tokens = completion.usage.completion_tokens
        if (outcome.prompt_tokens, outcome.completion_tokens) != (
            call.prompt_tokens,
            call.completion_tokens,
        ):
            outcome.error = (
                f"usage {outcome.prompt_tokens}/{outcome.completion_tokens}, "
                f"scripted {call.prompt_tokens}/{call.completion_tokens}"
            )
        if math.isnan(outcome.cost):
            outcome.error = "no x-omen-cost-usd header"
            outcome.cost = 0.0
        outcomes.append(outcome)
    return outcomes


def cross_check(result: RunResult, database: Path, since: float) -> None:
    """Compare the answers' headers with what Omen recorded in its store."""
    problems = result.store_problems
    with StoreReader(database) as reader:
        rows = reader.recent_requests(container=CONTAINER, limit=10 * len(result.outcomes))
        spend = reader.spend_by_container(day_name(since - 1))
    by_id = {row.id: row for row in rows}
    result.store_requests = len(rows)
    result.store_cost = sum(row.cost_usd for row in rows)
    rollup = next((s.totals for s in spend if s.container == CONTAINER), None)
    if len(rows) != len(result.outcomes):
        problems.append(f"store has {len(rows)} requests, {len(result.outcomes)} were sent")
    if rollup is None:
        problems.append(f"no spend_daily rollup for container {CONTAINER!r}")
    elif abs(rollup.cost_usd - result.store_cost) > COST_TOLERANCE:
        problems.append(
            f"spend_daily says ${rollup.cost_usd:.6f}, request rows ${result.store_cost:.6f}"
        )
    if abs(result.store_cost - result.cost) > COST_TOLERANCE * max(1, len(rows)):
        problems.append(f"store ${result.store_cost:.6f} vs headers ${result.cost:.6f}")
    for outcome in result.outcomes:
        if outcome.error is not None:
            continue
        row = by_id.get(outcome.request_id)
        if row is None:
            problems.append(f"request {outcome.request_id or '?'} not in the store")
            continue
        seen = (row.provider, row.intent, row.prompt_tokens, row.completion_tokens)
        said = (outcome.provider, outcome.intent, outcome.prompt_tokens, outcome.completion_tokens)
        if seen != said or abs(row.cost_usd - outcome.cost) > COST_TOLERANCE:
            problems.append(f"{row.id}: store {seen} ${row.cost_usd}, answer {said}")


@dataclass(frozen=True)
class Upstreams:
    """The two fake upstreams, running, with the state that scripts them."""

    ollama: RunningFake
    ollama_state: FakeState
    claude: RunningFake
    claude_state: FakeState


def run_scenario(
    scenario: Scenario, calls: list[Call], workdir: Path, upstreams: Upstreams
) -> RunResult:
    workdir.mkdir(parents=True, exist_ok=True)
    database = workdir / "omen.db"
    port = free_port()
    config = omen_config(scenario, port, database, upstreams.ollama.url, upstreams.claude.url)
    since = time.time()
    process = start_omen(workdir, config, port)
    fakes = [upstreams.ollama_state, upstreams.claude_state]
    try:
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key=CONTAINER_KEY, max_retries=0
        )
        with client:
            outcomes = send_day(client, calls, fakes, scenario.hints)
    finally:
        stop_omen(process)
    result = RunResult(scenario, outcomes)
    cross_check(result, database, since)
    return result


# -- report ------------------------------------------------------------------------------------


def counts(values: Iterable[str]) -> str:
    return ", ".join(f"{k} {n}" for k, n in Counter(values).most_common()) or "-"


def money(value: float) -> str:
    return f"${value:,.4f}"


def print_run(result: RunResult) -> None:
    outcomes = result.outcomes
    print(f"\n{result.scenario.title}")
    header = (
        f"  {'task':<13} {'calls':>5} {'in tok':>6} {'out tok':>7}  {'provider (calls)':<22} "
        f"{'intent (calls)':<26} {'cost/day':>9} {'cloud-only':>10}  seed"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for task in TASKS:
        mine = [o for o in outcomes if o.call.task == task.key]
        calls = [o.call for o in mine]
        print(
            f"  {task.label:<13} {len(mine):>5} "
            f"{_mean(c.prompt_tokens for c in calls):>6} "
            f"{_mean(c.completion_tokens for c in calls):>7}  "
            f"{counts(o.provider for o in mine):<22} {counts(o.intent for o in mine):<26} "
            f"{money(sum(o.cost for o in mine)):>9} {money(baseline(calls)):>10}  "
            f"{task.seed_provider} ${task.seed_cost:.2f}"
        )
    all_calls = [o.call for o in outcomes]
    print(
        f"  {'Total':<13} {len(outcomes):>5} {'':>6} {'':>7}  "
        f"{counts(o.provider for o in outcomes):<22} {'':<26} "
        f"{money(result.cost):>9} {money(baseline(all_calls)):>10}  Mixed ${SEED_OMEN_TOTAL:.2f}"
    )
    print(f"\n  {'provider':<10} {'calls':>5} {'in tok':>9} {'out tok':>8} {'cost/day':>9}")
    for provider in sorted({o.provider for o in outcomes}):
        mine = [o for o in outcomes if o.provider == provider]
        print(
            f"  {provider:<10} {len(mine):>5} {sum(o.prompt_tokens for o in mine):>9,} "
            f"{sum(o.completion_tokens for o in mine):>8,} {money(sum(o.cost for o in mine)):>9}"
        )
    check = f"store: {result.store_requests} requests, {money(result.store_cost)} — " + (
        "matches the answers' headers" if not result.store_problems else "MISMATCH"
    )
    print(f"  {check}")
    for problem in result.store_problems[:10]:
        print(f"    ! {problem}")
    for outcome in result.errors[:10]:
        print(f"    ! call {outcome.call.index} ({outcome.call.task}): {outcome.error}")


def _mean(values: Iterable[int]) -> int:
    items = list(values)
    return round(sum(items) / len(items)) if items else 0


def print_summary(results: list[RunResult], calls: list[Call]) -> None:
    cloud = baseline(calls)
    print("\nSummary, $/day")
    print(f"  {'':<24} {'with Omen':>10} {'cloud-only':>10} {'savings':>8}")
    print(
        f"  {'seed claim':<24} {money(SEED_OMEN_TOTAL):>10} {money(SEED_CLOUD_TOTAL):>10} "
        f"{SEED_SAVINGS:>8.0%}"
    )
    for result in results:
        saved = 1 - result.cost / cloud if cloud else 0.0
        title = result.scenario.title
        print(f"  {title:<24} {money(result.cost):>10} {money(cloud):>10} {saved:>8.0%}")


def why(results: list[RunResult], calls: list[Call]) -> str:
    """A few sentences, generated from the data, on where the money went."""
    cloud = baseline(calls)
    per_call = cloud / len(calls)
    lines = [
        f"Cloud-only, this day costs {money(cloud)} ({money(per_call)} a call on average) at "
        f"Claude Sonnet's $3/$15 per million tokens; the seed assumes ${SEED_CLOUD_PER_CALL:.2f} "
        f"a call (${SEED_CLOUD_TOTAL:.2f}), so its baseline is "
        f"{SEED_CLOUD_TOTAL / cloud:.1f}x this workload's."
    ]
    by_task = {t.key: t for t in TASKS}
    for result in results:
        parts = []
        for task in TASKS:
            mine = [o for o in result.outcomes if o.call.task == task.key]
            local = sum(1 for o in mine if o.provider == "ollama")
            where = (
                "all local"
                if local == len(mine)
                else "all on Claude"
                if local == 0
                else f"{local}/{len(mine)} local"
            )
            intents = Counter(o.intent for o in mine).most_common(1)
            parts.append(
                f"{task.label.lower()} {where} (intent {intents[0][0] if intents else '-'}, "
                f"{money(sum(o.cost for o in mine))})"
            )
        cloud_tasks = {
            o.call.task for o in result.outcomes if o.provider != "ollama" and o.error is None
        }
        seed_cloud = {t.key for t in TASKS if t.seed_provider == "Claude"}
        saved = 1 - result.cost / cloud if cloud else 0.0
        sentence = f"{result.scenario.title}: " + "; ".join(parts) + f" → {saved:.0%} saved."
        if not cloud_tasks:
            sentence += (
                " Nothing reached Claude, so the saving is total, but the seed wants "
                + " and ".join(by_task[k].label.lower() for k in sorted(seed_cloud))
                + " on Claude: those answers came from a quality-0.6 local model instead."
            )
        elif cloud_tasks - seed_cloud:
            extra = ", ".join(by_task[k].label.lower() for k in sorted(cloud_tasks - seed_cloud))
            sentence += f" Calls the seed keeps local went to Claude ({extra})."
        elif seed_cloud - cloud_tasks:
            missing = ", ".join(by_task[k].label.lower() for k in sorted(seed_cloud - cloud_tasks))
            sentence += f" The seed sends {missing} to Claude; Omen kept them local."
        else:
            sentence += " This is the seed's split (simple work local, heavy work on Claude)."
        lines.append(sentence)
    heavy = [c for c in calls if by_task[c.task].seed_provider == "Claude"]
    share = baseline(heavy) / cloud if cloud else 0.0
    seed_heavy = [t for t in TASKS if t.seed_provider == "Claude"]
    seed_heavy_per_call = sum(t.seed_cost for t in seed_heavy) / sum(t.calls for t in seed_heavy)
    lines.append(
        f"The seed's split (light work local, heavy work on Claude) saves exactly the light "
        f"calls' share of the cloud-only bill: here the {len(heavy)} refactoring/architecture "
        f"calls carry {share:.0%} of it, so that split saves {1 - share:.0%}. The seed's "
        f"{SEED_SAVINGS:.0%} comes from its own figures, which price its Claude calls at "
        f"${seed_heavy_per_call:.2f} each but the average cloud-only call at "
        f"${SEED_CLOUD_PER_CALL:.2f}."
    )
    return "\n".join(_wrap(line) for line in lines)


def _wrap(text: str, width: int = 98) -> str:
    return textwrap.fill(text, width=width, subsequent_indent="  ")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=20240601, help="workload random seed")
    parser.add_argument("--keep", type=Path, help="keep configs, logs and stores in this folder")
    args = parser.parse_args()

    calls = build_day(args.seed)
    started = time.monotonic()
    ollama_state = FakeState(models=list(OLLAMA_MODELS), loaded=[OLLAMA_MODELS[0]], record=False)
    claude_state = FakeState(models=[CLAUDE_MODEL], api_key=CLAUDE_KEY, record=False)
    with (
        run_fake(make_ollama_app(ollama_state)) as ollama,
        run_fake(make_openai_app(claude_state)) as claude,
        tempfile.TemporaryDirectory() as tmp,
    ):
        upstreams = Upstreams(ollama, ollama_state, claude, claude_state)
        root = args.keep or Path(tmp)
        results = [run_scenario(s, calls, root / f"run-{s.key}", upstreams) for s in SCENARIOS]
    print(
        f"Development container, one day: {len(calls)} calls (seed {args.seed}), "
        f"model=auto, container {CONTAINER!r} (balanced, prefer_local); "
        f"ollama $0 q0.6, claude $3/$15 per 1M tokens q0.95"
    )
    for result in results:
        print_run(result)
    print_summary(results, calls)
    print("\nWhy")
    print(why(results, calls))
    print(f"\n({time.monotonic() - started:.1f}s)")
    if any(r.store_problems or r.errors for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
