"""`omen import-boltfile`: every Boltfile in the seed document imports to [containers] tables
that Omen's own config check accepts, key by key, with a note for whatever is left behind."""

import argparse
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from omen.boltfile import BoltfileError, add_arguments, import_boltfile, run
from omen.config import LoadedConfig, Problem, check_config
from omen.config.load import _BOLTFILE_CLIENT_KEYS

REPO = Path(__file__).resolve().parents[2]
# CI has ../shared beside the checkout; a plain clone may not (tests/integration/test_daemon.py).
SEED_DOC = REPO.parent / "shared" / "seed" / "OMEN_BOLT_INTEGRATION.md"
SEED_BOLTFILES = 14  # the ```toml blocks of the seed that hold [services.…] tables

# Verbatim from the seed, "Configuration Mapping" (the Boltfile half).
SEED_MAPPING = """\
[services.app.omen]
enabled = true
router_strategy = "cost-optimized"    # cost-optimized, latency-first, balanced
prefer_local = true                   # Prefer Ollama when possible
budget_limit = "10.00"                # USD per day
allowed_providers = ["ollama", "anthropic", "openai"]

[services.app.omen.quotas]
max_requests_per_hour = 1000
max_tokens_per_day = 500000
max_cost_per_day = "10.00"

[services.app.omen.routing]
intents.code = "ollama"               # Code tasks → local
intents.reasoning = "anthropic"       # Reasoning → Claude
intents.vision = "openai"             # Vision → GPT-4V
"""

# Verbatim from the seed, "Gaming Container Example".
SEED_GAMING = """\
[services.game]
image = "bolt://steam:latest"

[services.game.gaming.gpu]
runtime = "nvbind"
isolation_level = "exclusive"

[services.game.mcp]
enabled = true
tools = ["game_state", "mod_loader", "performance_advisor"]

[services.game.omen]
enabled = true
router_strategy = "latency-first"       # Ultra-low latency for gaming
allowed_providers = ["ollama"]          # Local only (no network latency)
max_requests_per_hour = 5000            # High volume for real-time assist

[services.game.omen.routing]
intents.game_assist = "ollama"
intents.mod_recommend = "ollama"
intents.performance = "ollama"
"""

# Verbatim from the seed, "3. Hybrid (Local + Shared)".
SEED_HYBRID = """\
[services.app]
image = "my-app:latest"

[services.app-ollama]
image = "ollama/ollama:latest"
network_mode = "container:app"

[services.app.omen]
enabled = true
endpoint = "http://shared-omen:8080"
prefer_local = true
local_endpoint = "http://localhost:11434"
"""

HYBRID_APP = {"enabled": True, "prefer_local": True, "local_endpoint": "http://localhost:11434"}
LOCALHOST_NOTE = (
    "services.app.omen.local_endpoint: imported, but Omen calls this box itself and localhost "
    "is Omen's own host; unless Omen runs beside the box, write an address Omen can reach"
)


def seed_boltfiles() -> list[tuple[str, str]]:
    """(heading above it, text) of each ```toml block in the seed that has [services.…]."""
    heading, found = "", []
    blocks = re.finditer(r"^(#+ [^\n]*)$|^```(\w*)\n(.*?)^```", SEED_DOC.read_text(), re.M | re.S)
    for match in blocks:  # whole fenced blocks, so a `# comment` in one is not a heading
        if match.group(1):
            heading = match.group(1).lstrip("# ").strip()
        elif match.group(2) == "toml" and "[services." in match.group(3):
            found.append((heading, match.group(3)))
    return found


def seed_params() -> list[Any]:
    if not SEED_DOC.exists():
        reason = f"the seed document is not beside this checkout ({SEED_DOC})"
        return [pytest.param("", marks=pytest.mark.skip(reason=reason), id="no-seed")]
    return [pytest.param(text, id=heading) for heading, text in seed_boltfiles()]


def check_imported(tmp_path: Path, boltfile: str) -> tuple[list[Problem], LoadedConfig | None]:
    """The import appended to a minimal omen.toml with a provider for every name it uses,
    through the same check as `omen config check` (every env: variable it names set)."""
    tables, _ = import_boltfile(boltfile)
    containers = tomllib.loads(tables).get("containers", {})
    names = {"ollama"}
    for container in containers.values():
        names.update(container.get("allowed_providers", []))
        names.update(
            r["provider"] for r in container.get("routing", {}).get("intents", {}).values()
        )
    providers = "".join(
        # The shared box as the seed's compose file has it (OMEN_OLLAMA_ENDPOINTS).
        f'[providers.{name}]\ntype = "ollama"\nendpoints = ["http://ollama:11434"]\n'
        if name == "ollama"
        else f'[providers.{name}]\ntype = "openai"\napi_key = "sk-test-{name}"\n'
        for name in sorted(names)
    )
    path = tmp_path / "omen.toml"
    path.write_text('[server]\nbind = "127.0.0.1:8080"\n' + providers + tables)
    env = {name: f"secret-{name}" for name in re.findall(r'"env:(\w+)"', tables)}
    return check_config(path, env)


# --- every Boltfile in the seed -------------------------------------------------------------


def test_the_seed_holds_the_boltfiles_these_tests_expect() -> None:
    if not SEED_DOC.exists():
        pytest.skip(f"the seed document is not beside this checkout ({SEED_DOC})")
    texts = [text for _, text in seed_boltfiles()]
    assert len(texts) == SEED_BOLTFILES
    for copy in (SEED_MAPPING, SEED_GAMING, SEED_HYBRID):
        assert copy in texts


@pytest.mark.parametrize("boltfile", seed_params())
def test_every_seed_boltfile_imports_to_a_config_omen_accepts(
    boltfile: str, tmp_path: Path
) -> None:
    problems, loaded = check_imported(tmp_path, boltfile)
    _, notes = import_boltfile(boltfile)

    assert loaded is not None, problems
    # Canonical tables: nothing the loader has to move, warn about or ignore.
    assert [str(p) for p in problems if p.path.startswith("containers")] == []
    assert [note for note in notes if "unknown key" in note] == []
    blocks = set(re.findall(r"^\[services\.([\w-]+)\.omen[\].]", boltfile, re.M))
    assert set(loaded.config.containers) == blocks


def test_seed_mapping_example_maps_key_by_key(tmp_path: Path) -> None:
    tables, notes = import_boltfile(SEED_MAPPING)
    problems, loaded = check_imported(tmp_path, SEED_MAPPING)

    assert tomllib.loads(tables) == {
        "containers": {
            "app": {
                "enabled": True,
                "router_strategy": "cost-optimized",
                "prefer_local": True,
                "allowed_providers": ["ollama", "anthropic", "openai"],
                "budget": {"daily": "10.00"},
                "quotas": {
                    "max_requests_per_hour": 1000,
                    "max_tokens_per_day": 500000,
                    "max_cost_per_day": "10.00",
                },
                "routing": {
                    "intents": {
                        "code": {"provider": "ollama"},
                        "reasoning": {"provider": "anthropic"},
                        "vision": {"provider": "openai"},
                    }
                },
            }
        }
    }
    assert notes == []
    assert loaded is not None, problems
    app = loaded.config.containers["app"]
    assert app.budget.daily == 10.0 and app.quotas.max_cost_per_day == 10.0
    assert app.quotas.max_requests_per_hour == 1000 and app.quotas.max_tokens_per_day == 500000
    assert app.router_strategy == "cost-optimized" and app.prefer_local is True
    assert {i: r.provider for i, r in app.routing.intents.items()} == {
        "code": "ollama",
        "reasoning": "anthropic",
        "vision": "openai",
    }


def test_seed_gaming_example_moves_its_quota_key_into_quotas(tmp_path: Path) -> None:
    tables, notes = import_boltfile(SEED_GAMING)
    problems, loaded = check_imported(tmp_path, SEED_GAMING)

    game = tomllib.loads(tables)["containers"]["game"]
    assert game == {
        "enabled": True,
        "router_strategy": "latency-first",
        "allowed_providers": ["ollama"],
        "quotas": {"max_requests_per_hour": 5000},
        "routing": {
            "intents": {
                "game_assist": {"provider": "ollama"},
                "mod_recommend": {"provider": "ollama"},
                "performance": {"provider": "ollama"},
            }
        },
    }
    assert notes == []  # gaming and mcp are Bolt's tables, not the omen block's keys
    assert loaded is not None, problems
    assert loaded.config.containers["game"].quotas.max_requests_per_hour == 5000


def test_seed_hybrid_example_carries_local_endpoint_and_leaves_out_endpoint(
    tmp_path: Path,
) -> None:
    tables, notes = import_boltfile(SEED_HYBRID)

    assert tomllib.loads(tables) == {"containers": {"app": HYBRID_APP}}
    assert notes == [
        "services.app.omen.endpoint: where Bolt finds Omen, a setting for Bolt's client; "
        "not imported",
        LOCALHOST_NOTE,
        "services.app-ollama: no [services.app-ollama.omen] block, skipped",
    ]
    problems, loaded = check_imported(tmp_path, SEED_HYBRID)
    assert loaded is not None and problems == []
    endpoints = loaded.config.providers["ollama"].endpoints
    assert [(e.name, e.container) for e in endpoints] == [
        ("ollama:11434", None),
        ("local-app", "app"),
    ]


def test_a_local_endpoint_omen_can_reach_is_imported_without_a_note() -> None:
    text = '[services.app.omen]\nlocal_endpoint = "http://app-gpu:11434"\n'

    tables, notes = import_boltfile(text)

    assert tomllib.loads(tables)["containers"]["app"] == {"local_endpoint": "http://app-gpu:11434"}
    assert notes == []


def test_every_key_the_loader_calls_a_bolt_setting_gets_a_note_of_its_own() -> None:
    block = "".join(f'{key} = "http://x:1"\n' for key in _BOLTFILE_CLIENT_KEYS)
    _, notes = import_boltfile("[services.app.omen]\n" + block)

    assert len(notes) == len(_BOLTFILE_CLIENT_KEYS)
    assert not [note for note in notes if "unknown key" in note]


# --- mapping rules --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "imported"),
    [
        ("${APP_KEY}", "env:APP_KEY"),
        ("$APP_KEY", "env:APP_KEY"),
        ("env:APP_KEY", "env:APP_KEY"),
    ],
)
def test_environment_references_become_omens_env_form(written: str, imported: str) -> None:
    tables, notes = import_boltfile(f'[services.app.omen]\napi_key = "{written}"\n')

    assert tomllib.loads(tables)["containers"]["app"]["api_key"] == imported
    assert notes == []


def test_a_key_written_in_the_boltfile_is_copied_with_a_note() -> None:
    tables, notes = import_boltfile('[services.app.omen]\napi_key = "sk-literal"\n')

    assert tomllib.loads(tables)["containers"]["app"]["api_key"] == "sk-literal"
    assert notes == [
        "services.app.omen.api_key: a key written in the file; better env:NAME, read at startup"
    ]


def test_a_reference_inside_a_value_is_copied_with_a_note() -> None:
    text = '[services.app.omen.budget]\nalert_webhook = "https://${HOOK_HOST}/omen"\n'
    tables, notes = import_boltfile(text)

    assert tomllib.loads(tables)["containers"]["app"]["budget"] == {
        "alert_webhook": "https://${HOOK_HOST}/omen"
    }
    assert len(notes) == 1 and notes[0].startswith("services.app.omen.budget.alert_webhook:")


def test_budget_and_quota_tables_win_over_the_shorthand_on_the_block() -> None:
    text = """
[services.app.omen]
budget_limit = "10.00"
max_tokens_per_day = 7
[services.app.omen.budget]
daily = 5
[services.app.omen.quotas]
max_tokens_per_day = 9
"""
    tables, notes = import_boltfile(text)

    app = tomllib.loads(tables)["containers"]["app"]
    assert app == {"budget": {"daily": 5}, "quotas": {"max_tokens_per_day": 9}}
    assert notes == [
        "services.app.omen.budget_limit: ignored, budget.daily is also set",
        "services.app.omen.max_tokens_per_day: ignored, quotas.max_tokens_per_day is also set",
    ]


def test_unknown_keys_are_named_never_dropped_silently() -> None:
    text = """
[services.app.omen]
budget_limt = 3
[services.app.omen.rate_limit]
requests_per_second = 10
burst_size = 20
[services.app.omen.routing]
strategy = "balanced"
intents.code = { provider = "ollama", modle = "x" }
intents.vision = 3
"""
    tables, notes = import_boltfile(text)

    assert tomllib.loads(tables)["containers"]["app"] == {
        "rate_limit": {"requests_per_second": 10},
        "routing": {"intents": {"code": {"provider": "ollama"}}},
    }
    assert notes == [
        "services.app.omen.budget_limt: unknown key, not imported (did you mean 'budget_limit'?)",
        "services.app.omen.rate_limit.burst_size: unknown key, not imported "
        "(did you mean 'burst'?)",
        "services.app.omen.routing.strategy: unknown key, not imported",
        "services.app.omen.routing.intents.code.modle: unknown key, not imported "
        "(did you mean 'model'?)",
        "services.app.omen.routing.intents.vision: must be a provider name or a table, "
        "not imported",
    ]


def test_services_without_an_omen_block_are_skipped_with_a_note() -> None:
    text = '[services.db]\nimage = "postgres"\n[services.cache]\nomen = "yes"\n'
    tables, notes = import_boltfile(text)

    assert "containers" not in tomllib.loads(tables)
    assert notes == [
        "services.cache.omen: must be a table, skipped",
        "services.db: no [services.db.omen] block, skipped",
    ]


def test_bolts_own_omen_table_is_not_imported_but_noted() -> None:
    text = '[omen]\nendpoint = "http://localhost:8080"\n[services.app.omen]\nenabled = true\n'
    tables, notes = import_boltfile(text)

    assert tomllib.loads(tables) == {"containers": {"app": {"enabled": True}}}
    assert len(notes) == 1 and notes[0].startswith("omen: ")


def test_output_is_sorted_and_names_its_source() -> None:
    b_first = "[services.b.omen]\nprefer_local = true\nenabled = true\n"
    one = b_first + "[services.a.omen]\nenabled = false\n"
    two = "[services.a.omen]\nenabled = false\n[services.b.omen]\nenabled = true\n"
    two += "prefer_local = true\n"

    first, _ = import_boltfile(one, "deploy/Boltfile.toml")
    second, _ = import_boltfile(two, "deploy/Boltfile.toml")

    assert first == second
    assert first.splitlines()[0].startswith("# ")
    assert "deploy/Boltfile.toml" in first.splitlines()[0]
    assert first.index("[containers.a]") < first.index("[containers.b]")
    b = first[first.index("[containers.b]") :]
    assert b.index("enabled") < b.index("prefer_local")


def test_odd_names_and_strings_survive_the_round_trip() -> None:
    text = r"""
[services."my.app".omen]
api_key = "env:KEY"
allowed_providers = ["quote\"d", "back\\slash", "tab\there", "new\nline", "bell\u0007", "ü"]
quality_threshold = 0.85
[services."my.app".omen.routing.intents]
"two words" = { provider = "ollama", model = "m\"x", strict = true }
[services."ünï"]
omen = {}
"""
    tables, notes = import_boltfile(text, "evil\nname.toml")

    assert notes == []
    assert (
        tables.splitlines()[0]
        == "# [containers] imported by `omen import-boltfile` from evil?name.toml"
    )
    assert tomllib.loads(tables) == {
        "containers": {
            "my.app": {
                "api_key": "env:KEY",
                "allowed_providers": [
                    'quote"d',
                    "back\\slash",
                    "tab\there",
                    "new\nline",
                    "bell\u0007",
                    "ü",
                ],
                "quality_threshold": 0.85,
                "routing": {
                    "intents": {"two words": {"provider": "ollama", "model": 'm"x', "strict": True}}
                },
            },
            "ünï": {},
        }
    }


def test_invalid_toml_and_non_table_services_are_errors() -> None:
    with pytest.raises(BoltfileError, match="not valid TOML"):
        import_boltfile("[services.app.omen\n")
    with pytest.raises(BoltfileError, match="services: must be"):
        import_boltfile('services = "app"\n')


# --- the command ----------------------------------------------------------------------------


def command(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="omen import-boltfile")
    add_arguments(parser)
    return run(parser.parse_args(argv))


def test_run_prints_tables_on_stdout_and_notes_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    boltfile = tmp_path / "Boltfile.toml"
    boltfile.write_text(SEED_HYBRID)

    assert command(str(boltfile)) == 0

    out, err = capsys.readouterr()
    assert tomllib.loads(out) == {"containers": {"app": HYBRID_APP}}
    assert err.splitlines() == [
        "note: services.app.omen.endpoint: where Bolt finds Omen, a setting for Bolt's client; "
        "not imported",
        f"note: {LOCALHOST_NOTE}",
        "note: services.app-ollama: no [services.app-ollama.omen] block, skipped",
    ]


def test_run_writes_out_and_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    boltfile = tmp_path / "Boltfile.toml"
    boltfile.write_text(SEED_MAPPING)
    out = tmp_path / "containers.toml"

    assert command(str(boltfile), "--out", str(out)) == 0
    written = out.read_text()
    assert tomllib.loads(written)["containers"]["app"]["budget"] == {"daily": "10.00"}
    assert capsys.readouterr() == ("", "")

    out.write_text("keep me\n")
    assert command(str(boltfile), "--out", str(out)) == 1
    assert out.read_text() == "keep me\n"
    assert capsys.readouterr().err == (
        f"omen import-boltfile: --out {out}: exists; add --force to overwrite it\n"
    )

    assert command(str(boltfile), "--out", str(out), "--force") == 0
    assert out.read_text() == written


@pytest.mark.parametrize(
    ("setup", "argv", "message"),
    [
        ("", ["{tmp}/missing.toml"], "{tmp}/missing.toml: no such file"),
        ("", ["{tmp}"], "{tmp}: is a directory, not a Boltfile"),
        ("[services.app.omen\n", ["{tmp}/Boltfile"], "{tmp}/Boltfile: not valid TOML: "),
        ("\xff", ["{tmp}/Boltfile"], "{tmp}/Boltfile: not UTF-8 text"),
        ("x = 1\n", ["{tmp}/Boltfile", "--out", "{tmp}"], "--out {tmp}: is a directory"),
        (
            "x = 1\n",
            ["{tmp}/Boltfile", "--out", "{tmp}/Boltfile", "--force"],
            "--out {tmp}/Boltfile: is the Boltfile being read",
        ),
        (
            "x = 1\n",
            ["{tmp}/Boltfile", "--out", "{tmp}/no/such/dir/out.toml"],
            "--out {tmp}/no/such/dir/out.toml: cannot write: ",
        ),
    ],
    ids=["missing", "directory", "invalid-toml", "not-utf8", "out-dir", "out-is-input", "no-dir"],
)
def test_a_file_problem_is_one_line_and_exit_1(
    setup: str,
    argv: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if setup:
        (tmp_path / "Boltfile").write_bytes(setup.encode("latin-1"))

    assert command(*[arg.format(tmp=tmp_path) for arg in argv]) == 1

    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith(f"omen import-boltfile: {message.format(tmp=tmp_path)}")
    if setup:
        assert (tmp_path / "Boltfile").read_bytes() == setup.encode("latin-1")
