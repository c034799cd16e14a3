"""`omen whatif` over a real store written by the real StoreWriter: every total below is
worked out by hand in the comments, from the prices in CONFIG and the rows in ROWS.

Prices per token (the config's per-1k prices / 1000): gpt-4o-mini 2e-7 in, 8e-7 out;
gpt-4o 2e-6 in, 8e-6 out; cached input at half the input price (OpenAI's usual share; set
for mini, whose own input price would otherwise leave it gpt-4o's cache price); ollama
free. Stored option estimates: ollama 400 ms quality 0.6 (local), mini 700 ms 0.85, gpt-4o
1200 ms 0.95. The config: quality_threshold 0.8, prefer_local on.

The rows, all within the last hour unless said:
  R1 app   auto, strategy cost-optimized, served mini,  1000 in / 500 out,  650 ms, $0.0006
          (1000·2e-7 + 500·8e-7 = 0.0002 + 0.0004)
  R2 app   auto, strategy quality-first,  served 4o, 2000 in (1000 cached) / 1000 out,
          1300 ms, $0.011 (fresh 1000·2e-6 + cached 1000·1e-6 + 1000·8e-6)
  R3 batch auto, strategy balanced, served ollama, 3000 in / 1000 out, 500 ms, $0
  R4 batch explicit gpt-4o, 1000 in / 1000 out, 1000 ms, $0.01 (0.002 + 0.008)
  R5 app   auto, refused with 429 before any provider: skipped
  R6 app   auto, three hours ago, served 4o, 1000 / 1000, 1000 ms, $0.01: outside --since 1h
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from omen.whatif import add_arguments, main, parse_price
from omen_store import RequestRecord, StoreWriter

CONFIG = """
[server]
database = "omen.db"

[routing]
default_strategy = "balanced"
prefer_local = true
quality_threshold = 0.8

[providers.ollama]
models = ["llama3.1:8b"]

[providers.openai]
models = ["gpt-4o", "gpt-4o-mini"]
cost_per_1k_input_tokens = 0.002
cost_per_1k_output_tokens = 0.008
quality = 0.95

[providers.openai.model_info."gpt-4o-mini"]
cost_per_1k_input_tokens = 0.0002
cost_per_1k_output_tokens = 0.0008
cost_per_1k_cache_read_tokens = 0.0001
quality = 0.85
"""

OLLAMA = {"provider": "ollama", "model": "llama3.1:8b", "local": True, "quality": 0.6}
MINI = {"provider": "openai", "model": "gpt-4o-mini", "local": False, "quality": 0.85}
GPT4O = {"provider": "openai", "model": "gpt-4o", "local": False, "quality": 0.95}
LATENCY = {"llama3.1:8b": 400.0, "gpt-4o-mini": 700.0, "gpt-4o": 1200.0}


def option(base: dict[str, Any]) -> dict[str, Any]:
    """An option as Router.route stores it (est_cost and score from routing time)."""
    return {
        **base,
        "est_cost": 0.0,
        "latency_ms": LATENCY[base["model"]],
        "score": 0.0,
        "components": {},
    }


def row(
    n: int,
    *,
    container: str,
    provider: str | None,
    model: str | None,
    prompt: int = 0,
    completion: int = 0,
    cached: int = 0,
    latency: float = 0.0,
    cost: float = 0.0,
    strategy: str = "balanced",
    requested: str = "auto",
    intent: str = "general",
    ago: float = 60.0,
    options: list[dict[str, Any]] | None = None,
) -> RequestRecord:
    opts = options if options is not None else [option(o) for o in (OLLAMA, MINI, GPT4O)]
    attempts = [] if provider is None else [{"provider": provider, "model": model, "status": 200}]
    return RequestRecord(
        id=f"req-{n}",
        ts=time.time() - ago,
        container=container,
        key_id=None,
        kind="chat",
        requested_model=requested,
        model=model,
        provider=provider,
        endpoint=None if provider is None else f"{provider}-1",
        intent=intent,
        strategy=strategy if requested == "auto" else "explicit",
        stream=False,
        status=200 if provider is not None else 429,
        latency_ms=latency,
        ttft_ms=None,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=cached,
        cost_usd=cost,
        decision={
            "intent": {"name": intent, "source": "classifier", "signals": []},
            "strategy": strategy,
            "rule": None,
            "options": opts,
            "excluded": [],
            "attempts": attempts,
        },
        error=None if provider is not None else "budget_daily reached",
    )


ROWS = [
    row(1, container="app", provider="openai", model="gpt-4o-mini", prompt=1000,
        completion=500, latency=650, cost=0.0006, strategy="cost-optimized"),
    row(2, container="app", provider="openai", model="gpt-4o", prompt=2000, completion=1000,
        cached=1000, latency=1300, cost=0.011, strategy="quality-first"),
    row(3, container="batch", provider="ollama", model="llama3.1:8b", prompt=3000,
        completion=1000, latency=500, cost=0.0, intent="code"),
    row(4, container="batch", provider="openai", model="gpt-4o", prompt=1000, completion=1000,
        latency=1000, cost=0.01, requested="gpt-4o", options=[option(GPT4O)]),
    row(5, container="app", provider=None, model=None),
    row(6, container="app", provider="openai", model="gpt-4o", prompt=1000, completion=1000,
        latency=1000, cost=0.01, ago=3 * 3600),
]  # fmt: skip


def write_store(path: Path, records: list[RequestRecord]) -> Path:
    writer = StoreWriter(path)
    writer.start()
    for record in records:
        writer.record_request(record)
    writer.close()
    return path


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    config = tmp_path / "omen.toml"
    config.write_text(CONFIG)
    return config, write_store(tmp_path / "omen.db", ROWS)


def whatif(
    setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str], *argv: str
) -> dict[str, Any]:
    config, db = setup
    code = main(["--config", str(config), "--db", str(db), "--since", "1h", "--json", *argv])
    out = capsys.readouterr().out
    assert code == 0
    data: dict[str, Any] = json.loads(out)
    return data


def test_no_change_asked_reproduces_every_stored_choice(
    setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # R1 cost-optimized: cheapest with quality ≥ 0.8 is mini (ollama's 0.6 is too low) = R1.
    # R2 quality-first: gpt-4o = R2. R3 balanced (no local option meets 0.8): scores
    #   ollama 0 + 0.4·400/1200 + 0.3·0.4 = 0.2533; mini 0.3·0.0014/0.014 + 0.4·700/1200
    #   + 0.3·0.15 = 0.3083; gpt-4o 0.3 + 0.4 + 0.015 = 0.715 → ollama = R3.
    total = whatif(setup, capsys)["total"]
    assert total["requests"] == 4  # R1–R4; R5 skipped, R6 before the period
    assert (total["rerouted"], total["changed"], total["unchanged"]) == (3, 0, 1)
    assert total["skipped"] == 1
    assert total["whatif"] == total["actual"]
    assert total["actual"]["cost_usd"] == pytest.approx(0.0216)  # 0.0006 + 0.011 + 0 + 0.01
    assert total["actual"]["local_share"] == 0.25  # R3 of four
    assert total["actual"]["est_latency_ms"] == pytest.approx(862.5)  # (650+1300+500+1000)/4
    assert total["actual"]["mean_quality"] == pytest.approx(0.8375)  # (.85+.95+.6+.95)/4


def test_cost_optimized_moves_the_quality_first_and_local_picks_to_the_cheapest_good_one(
    setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # Cheapest with quality ≥ 0.8 is mini for every auto row:
    #   R1 stays (its billed $0.0006, observed 650 ms);
    #   R2 → mini: fresh 1000·2e-7 + cached 1000·1e-7 + 1000·8e-7 = 0.0011, 700 ms;
    #   R3 → mini: 3000·2e-7 + 1000·8e-7 = 0.0014, 700 ms; R4 explicit: as it was.
    data = whatif(setup, capsys, "--strategy", "cost-optimized")
    total, app, batch = data["total"], data["containers"]["app"], data["containers"]["batch"]
    assert (total["rerouted"], total["changed"], total["unchanged"]) == (3, 2, 1)
    assert total["whatif"]["cost_usd"] == pytest.approx(0.0131)  # .0006+.0011+.0014+.01
    assert total["whatif"]["local_share"] == 0.0
    assert total["whatif"]["est_latency_ms"] == pytest.approx(762.5)  # (650+700+700+1000)/4
    assert total["whatif"]["mean_quality"] == pytest.approx(0.875)  # (.85·3 + .95)/4
    # Per container: app = R1 + R2, batch = R3 + R4.
    assert app["actual"]["cost_usd"] == pytest.approx(0.0116)
    assert app["whatif"]["cost_usd"] == pytest.approx(0.0017)
    assert (app["requests"], app["changed"], app["skipped"]) == (2, 1, 1)
    assert batch["actual"]["cost_usd"] == pytest.approx(0.01)
    assert batch["whatif"]["cost_usd"] == pytest.approx(0.0114)
    assert (batch["requests"], batch["changed"], batch["unchanged"]) == (2, 1, 1)
    assert batch["actual"]["local_share"] == 0.5
    assert batch["whatif"]["local_share"] == 0.0


def test_quality_first_sends_everything_to_the_best_model(
    setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # Every auto row → gpt-4o: R1 1000·2e-6 + 500·8e-6 = 0.006, 1200 ms; R2 stays (0.011,
    # 1300 ms); R3 3000·2e-6 + 1000·8e-6 = 0.014, 1200 ms; R4 0.01, 1000 ms.
    total = whatif(setup, capsys, "--strategy", "quality-first")["total"]
    assert total["changed"] == 2
    assert total["whatif"]["cost_usd"] == pytest.approx(0.041)
    assert total["whatif"]["local_share"] == 0.0
    assert total["whatif"]["est_latency_ms"] == pytest.approx(1175.0)  # 4700 / 4
    assert total["whatif"]["mean_quality"] == pytest.approx(0.95)


def test_prefer_local_off_and_a_low_threshold_send_auto_traffic_to_the_free_local_box(
    setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # Threshold 0.5: all three are good; cheapest is ollama ($0) for R1–R3. R1, R2 move
    # (400 ms, quality 0.6); R3 stays (500 ms observed). Cost: 0 + 0 + 0 + 0.01.
    total = whatif(
        setup, capsys, "--strategy", "cost-optimized", "--quality-threshold", "0.5",
        "--no-prefer-local",
    )["total"]  # fmt: skip
    assert total["changed"] == 2
    assert total["whatif"]["cost_usd"] == pytest.approx(0.01)
    assert total["whatif"]["local_share"] == 0.75
    assert total["whatif"]["est_latency_ms"] == pytest.approx(575.0)  # (400+400+500+1000)/4
    assert total["whatif"]["mean_quality"] == pytest.approx(0.6875)  # (.6·3 + .95)/4


def test_a_price_on_the_local_model_makes_the_cloud_cheaper_unless_local_is_preferred(
    setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # ollama at 0.001/0.001 per 1k = 1e-6 a token either way (its cache share is 100%):
    #   R1 ollama 1500·1e-6 = 0.0015 > mini 0.0006 → mini (stays, billed 0.0006)
    #   R2 ollama 3000·1e-6 = 0.003 > mini 0.0011 → mini
    #   R3 ollama 4000·1e-6 = 0.004 > mini 0.0014 → mini
    price = ["--price", "ollama.llama3.1:8b=0.001/0.001"]
    policy = ["--strategy", "cost-optimized", "--quality-threshold", "0.5"]
    total = whatif(setup, capsys, *policy, *price, "--no-prefer-local")["total"]
    assert total["changed"] == 2  # R2 and R3
    assert total["whatif"]["cost_usd"] == pytest.approx(0.0131)  # .0006+.0011+.0014+.01
    assert total["whatif"]["local_share"] == 0.0
    # With prefer_local, cost-optimized puts the local option first whatever it costs, and
    # R3's own pick is billed at the new price, not its recorded $0:
    # 0.0015 + 0.003 + 0.004 + 0.01.
    total = whatif(setup, capsys, *policy, *price, "--prefer-local")["total"]
    assert total["changed"] == 2  # R1 and R2
    assert total["whatif"]["cost_usd"] == pytest.approx(0.0185)
    assert total["whatif"]["local_share"] == 0.75


def test_explicit_model_requests_stay_as_they_were(
    setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # Only R4 (explicit gpt-4o) in this view: a price cut on gpt-4o does not re-bill it.
    data = whatif(
        setup, capsys, "--container", "batch", "--strategy", "quality-first",
        "--price", "openai.gpt-4o=0/0",
    )  # fmt: skip
    assert list(data["containers"]) == ["batch"]
    total = data["total"]
    # R3 → gpt-4o at $0 (the price override), R4 unchanged at its recorded $0.01.
    assert (total["requests"], total["unchanged"], total["changed"]) == (2, 1, 1)
    assert total["whatif"]["cost_usd"] == pytest.approx(0.01)
    assert total["actual"]["cost_usd"] == pytest.approx(0.01)


def test_since_bounds_the_period(
    setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config, db = setup
    assert main(["--config", str(config), "--db", str(db), "--json"]) == 0
    everything = json.loads(capsys.readouterr().out)["total"]
    # R6 (three hours ago) joins: five served requests, $0.0216 + $0.01 actual.
    assert everything["requests"] == 5
    assert everything["actual"]["cost_usd"] == pytest.approx(0.0316)
    assert main(["--config", str(config), "--db", str(db), "--json", "--since", "4h"]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["requests"] == 5
    assert main(["--config", str(config), "--db", str(db), "--json", "--since", "2h"]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["requests"] == 4


def test_an_intent_rule_keeps_its_provider_first_whatever_the_strategy(
    tmp_path: Path, setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # R3's intent is code; with `code = ollama` the router puts ollama first after ranking,
    # so under quality-first R3 stays on ollama ($0) and only R1 moves to gpt-4o (0.006).
    config = tmp_path / "rules.toml"
    config.write_text(CONFIG + '\n[routing.intent_rules]\ncode = { provider = "ollama" }\n')
    assert main(
        ["--config", str(config), "--db", str(setup[1]), "--since", "1h", "--json",
         "--strategy", "quality-first"]
    ) == 0  # fmt: skip
    total = json.loads(capsys.readouterr().out)["total"]
    assert total["changed"] == 1
    assert total["whatif"]["cost_usd"] == pytest.approx(0.027)  # 0.006 + 0.011 + 0 + 0.01


def test_the_table_names_rerouted_unchanged_and_skipped(
    setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config, db = setup
    argv = ["--config", str(config), "--db", str(db), "--since", "1h"]
    assert main([*argv, "--strategy", "cost-optimized"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    total = next(line for line in lines if line.startswith("TOTAL"))
    assert "$0.0216 → $0.0131" in total
    assert "25% → 0%" in total
    assert any(line.startswith("app ") for line in lines)
    assert any(line.startswith("batch ") for line in lines)
    assert "re-routed: 3 `auto` decisions" in out and "2 of them would have gone" in out
    assert "unchanged: 1 request for an explicit model" in out
    assert "skipped: 1 request refused" in out
    assert "strategy cost-optimized" in out


def test_a_decision_recorded_in_a_shape_it_cannot_read_is_counted_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "omen.toml"
    config.write_text(CONFIG)
    odd = row(1, container="app", provider="openai", model="gpt-4o", prompt=10, completion=10,
              latency=100, cost=0.5, options=[{"provider": "openai"}])  # fmt: skip
    db = write_store(tmp_path / "odd.db", [odd])
    conn = sqlite3.connect(db)  # and one whose JSON is damaged
    conn.execute(
        "INSERT INTO requests (id, ts, container, kind, requested_model, provider, model, "
        "stream, status, level, latency_ms, prompt_tokens, completion_tokens, cost_usd, "
        "decision) VALUES ('bad', ?, 'app', 'chat', 'auto', 'openai', 'gpt-4o', 0, 200, "
        "'info', 100, 10, 10, 0.25, '{\"options\": [')",
        [time.time()],
    )
    conn.commit()
    conn.close()
    assert main(["--config", str(config), "--db", str(db), "--json"]) == 0
    total = json.loads(capsys.readouterr().out)["total"]
    assert (total["rerouted"], total["unchanged"]) == (0, 2)
    assert total["whatif"]["cost_usd"] == total["actual"]["cost_usd"] == 0.75


def test_an_option_that_was_down_is_not_picked_and_a_dated_model_name_is_its_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The stream's row names the upstream's dated model; its attempt names the option. With
    # threshold 0.5 and no local preference ollama ($0) would be cheapest, but it had no
    # healthy endpoint then (the router listed it last, as a last resort): mini stays.
    config = tmp_path / "omen.toml"
    config.write_text(CONFIG)
    record = row(1, container="app", provider="openai", model="gpt-4o-mini", prompt=1000,
                 completion=500, latency=650, cost=0.0006, strategy="cost-optimized",
                 options=[option(MINI), option(OLLAMA)])  # fmt: skip
    record.model = "gpt-4o-mini-2024-07-18"
    assert record.decision is not None
    record.decision["excluded"] = [
        {"provider": "ollama", "model": "llama3.1:8b", "why": "no healthy endpoint"}
    ]
    db = write_store(tmp_path / "down.db", [record])
    argv = ["--config", str(config), "--db", str(db), "--json", "--no-prefer-local"]
    assert main([*argv, "--strategy", "cost-optimized", "--quality-threshold", "0.5"]) == 0
    total = json.loads(capsys.readouterr().out)["total"]
    assert (total["rerouted"], total["changed"]) == (1, 0)
    assert total["actual"]["mean_quality"] == 0.85  # found its option despite the date
    assert total["whatif"] == total["actual"]


def test_an_empty_period_says_so(
    setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config, db = setup
    assert main(["--config", str(config), "--db", str(db), "--container", "nobody"]) == 0
    assert "no requests in this period" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--price", "gpt-4o=1/2"], "PROVIDER.MODEL=IN/OUT"),
        (["--price", "openai.gpt-4o"], "PROVIDER.MODEL=IN/OUT"),
        (["--price", "openai.gpt-4o=cheap"], "PROVIDER.MODEL=IN/OUT"),
        (["--price", "openai.gpt-4o=-1/2"], "≥ 0"),
        (["--price", "openai.gpt-4o=1/2/3"], "PROVIDER.MODEL=IN/OUT"),
        (["--strategy", "cheapest"], "invalid choice"),
        (["--since", "yesterday"], "--since"),
        (["--since", "0s"], "--since"),
        (["--quality-threshold", "2"], "between 0 and 1"),
    ],
)
def test_misuse_is_one_line_and_exit_2(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert says in err


def test_a_missing_store_a_directory_and_a_broken_config_are_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "omen.toml"
    config.write_text(CONFIG)
    for db, says in ((tmp_path / "none.db", "no store at"), (tmp_path, "is a directory")):
        assert main(["--config", str(config), "--db", str(db)]) == 1
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and says in err
    # The store path comes from the config when --db is not given: omen.db beside it.
    assert main(["--config", str(config)]) == 1
    assert "no store at" in capsys.readouterr().err
    broken = tmp_path / "broken.toml"
    broken.write_text("[routing\n")
    assert main(["--config", str(broken), "--db", str(tmp_path / "none.db")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("omen whatif: ") and "Traceback" not in err


def test_the_store_path_comes_from_the_config(
    setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = setup  # its server.database is omen.db beside it: the seeded store
    assert main(["--config", str(config), "--since", "1h", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["requests"] == 4


def test_price_accepts_one_number_for_both_and_a_whole_provider() -> None:
    assert parse_price("ollama.*=0.1") == (("ollama", "*"), (0.1, 0.1))
    assert parse_price("openai.gpt-4.1=0.002/$0.008") == (("openai", "gpt-4.1"), (0.002, 0.008))


def test_every_option_has_help_and_omens_own_config_option_is_kept() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", help="omen's own")  # as cli._command adds it
    add_arguments(parser)
    for action in parser._actions:
        assert action.help, action.option_strings
    assert parser.parse_args(["--config", "x.toml"]).config == "x.toml"
