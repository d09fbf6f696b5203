"""The `failoverd` command."""

from failoverd.cli import config_cmds  # noqa: F401  (registers check-config, import-legacy)
from failoverd.cli.main import main

__all__ = ["main"]
