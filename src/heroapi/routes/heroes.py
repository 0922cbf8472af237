"""The tutorial's Hero API: same paths, bodies, status codes and operation ids.

These are the hot paths (docs/performance.md):
- the dependency tree is flat: each handler takes `Request` (free for FastAPI) instead of a chain
  of `Depends`, which cost ~25 us per level per request. Who may write is the route's rule in
  the app's auth mode (`policy.RULES`): in `open` mode the routes carry no dependency at all.
- heroes come from `crud` as values in `HeroPublic`'s field order and are rendered to the bytes
  `HeroPublic` itself would give (`rendering.py`): FastAPI's response validation would build a
  model per row of data that the columns' types already guarantee. `response_model` still
  documents the answers.
- `GET /heroes/{id}` sends `Last-Modified` (the row's `updated_at`, set by the database), read
  in the same query as the hero.
- the reads have fast answers (`direct.py`): a plain `GET /heroes/7` or `GET /heroes/?limit=10`
  is answered by `fast_read_hero` or `fast_read_heroes` without FastAPI's per-request machinery;
  anything else goes through the handlers, which are also what the docs describe.
"""

from typing import Any, Final

from fastapi import HTTPException, Request, Response, status

from heroapi import crud
from heroapi.db import Database, Values
from heroapi.errors import ErrorDetail
from heroapi.models import Deleted, HeroCreate, HeroPublic, HeroUpdate
from heroapi.rendering import hero_json, heroes_json
from heroapi.routes.deps import (
    DEFAULT_PAGE_SIZE,
    PageSize,
    PageStart,
    app_database,
    check_offset,
    in_id_range,
)
from heroapi.routes.direct import fast_read_one, row_response
from heroapi.routes.list_headers import LIST_RESPONSES
from heroapi.routes.list_parameters import with_list_parameters
from heroapi.routes.lists import FastList, page_response, read_page, validated_request
from heroapi.routes.routing import Endpoint, Resource, Responses

NOT_FOUND: Responses = {
    status.HTTP_404_NOT_FOUND: {"model": ErrorDetail, "description": "Hero not found"}
}


def hero_not_found() -> HTTPException:
    return HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="Hero not found")


def hero_response(values: Values | None) -> Response:
    """The hero as JSON, or the tutorial's 404."""
    return row_response(values, hero_json, hero_not_found)


async def create_hero(hero: HeroCreate, request: Request) -> Response:
    """Create a hero; the database assigns its id."""
    return hero_response(await crud.create_hero(database=app_database(request.scope), hero=hero))


@with_list_parameters(crud.HEROES)
async def read_heroes(
    request: Request, offset: PageStart = 0, limit: PageSize = DEFAULT_PAGE_SIZE, **choices: Any
) -> Response:
    """List heroes, `limit` (at most 100) from `offset` or from a `cursor`; by id, or in the
    `order` asked for; only those the filters match."""
    check_offset(request, "offset", offset)
    listed = await validated_request(
        request.scope, crud.HEROES, choices, offset_param="offset", offset=offset, limit=limit
    )
    page, headers = await read_page(request.scope, listed)
    return page_response(heroes_json(page.rows), headers)


async def read_hero(hero_id: int, request: Request) -> Response:
    """Read one hero."""
    # Ids no column can hold (0, negative, past 2^63-1) belong to no hero: 404, no query.
    if not in_id_range(hero_id):
        raise hero_not_found()
    values = await crud.get_hero(database=app_database(request.scope), hero_id=hero_id)
    return row_response(values, hero_json, hero_not_found, modified_at=crud.HERO_LAST_MODIFIED)


async def update_hero(hero_id: int, hero: HeroUpdate, request: Request) -> Response:
    """Change the fields sent (`age: null` clears the age); the others stay as they are."""
    if not in_id_range(hero_id):
        raise hero_not_found()
    changes = hero.model_dump(exclude_unset=True)
    database = app_database(request.scope)
    return hero_response(
        await crud.update_hero(database=database, hero_id=hero_id, changes=changes)
    )


async def delete_hero(hero_id: int, request: Request) -> Deleted:
    """Delete a hero."""
    if not in_id_range(hero_id) or not await crud.delete_hero(
        database=app_database(request.scope), hero_id=hero_id
    ):
        raise hero_not_found()
    return Deleted(ok=True)


async def _get_hero(database: Database, hero_id: int) -> Values | None:
    return await crud.get_hero(database=database, hero_id=hero_id)


fast_read_hero = fast_read_one("hero_id", _get_hero, hero_json, modified_at=crud.HERO_LAST_MODIFIED)
fast_read_heroes = FastList(crud.HEROES, heroes_json, offset_param="offset")


HERO_PATH: Final = "/heroes/{hero_id}"
# An ANYONE rule gives no dependency, and a fast answer refuses any.
ROUTES: Final = Resource(
    "heroes",
    [
        Endpoint("POST", "/heroes/", create_hero, HeroPublic),
        Endpoint(
            "GET",
            "/heroes/",
            read_heroes,
            list[HeroPublic],
            LIST_RESPONSES,
            fast=fast_read_heroes,
        ),
        Endpoint("GET", HERO_PATH, read_hero, HeroPublic, NOT_FOUND, fast=fast_read_hero),
        Endpoint("PATCH", HERO_PATH, update_hero, HeroPublic, NOT_FOUND),
        Endpoint("DELETE", HERO_PATH, delete_hero, Deleted, NOT_FOUND),
    ],
)
