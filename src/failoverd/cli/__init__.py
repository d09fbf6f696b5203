"""The `failoverd` command."""

from failoverd.cli.main import main

__all__ = ["main"]
