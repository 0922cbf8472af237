"""The tutorial's Hero API: same paths, bodies, status codes and operation ids.

These are the hot paths (docs/performance.md):
- the dependency tree is flat: each handler takes `Request` (free for FastAPI) instead of a chain
  of `Depends`, which cost ~25 us per level per request. Who may write is the route's rule in
  the app's auth mode (`policy.RULES`): in `open` mode the routes carry no dependency at all.
- the routes are registered on the app itself (`install`), not through `include_router`: FastAPI
  answers an included router's requests through a wrapper that matches the path a second time
  (~10% of a `GET /heroes/{id}`).
- heroes come from `crud` as values in `HeroPublic`'s field order and are rendered to the bytes
  `HeroPublic` itself would give (`rendering.py`): FastAPI's response validation would build a
  model per row of data that the columns' types already guarantee. `response_model` still
  documents the answers.
- `GET /heroes/{id}` sends `Last-Modified` (the row's `updated_at`, set by the database), read
  in the same query as the hero.
- the reads are `DirectRoute`s (`direct.py`): a plain `GET /heroes/7` or `GET /heroes/?limit=10`
  is answered without FastAPI's per-request machinery; anything else goes through the handlers
  below, which are also what the docs describe.
"""

from collections.abc import Callable
from typing import Any, Final

from fastapi import FastAPI, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from starlette.types import Scope

from heroapi import crud, policy
from heroapi.db import Values
from heroapi.errors import ErrorDetail
from heroapi.models import ID_MAX, Deleted, HeroCreate, HeroPublic, HeroUpdate
from heroapi.policy import AuthMode
from heroapi.rendering import hero_json, heroes_json, http_date
from heroapi.routes.deps import (
    MAX_PAGE_SIZE,
    PageSize,
    PageStart,
    check_offset,
    database_in,
    database_of,
    in_id_range,
)
from heroapi.routes.direct import Answer, DirectRoute, plain_int
from heroapi.routes.list_headers import LIST_RESPONSES
from heroapi.routes.list_parameters import with_list_parameters
from heroapi.routes.lists import plain_request, read_page, validated_request

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    status.HTTP_404_NOT_FOUND: {"model": ErrorDetail, "description": "Hero not found"}
}

# Where crud.get_hero's values hold the hero's last change (Unix seconds).
_LAST_MODIFIED: Final = crud.HERO_LAST_MODIFIED
# read_heroes' parameters, for HeroesRoute.
PAGE_DEFAULTS: Final = {"offset": 0, "limit": MAX_PAGE_SIZE}
PAGE_MAXIMA: Final = {"offset": ID_MAX, "limit": MAX_PAGE_SIZE}


def hero_not_found() -> HTTPException:
    return HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="Hero not found")


def hero_response(values: Values | None) -> Response:
    """The hero as JSON, or the tutorial's 404."""
    if values is None:
        raise hero_not_found()
    return Response(hero_json(values), media_type="application/json")


def last_modified(values: Values) -> list[tuple[bytes, bytes]]:
    """The `Last-Modified` header of a hero read by `crud.get_hero`."""
    return [(b"last-modified", http_date(values[_LAST_MODIFIED]))]


async def create_hero(hero: HeroCreate, request: Request) -> Response:
    """Create a hero; the database assigns its id."""
    return hero_response(await crud.create_hero(database=database_of(request), hero=hero))


@with_list_parameters(crud.HEROES)
async def read_heroes(
    request: Request, offset: PageStart = 0, limit: PageSize = 100, **choices: Any
) -> Response:
    """List heroes, `limit` (at most 100) from `offset` or from a `cursor`; by id, or in the
    `order` asked for; only those the filters match."""
    check_offset(request, "offset", offset)
    listed = await validated_request(
        request.scope, crud.HEROES, choices, offset_param="offset", offset=offset, limit=limit
    )
    page, headers = await read_page(request.scope, listed)
    response = Response(heroes_json(page.rows), media_type="application/json")
    response.raw_headers.extend(headers)
    return response


async def read_hero(hero_id: int, request: Request) -> Response:
    """Read one hero."""
    # Ids no column can hold (0, negative, past 2^63-1) belong to no hero: 404, no query.
    if not in_id_range(hero_id):
        raise hero_not_found()
    values = await crud.get_hero(database=database_of(request), hero_id=hero_id)
    response = hero_response(values)
    assert values is not None  # hero_response raised the 404 otherwise
    response.raw_headers.extend(last_modified(values))
    return response


async def update_hero(hero_id: int, hero: HeroUpdate, request: Request) -> Response:
    """Change the fields sent (`age: null` clears the age); the others stay as they are."""
    if not in_id_range(hero_id):
        raise hero_not_found()
    changes = hero.model_dump(exclude_unset=True)
    database = database_of(request)
    return hero_response(
        await crud.update_hero(database=database, hero_id=hero_id, changes=changes)
    )


async def delete_hero(hero_id: int, request: Request) -> Deleted:
    """Delete a hero."""
    if not in_id_range(hero_id) or not await crud.delete_hero(
        database=database_of(request), hero_id=hero_id
    ):
        raise hero_not_found()
    return Deleted(ok=True)


class HeroRoute(DirectRoute):
    """`GET /heroes/{hero_id}` for an id in plain digits of a hero that exists."""

    async def answer(self, scope: Scope) -> Answer | None:
        hero_id = plain_int(scope["path_params"]["hero_id"], ID_MAX)
        if hero_id is None or not in_id_range(hero_id):
            return None
        values = await crud.get_hero(database=database_in(scope), hero_id=hero_id)
        return None if values is None else (hero_json(values), last_modified(values))


class HeroesRoute(DirectRoute):
    """`GET /heroes/` with no query, or plain `offset` and `limit` in range, or a `cursor` and
    plain `limit` (the `next` and `prev` links of the tutorial's own order); and no `Prefer`."""

    async def answer(self, scope: Scope) -> Answer | None:
        try:
            listed = await plain_request(
                scope,
                crud.HEROES,
                offset_param="offset",
                defaults=PAGE_DEFAULTS,
                maxima=PAGE_MAXIMA,
            )
        except RequestValidationError:  # a cursor with an offset, or not this list's: FastAPI's 422
            return None
        if listed is None:
            return None
        page, headers = await read_page(scope, listed)
        return heroes_json(page.rows), headers


def install(app: FastAPI, *, mode: AuthMode) -> None:
    """The Hero API's routes, on `app`, each guarded by its rule in `mode` (`policy.RULES`)."""

    def add(method: str, path: str, endpoint: Callable[..., Any], **options: Any) -> None:
        # An ANYONE rule gives no dependency, and a DirectRoute refuses any.
        guards = policy.dependencies(mode, method, path)
        app.router.add_api_route(
            path, endpoint, methods=[method], dependencies=guards, tags=["heroes"], **options
        )

    one = "/heroes/{hero_id}"
    add("POST", "/heroes/", create_hero, response_model=HeroPublic)
    add(
        "GET",
        "/heroes/",
        read_heroes,
        response_model=list[HeroPublic],
        responses=LIST_RESPONSES,
        route_class_override=HeroesRoute,
    )
    add(
        "GET",
        one,
        read_hero,
        response_model=HeroPublic,
        responses=NOT_FOUND,
        route_class_override=HeroRoute,
    )
    add("PATCH", one, update_hero, response_model=HeroPublic, responses=NOT_FOUND)
    add("DELETE", one, delete_hero, response_model=Deleted, responses=NOT_FOUND)
