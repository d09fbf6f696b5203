"""Entry point of the `failoverd` command; subcommands register themselves on `cli`."""

import click


@click.group()
def cli() -> None:
    """failoverd: keeps one service active on exactly one server."""


def main() -> None:
    cli()
