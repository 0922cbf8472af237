"""What runs on a connection: a statement compiled for one dialect (`Statement`), and the verbs
that say what to make of its answer (`Verb`: a row, every row, their values, what a write did).
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar, cast

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

T = TypeVar("T")

Row = dict[str, Any]
# A row's values in the statement's column order, as the driver gives them (a tuple, or an
# asyncpg Record): what hot paths render straight to JSON, without a dict per row.
Values = Sequence[Any]
Params = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Statement:
    """A statement compiled for one dialect: its SQL, the order of its positional parameters and
    the names of its result columns.

    `literals` holds the values written into the statement itself (`.values(age=0)`); the
    caller's parameters fill the named `bindparam()`s and may override a literal.
    """

    sql: str
    names: tuple[str, ...]
    literals: Mapping[str, Any] = field(default_factory=dict)
    columns: tuple[str, ...] = ()

    def args(self, params: Params) -> tuple[Any, ...]:
        if self.literals:
            params = {**self.literals, **params}
        return tuple([params[name] for name in self.names])


# What the verbs take: a Core statement, or one `Database.compile_for` compiled.
SQL = ClauseElement | Statement


def as_dicts(columns: tuple[str, ...], rows: Iterable[Values]) -> list[Row]:
    return [dict(zip(columns, row)) for row in rows]  # noqa: B905 (strict=True costs 40% here)


def compile_statement(clause: ClauseElement, dialect: Dialect) -> Statement:
    compiled = cast(SQLCompiler, clause.compile(dialect=dialect))
    names = tuple(compiled.positiontup or ())
    literals = {
        name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required
    }
    # What a row's values are called (SELECT or RETURNING columns; labels as given).
    columns = tuple(entry[0] for entry in compiled._result_columns)
    return Statement(str(compiled), names, literals, columns)


@dataclass(frozen=True, slots=True)
class ExecuteResult:
    rowcount: int
    lastrowid: int | None = None
    # The first row a RETURNING clause gave back, as values in its column order.
    row: Values | None = None


class Verb(Generic[T]):
    """One of the data layer's verbs, as `run(statement, params, verb)` is told it: what to make
    of the statement's answer, a `T`. Each backend's connection answers each verb its own way;
    the layers in between (the pool's retry, the replicas' routing, SQLite's lock waits) pass
    it on whole, or route by `writes`.

    A new verb is a constant here (in `VERBS` too), a method on `StatementRunner`, and an answer
    in each backend's connection (whose table of answers refuses to load without it)."""

    __slots__ = ("name", "writes")

    def __init__(self, name: str, *, writes: bool = False) -> None:
        self.name = name
        # Whether it may change data (so it goes to the primary, never to a read replica).
        self.writes = writes

    def __repr__(self) -> str:
        return f"<Verb {self.name}>"


# The first row as a dict, or None.
FETCH_ONE: Final[Verb[Row | None]] = Verb("fetch_one")
# Every row, as dicts.
FETCH_ALL: Final[Verb[list[Row]]] = Verb("fetch_all")
# The first row's values in column order, or None: no dict is built.
FETCH_VALUES: Final[Verb[Values | None]] = Verb("fetch_values")
# Every row's values in column order.
FETCH_ALL_VALUES: Final[Verb[list[Values]]] = Verb("fetch_all_values")
# Any statement: the rows it changed (and, where the driver says, the id it inserted).
EXECUTE: Final[Verb[ExecuteResult]] = Verb("execute", writes=True)
# An INSERT, UPDATE or DELETE of one row: the rows it changed, the id it inserted and, if it
# has a RETURNING clause, the row it returned.
WRITE: Final[Verb[ExecuteResult]] = Verb("write", writes=True)

# Every verb, for each backend's table of answers to be checked against.
VERBS: Final = (FETCH_ONE, FETCH_ALL, FETCH_VALUES, FETCH_ALL_VALUES, EXECUTE, WRITE)

Answer = TypeVar("Answer")


def answers_to_every_verb(
    answers: dict[Verb[Any], Answer], *, answered_before: tuple[Verb[Any], ...] = ()
) -> dict[Verb[Any], Answer]:
    """A backend's `answers`, by verb, refused at import if they leave a verb out (but those its
    `run` answers before it looks in them): a new verb cannot be forgotten silently."""
    missing = [verb.name for verb in VERBS if verb not in answers and verb not in answered_before]
    if missing:
        raise TypeError(f"no answer to the verbs {', '.join(missing)}")
    return answers
