"""Items: the tutorial's listing and reading one item; changing and deleting one.

Which items a requester sees is the operation's rule in the app's auth mode (`policy.RULES`:
every item, or only your own): each handler takes `ItemOwner`, whose answer that rule decides, and
FastAPI documents just what the rule asks for. Items are rendered from their values
(`rendering.item_json`), and the reads have fast answers (`direct.py`), as the heroes' do.
"""

from typing import Any, Final

from fastapi import HTTPException, Request, Response, status

from heroapi import crud
from heroapi.db import Database, Values
from heroapi.errors import ErrorDetail
from heroapi.models import Deleted, Item, ItemUpdate
from heroapi.rendering import item_json, items_json
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
from heroapi.routes.policy import ItemOwner
from heroapi.routes.routing import Endpoint, Resource, Responses

NOT_FOUND: Responses = {
    status.HTTP_404_NOT_FOUND: {"model": ErrorDetail, "description": "Item not found"}
}


def item_not_found() -> HTTPException:
    """The answer for a missing item, and so for another's (`OWN_ITEMS`)."""
    return HTTPException(status.HTTP_404_NOT_FOUND, "Item not found")


@with_list_parameters(crud.ITEMS)
async def read_items(
    request: Request,
    rule_owner: ItemOwner,
    skip: PageStart = 0,
    limit: PageSize = DEFAULT_PAGE_SIZE,
    **choices: Any,
) -> Response:
    """List items, `limit` from `skip` or from a `cursor`; by id, or in the `order` asked
    for; only those the filters match (with `HEROAPI_AUTH_MODE=required`, your own)."""
    check_offset(request, "skip", skip)
    listed = await validated_request(
        request.scope,
        crud.ITEMS,
        choices,
        offset_param="skip",
        offset=skip,
        limit=limit,
        owner_scope=None if rule_owner is None else {"owner_id": rule_owner},
    )
    page, headers = await read_page(request.scope, listed)
    return page_response(items_json(page.rows), headers)


async def read_item(item_id: int, request: Request, owner_id: ItemOwner) -> Response:
    """Read one item (with `HEROAPI_AUTH_MODE=required`, one of your own)."""
    item = None
    if in_id_range(item_id):
        database = app_database(request.scope)
        item = await crud.get_item(database=database, item_id=item_id, owner_id=owner_id)
    return row_response(item, item_json, item_not_found, modified_at=crud.ITEM_LAST_MODIFIED)


async def update_item(
    item_id: int, item: ItemUpdate, request: Request, owner_id: ItemOwner
) -> Response:
    """Change the fields sent (`description: null` clears it); the others stay as they are."""
    updated = None
    if in_id_range(item_id):
        changes = item.model_dump(exclude_unset=True)
        updated = await crud.update_item(
            database=app_database(request.scope),
            item_id=item_id,
            changes=changes,
            owner_id=owner_id,
        )
    return row_response(updated, item_json, item_not_found)


async def delete_item(item_id: int, request: Request, owner_id: ItemOwner) -> Deleted:
    """Delete an item (with `HEROAPI_AUTH_MODE=required`, one of your own)."""
    if not in_id_range(item_id) or not await crud.delete_item(
        database=app_database(request.scope), item_id=item_id, owner_id=owner_id
    ):
        raise item_not_found()
    return Deleted(ok=True)


async def _get_item(database: Database, item_id: int) -> Values | None:
    return await crud.get_item(database=database, item_id=item_id)


# Fast answers only where anyone may read every item (`routing.add_routes`): no owner applies.
fast_read_item = fast_read_one("item_id", _get_item, item_json, modified_at=crud.ITEM_LAST_MODIFIED)
fast_read_items = FastList(crud.ITEMS, items_json, offset_param="skip")


ITEM_PATH: Final = "/items/{item_id}"
ROUTES: Final = Resource(
    "items",
    [
        Endpoint("GET", "/items/", read_items, list[Item], LIST_RESPONSES, fast=fast_read_items),
        Endpoint("GET", ITEM_PATH, read_item, Item, NOT_FOUND, fast=fast_read_item),
        Endpoint("PATCH", ITEM_PATH, update_item, Item, NOT_FOUND),
        Endpoint("DELETE", ITEM_PATH, delete_item, Deleted, NOT_FOUND),
    ],
)
