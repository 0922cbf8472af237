"""The `heroapi` command: serve, db upgrade | downgrade | current | check,
users create-superuser | unlock, version (each in `heroapi.cli`)."""

import typer

from heroapi import __version__
from heroapi.cli.db import db_cli
from heroapi.cli.serve import serve
from heroapi.cli.users import users_cli

cli = typer.Typer(help="heroapi: the Hero and Users/Items API.", no_args_is_help=True)
cli.command()(serve)
cli.add_typer(db_cli, name="db")
cli.add_typer(users_cli, name="users")


@cli.command()
def version() -> None:
    """Print heroapi's version."""
    typer.echo(__version__)


def main() -> None:
    cli(prog_name="heroapi")


if __name__ == "__main__":
    main()
