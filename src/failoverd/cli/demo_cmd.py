"""`failoverd demo`: a failover and a failback on this machine, in under 30 seconds."""

import sys

import click

from failoverd.cli.main import cli


@cli.command()
@click.option(
    "--safety",
    type=click.Choice(["witness", "cooperative"]),
    default="witness",
    show_default=True,
    help="Safety mode; witness falls back to cooperative if the witness does not start.",
)
@click.option("--keep", is_flag=True, help="Keep the temporary directory (configs, logs).")
def demo(safety: str, keep: bool) -> None:
    """Run two daemons on loopback and show a failover.

    In a temporary directory: a primary and a standby (and a witness), each
    starting and stopping a small POP3 service with its scripts. The primary's
    daemon and service are killed with SIGKILL; the standby's journal shows the
    takeover step by step with the measured failover time; then the primary
    comes back and fails back. Everything is stopped and removed at the end.
    """
    from rich.console import Console  # noqa: PLC0415 (keeps --help fast)

    from failoverd.core.types import SafetyMode  # noqa: PLC0415
    from failoverd.demo.run import run_demo  # noqa: PLC0415

    sys.exit(run_demo(Console(), SafetyMode(safety), keep))
