"""The `failoverd` command."""

from failoverd.cli import config_cmds, daemon_cmds, ops_cmds  # noqa: F401  (register commands)
from failoverd.cli.main import main

__all__ = ["main"]
