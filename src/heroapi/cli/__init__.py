"""The `heroapi` command's subcommands (`heroapi.__main__` puts them together), and what they
share: settings read once, and every failure said in one line."""

from pathlib import Path
from typing import NoReturn

import typer
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from heroapi.config import DatabaseURL, Settings, get_settings


def fail(message: str) -> NoReturn:
    typer.secho(f"heroapi: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def describe(error: ValidationError, *, settings: bool = False) -> str:
    """A validation error in one line, without the values (they may be secrets)."""
    return "; ".join(
        _describe_one(item, settings=settings) for item in error.errors(include_input=False)
    )


def _describe_one(item: ErrorDetails, *, settings: bool) -> str:
    message = item["msg"].removeprefix("Value error, ")
    if not item["loc"]:  # a check across settings: its message starts with the variable
        return message
    return f"{_setting_name(item['loc']) if settings else item['loc'][-1]}: {message}"


def _setting_name(loc: tuple[int | str, ...]) -> str:
    """The environment variable a setting is read from (`database_url` is DATABASE_URL)."""
    name = ".".join(str(part) for part in loc).upper()
    if name in ("DATABASE_URL", "HEROAPI_DATABASE_URL"):
        return "DATABASE_URL"
    return name if name.startswith("HEROAPI_") else f"HEROAPI_{name}"


def load_settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as error:
        fail(f"bad setting: {describe(error, settings=True)}")


def existing(database: DatabaseURL) -> DatabaseURL:
    """`database`, if it is there: a command that only reads or reverts never creates a SQLite
    file (a mistyped path would otherwise become an empty database)."""
    if database.backend == "sqlite" and not Path(database.sqlite_path).exists():
        fail(
            f"no SQLite database at {database.sqlite_path}: nothing to read "
            "(`heroapi db upgrade` creates one)"
        )
    return database
