"""`DATABASE_URL` read: which backend, and the driver heroapi runs it on."""

from dataclasses import dataclass
from typing import Literal

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

Backend = Literal["sqlite", "postgresql", "mysql"]

# The driver heroapi runs each backend on, by the names a URL may carry (`postgres://` is what
# several hosting platforms hand out; `mariadb://` is MariaDB's own spelling).
_BACKENDS: dict[str, Backend] = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
}
_DRIVERS: dict[Backend, tuple[str, ...]] = {
    "sqlite": ("pysqlite",),
    "postgresql": ("asyncpg",),
    "mysql": ("asyncmy",),
}


class DatabaseURLError(ValueError):
    """`DATABASE_URL` names a database heroapi cannot run on."""


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed `DATABASE_URL`: the backend and the SQLAlchemy URL with heroapi's driver."""

    backend: Backend
    url: URL

    @property
    def sqlite_path(self) -> str:
        """The SQLite file (only for the SQLite backend)."""
        return self.url.database or ""

    def render(self) -> str:
        """The URL with its password hidden, for messages and logs."""
        return self.url.render_as_string(hide_password=True)


def parse_database_url(raw: str) -> DatabaseURL:
    """Read a plain URL (`postgresql://user@host/db`) and pick the driver heroapi uses for it."""
    try:
        url = make_url(raw)
    except ArgumentError as error:
        raise DatabaseURLError(f"not a database URL: {raw!r}") from error
    dialect, _, driver = url.drivername.partition("+")
    backend = _BACKENDS.get(dialect)
    if backend is None:
        supported = ", ".join(f"{name}://" for name in _BACKENDS)
        raise DatabaseURLError(f"unsupported database {dialect!r}; heroapi runs on {supported}")
    drivers = _DRIVERS[backend]
    if driver and driver not in drivers:
        raise DatabaseURLError(
            f"unsupported driver {driver!r} for {backend}; use {backend}:// or "
            + " or ".join(f"{backend}+{name}://" for name in drivers)
        )
    if backend == "sqlite":
        if url.host:
            raise DatabaseURLError(
                f"sqlite://{url.host} names no file: after two slashes {url.host!r} is a host "
                f"part; a file is sqlite:///{url.host} (three slashes; four for an absolute "
                "path: sqlite:////var/lib/heroapi/heroapi.db)"
            )
        if url.database in (None, "", ":memory:") or (url.database or "").startswith("file:"):
            raise DatabaseURLError(
                "an in-memory SQLite database cannot be shared by a server's connections; "
                "give a file: sqlite:///heroapi.db"
            )
    elif not url.database:
        raise DatabaseURLError(f"the URL names no database: {url.render_as_string()}")
    return DatabaseURL(backend, url.set(drivername=f"{backend}+{drivers[0]}"))
