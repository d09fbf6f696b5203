"""The `failoverd` command."""

import failoverd.cli.docs_cmds  # noqa: F401  (registers states)
from failoverd.cli import config_cmds, daemon_cmds, demo_cmd, ops_cmds  # noqa: F401  (register commands)
from failoverd.cli import selftest_cmd as selftest_cmd  # registers `failoverd selftest`
from failoverd.cli.main import main

__all__ = ["main"]
