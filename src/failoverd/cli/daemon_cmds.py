"""`failoverd run` and `failoverd witness`: the long-running processes."""

import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import click

from failoverd.api import ApiServerError
from failoverd.cli.main import cli
from failoverd.config.errors import ConfigError
from failoverd.store import StoreError

Starter = Callable[[Path, Callable[[str], logging.Logger]], Coroutine[Any, Any, int]]


def _logging(level: str) -> logging.Logger:
    logging.basicConfig(
        stream=sys.stderr,
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return logging.getLogger("failoverd")


def _serve(command: str, config_path: Path, build: Starter) -> None:
    """Build the daemon (exit 2 on a bad config or state), then run it (exit 1 if it cannot)."""
    try:
        main = build(config_path, _logging)
    except (ConfigError, StoreError) as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    try:
        code = asyncio.run(main)
    except (OSError, ApiServerError) as exc:
        click.echo(f"failoverd {command}: {exc}", err=True)
        sys.exit(1)
    sys.exit(code)


def _config_option(envvar: str, default: str) -> Callable[[Callable[..., None]], Any]:
    return click.option(
        "-c",
        "--config",
        "config_path",
        type=click.Path(path_type=Path),
        envvar=envvar,
        default=Path(default),
        show_default=True,
        help="The configuration file (TOML).",
    )


def _node(config_path: Path, logs: Callable[[str], logging.Logger]) -> Coroutine[Any, Any, int]:
    from failoverd.config.load import load_node_config  # noqa: PLC0415 (keeps --help fast)
    from failoverd.runtime.daemon import NodeDaemon  # noqa: PLC0415

    cfg = load_node_config(config_path)
    return NodeDaemon(config_path, cfg, logs(cfg.log.level)).run()


def _witness(config_path: Path, logs: Callable[[str], logging.Logger]) -> Coroutine[Any, Any, int]:
    from failoverd.config.load import load_witness_config  # noqa: PLC0415
    from failoverd.runtime.witnessd import WitnessDaemon  # noqa: PLC0415

    cfg = load_witness_config(config_path)
    return WitnessDaemon(cfg, logs(cfg.log.level)).run()


@cli.command()
@_config_option("FAILOVERD_CONFIG", "/etc/failoverd/failoverd.toml")
def run(config_path: Path) -> None:
    """Run the node daemon in the foreground, logging to stderr.

    It watches its peer, runs the health checks, and starts or stops the
    service with the configured scripts when the safety mode allows it.
    SIGTERM stops the daemon but leaves the service as it is; SIGHUP reloads
    a validated configuration (a bad one is refused and the old one kept).
    """
    _serve("run", config_path, _node)


@cli.command()
@_config_option("FAILOVERD_WITNESS_CONFIG", "/etc/failoverd/witness.toml")
def witness(config_path: Path) -> None:
    """Run a witness: the third vote for safety = "witness".

    Put it on a third host (the load balancer's, say). A node is active only
    while a majority of {primary, standby, witness} grants it a lease; the
    witness also tells a standby whether it still hears the primary. After a
    restart it grants nothing for one full lease time.
    """
    _serve("witness", config_path, _witness)
