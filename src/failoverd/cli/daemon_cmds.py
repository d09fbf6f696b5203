"""`failoverd run` and `failoverd witness`: the long-running processes."""

import asyncio
import logging
import sys
from pathlib import Path

import click

from failoverd.api import ApiServerError
from failoverd.cli.main import cli
from failoverd.config.errors import ConfigError
from failoverd.config.load import load_node_config, load_witness_config
from failoverd.store import StoreError

CONFIG_HELP = "The configuration file (TOML)."


def _logging(level: str) -> logging.Logger:
    logging.basicConfig(
        stream=sys.stderr,
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return logging.getLogger("failoverd")


def _fail(message: str, code: int) -> None:
    click.echo(message, err=True)
    sys.exit(code)


@cli.command()
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    envvar="FAILOVERD_CONFIG",
    default=Path("/etc/failoverd/failoverd.toml"),
    show_default=True,
    help=CONFIG_HELP,
)
def run(config_path: Path) -> None:
    """Run the node daemon in the foreground, logging to stderr.

    It watches its peer, runs the health checks, and starts or stops the
    service with the configured scripts when the safety mode allows it.
    SIGTERM stops the daemon but leaves the service as it is; SIGHUP reloads
    a validated configuration (a bad one is refused and the old one kept).
    """
    from failoverd.runtime.daemon import NodeDaemon  # noqa: PLC0415 (keeps --help fast)

    try:
        cfg = load_node_config(config_path)
        log = _logging(cfg.log.level)
        daemon = NodeDaemon(config_path, cfg, log)
    except (ConfigError, StoreError) as exc:
        _fail(str(exc), 2)
        return
    try:
        code = asyncio.run(daemon.run())
    except (OSError, ApiServerError) as exc:
        _fail(f"failoverd run: {exc}", 1)
        return
    sys.exit(code)


@cli.command()
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    envvar="FAILOVERD_WITNESS_CONFIG",
    default=Path("/etc/failoverd/witness.toml"),
    show_default=True,
    help=CONFIG_HELP,
)
def witness(config_path: Path) -> None:
    """Run a witness: the third vote for safety = "witness".

    Put it on a third host (the load balancer's, say). A node is active only
    while a majority of {primary, standby, witness} grants it a lease; the
    witness also tells a standby whether it still hears the primary. After a
    restart it grants nothing for one full lease time.
    """
    from failoverd.runtime.witnessd import WitnessDaemon  # noqa: PLC0415

    try:
        cfg = load_witness_config(config_path)
        log = _logging(cfg.log.level)
        daemon = WitnessDaemon(cfg, log)
    except (ConfigError, StoreError) as exc:
        _fail(str(exc), 2)
        return
    try:
        code = asyncio.run(daemon.run())
    except (OSError, ApiServerError) as exc:
        _fail(f"failoverd witness: {exc}", 1)
        return
    sys.exit(code)
