"""The `vpop` command: commands.py parses and dispatches; one module per command group."""

from vpop.cli.commands import main

__all__ = ["main"]
