"""`ftel` imports only the module of the command given: the table of commands must say where each one is."""

from __future__ import annotations

import argparse
import importlib
import re
import subprocess
import sys

import pytest

from ftel.app.cli import COMMANDS, build_parser, command_in


@pytest.mark.parametrize("module", sorted(set(COMMANDS.values())))
def test_each_module_registers_exactly_the_commands_the_table_gives_it(module: str) -> None:
    subparsers = argparse.ArgumentParser().add_subparsers()
    importlib.import_module(module).register(subparsers)
    assert set(subparsers.choices) == {command for command, owner in COMMANDS.items() if owner == module}


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["ingest", "--worker-id", "w"], "ingest"),
        (["--config", "plant.yaml", "-v", "gateway", "probe"], "gateway"),
        (["--config=plant.yaml", "report"], "report"),
        (["-v"], None),
        (["--help"], None),
        ([], None),
    ],
)
def test_the_command_is_the_first_word_that_is_not_an_option(argv: list[str], command: str | None) -> None:
    assert command_in(argv) == command


def test_without_a_command_of_ours_the_parser_knows_every_command() -> None:
    for argv in (["--help"], ["no-such-command"]):
        listed = re.findall(r"^    (\S+)", build_parser(command_in(argv)).format_help(), re.MULTILINE)
        assert set(COMMANDS) <= set(listed)


def test_an_ingest_worker_does_not_import_the_other_commands_libraries() -> None:
    code = (
        "import sys; from ftel.app.cli import build_parser; build_parser('ingest'); "
        "print(sorted(m for m in ('asyncua', 'matplotlib', 'loadtest.run', 'gateway.cli') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
