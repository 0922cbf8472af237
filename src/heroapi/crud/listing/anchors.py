"""Deep offset pages, for every list: read from where an earlier page started.

`OFFSET n` makes a database step over n rows on every request (100,000 rows: milliseconds of
CPU per page, on SQLite with the event loop waiting). A page by cursor never does; a page by
offset, as the tutorials page, does, so each list remembers where its deep offset pages started:
for one request's filters, owner scope and order, offset -> the sort values of the row there
(an anchor). A page at offset n, given an anchor at offset a <= n, is then the rows from that
row on, `OFFSET n - a`: a client paging on, or many asking for the same page, costs the page's
rows, not the offset's.

Anchors hold only for the state of the data they were read in: a page and its anchor are read
in one snapshot (`Database.snapshot()`), whose token changes with every write, by any process,
and forgets them all. A backend that cannot tell (MySQL) reads every page by its plain offset.
"""

import bisect
import dataclasses
import weakref
from collections.abc import Hashable
from typing import Any, Final

from heroapi.crud.listing.declaration import Listing, ListQuery, Page, Position
from heroapi.db import Database

# Below this offset, stepping over the rows costs less than the bookkeeping.
MIN_OFFSET: Final = 1000
# Anchors kept per database, over all its lists: past it, all are forgotten.
MAX_ANCHORS: Final = 1024

# One list request but for its page: list, filters, owner scope, order.
Run = tuple[Hashable, ...]


class PageAnchors:
    """The anchors of one database's lists: for each run of pages (`Run`), offset -> the sort
    values of the row at that offset, valid while the snapshot token is the one they were
    read with."""

    def __init__(self) -> None:
        self._token: Hashable | None = None
        self._offsets: dict[Run, list[int]] = {}  # each sorted
        self._keys: dict[tuple[Run, int], tuple[Any, ...]] = {}

    def find(self, token: Hashable, run: Run, offset: int) -> tuple[int, tuple[Any, ...]] | None:
        """The nearest known (offset, sort values) at or before `offset`, if the data are
        unchanged since it was learnt."""
        if token != self._token:
            self._token = token
            self._forget()
            return None
        offsets = self._offsets.get(run, [])
        index = bisect.bisect_right(offsets, offset)
        if index == 0:
            return None
        start = offsets[index - 1]
        return start, self._keys[run, start]

    def learn(self, token: Hashable, run: Run, offset: int, key: tuple[Any, ...]) -> None:
        """That the row at `offset` of `run` has the sort values `key`, in the data of `token`."""
        if token != self._token or (run, offset) in self._keys:
            return
        if len(self._keys) >= MAX_ANCHORS:
            self._forget()
        bisect.insort(self._offsets.setdefault(run, []), offset)
        self._keys[run, offset] = key

    def _forget(self) -> None:
        self._offsets.clear()
        self._keys.clear()


_anchors: "weakref.WeakKeyDictionary[Database, PageAnchors]" = weakref.WeakKeyDictionary()


def _run(listing: Listing, query: ListQuery) -> Run:
    return (
        listing.name,
        tuple(sorted(query.filters.items())),
        tuple(sorted(query.owner_scope.items())),
        query.order,
    )


def _from_anchor(query: ListQuery, start: int, key: tuple[Any, ...]) -> ListQuery:
    """`query`'s page read from the row at offset `start`, whose sort values are `key`.

    The rows from that row on are the rows strictly after one whose id is one less (one more,
    when ids go down): an order always ends with the integer id, unique, so no row lies
    between the two."""
    *values, row_id = key
    descending = query.order[-1][1]
    before_it = row_id + 1 if descending else row_id - 1
    position = Position("after", (*values, before_it))
    return dataclasses.replace(query, position=position, offset=query.offset - start)


async def fetch_page(database: Database, listing: Listing, query: ListQuery) -> Page:
    """One page of `listing` for `query`; a deep offset page read from an anchor, if there is
    one, and its own start learnt as one."""
    if query.position is not None or query.offset < MIN_OFFSET or query.limit == 0:
        return await listing.read(database, database, query)
    anchors = _anchors.setdefault(database, PageAnchors())
    async with database.snapshot() as (connection, token):
        if token is None:  # the backend cannot tell whether the data changed
            return await listing.read(database, connection, query)
        run = _run(listing, query)
        anchor = anchors.find(token, run, query.offset)
        read = query if anchor is None else _from_anchor(query, *anchor)
        page = await listing.read(database, connection, read)
        if page.rows:
            anchors.learn(token, run, query.offset, page.first_key)
        return page
