"""`failoverd check-config` and `failoverd import-legacy`.

Both exit 2 with a single `FILE:LINE: what is wrong and how to fix it` line on
stderr for a bad file (like `perl -cw` did for the old configuration), and
print warnings on stderr, so that stdout stays the summary, JSON or TOML.
"""

import json
import sys
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console

from failoverd.cli.main import cli
from failoverd.config.errors import ConfigError, ConfigWarning
from failoverd.config.legacy import import_legacy
from failoverd.config.load import load_config, load_witness_config, read_text
from failoverd.config.schema import NodeConfig
from failoverd.config.summary import node_summary, witness_summary
from failoverd.core.types import Preference

BAD_FILE = 2


def _warn(warning: ConfigWarning) -> None:
    click.echo(str(warning), err=True)


def _fail(error: ConfigError) -> NoReturn:
    click.echo(str(error), err=True)
    sys.exit(BAD_FILE)


@cli.command("check-config", short_help="Check a configuration file and summarise it.")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the effective configuration, defaults filled in and paths resolved, as JSON "
    "(secret and password files by path only) instead of the summary.",
)
@click.option(
    "--witness",
    is_flag=True,
    help="FILE is a witness's configuration. Without it a file with a [witness] table and "
    "no [node] is taken to be one.",
)
def check_config(file: Path, as_json: bool, witness: bool) -> None:
    """Check a configuration FILE and say what it makes the node do.

    Prints who this node and its peer are, the safety mode in force and what
    it guarantees, the checks, the scripts, the timers and the worst-case time
    from a primary failure to the standby being active. Exits 0 when the file
    is usable, 2 with one FILE:LINE: message when it is not; warnings go to
    stderr.
    """
    try:
        cfg = load_witness_config(file) if witness else load_config(file, on_warning=_warn)
    except ConfigError as e:
        _fail(e)
    if as_json:
        click.echo(json.dumps(cfg.model_dump(mode="json"), indent=2))
        return
    summary = node_summary(cfg) if isinstance(cfg, NodeConfig) else witness_summary(cfg)
    Console(highlight=False).print(summary)


@cli.command("import-legacy", short_help="Convert the old Perl failover_config.txt to TOML.")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--role",
    type=click.Choice([p.value for p in Preference]),
    required=True,
    help="Which server the new file is for: primary (the seed's master, CFG 1) or standby "
    "(the slave, CFG 2).",
)
def import_legacy_cmd(file: Path, role: str) -> None:
    """Convert the old CPMS failover_config.txt FILE to a failoverd TOML configuration.

    The Perl file is read, never run. The TOML goes to stdout (redirect it to
    e.g. /etc/failoverd/failoverd.toml), warnings to stderr. RLOGIN_USER and
    RLOGIN_PASS are dropped: create the shared secret file the output names,
    then run `failoverd check-config` on the result.
    """
    try:
        result = import_legacy(read_text(file), Preference(role), source=str(file))
    except ConfigError as e:
        _fail(e)
    for warning in result.warnings:
        _warn(warning)
    click.echo(result.toml_text, nl=False)
