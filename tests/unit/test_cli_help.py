"""`vpop --help` names every command in a line, and every option of every command has
its help text."""

from __future__ import annotations

import argparse
from importlib import metadata

import pytest

from vpop.cli import commands as cli


def parsers(parser: argparse.ArgumentParser, path: str = "vpop"):
    """(command path, parser) of vpop and of each command and subcommand."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parsers(sub, f"{path} {name}")


def subcommands(parser: argparse.ArgumentParser) -> dict[str, str | None]:
    """name -> its one line in the parent's help."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {choice.dest: choice.help for choice in action._choices_actions}
    return {}


ALL = list(parsers(cli.build_parser()))


@pytest.mark.parametrize("path,parser", ALL, ids=[path for path, _ in ALL])
def test_every_option_and_subcommand_has_help(path, parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help != argparse.SUPPRESS, f"{path} {name} has no help"
    for name, text in subcommands(parser).items():
        assert text, f"{path} {name} has no line in {path} --help"
        assert "\n" not in text


def test_the_top_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    shown = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert f"\n    {name} " in shown, f"{name} missing from vpop --help"
    assert set(subcommands(cli.build_parser())) == set(cli.COMMANDS)


def test_version_is_the_installed_package_s(capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out == f"vpop {metadata.version('vpop')}\n"
