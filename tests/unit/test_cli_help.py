"""Every `omen` command and option explains itself: a new user learns the CLI from --help."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from omen.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, str | None]]:
    """(words after `omen`, its parser, its one-line help in the parent's list), depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            summaries = {choice.dest: choice.help for choice in action._choices_actions}
            for name, child in action.choices.items():
                yield (*path, name), child, summaries.get(name)
                yield from _commands(child, (*path, name))


COMMANDS = [" ".join(words) for words, _, _ in _commands(build_parser())]


def test_the_walk_finds_every_command_of_the_spec() -> None:
    assert {"serve", "logs", "replay", "tui", "demo", "config", "config check"} <= set(COMMANDS)


def test_every_command_has_a_summary_and_a_description() -> None:
    missing = [
        " ".join(words)
        for words, parser, summary in _commands(build_parser())
        if not summary or not parser.description or not parser.description.strip()
    ]
    assert missing == []


def test_every_option_and_argument_has_help_text() -> None:
    parsers: list[tuple[tuple[str, ...], argparse.ArgumentParser]] = [(("omen",), build_parser())]
    parsers += [(("omen", *words), parser) for words, parser, _ in _commands(build_parser())]
    missing = [
        f"{' '.join(words)} {'/'.join(action.option_strings) or action.dest}"
        for words, parser in parsers
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction)
        and (not action.help or action.help == argparse.SUPPRESS)
    ]
    assert missing == []


def test_top_level_help_lists_every_command_with_its_summary() -> None:
    text = build_parser().format_help()
    for words, _, summary in _commands(build_parser()):
        if len(words) == 1:
            assert words[0] in text and summary is not None
            assert summary.split()[0] in text


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_of_every_command_exits_0(command: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "omen", *command.split(), "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: omen {command}".rstrip())
    assert done.stderr == ""
