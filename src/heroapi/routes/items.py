"""Items: the tutorial's listing and reading one item; changing and deleting one.

Which items a requester sees is the operation's rule in the app's auth mode (`policy.RULES`:
every item, or only your own): each handler takes `ItemOwner`, whose answer that rule decides, and
FastAPI documents just what the rule asks for.
"""

from typing import Any, Final

from fastapi import HTTPException, Request, Response, status

from heroapi import crud
from heroapi.db import Row
from heroapi.errors import ErrorDetail
from heroapi.models import Deleted, Item, ItemUpdate
from heroapi.rendering import http_date
from heroapi.routes.deps import (
    DEFAULT_PAGE_SIZE,
    DatabaseDep,
    PageSize,
    PageStart,
    check_offset,
    in_id_range,
)
from heroapi.routes.list_headers import LIST_RESPONSES, add_headers
from heroapi.routes.list_parameters import with_list_parameters
from heroapi.routes.lists import read_page, validated_request
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
    response: Response,
    rule_owner: ItemOwner,
    skip: PageStart = 0,
    limit: PageSize = DEFAULT_PAGE_SIZE,
    **choices: Any,
) -> list[Row]:
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
    add_headers(response, headers)
    rows: list[Row] = page.rows
    return rows


async def read_item(
    item_id: int, database: DatabaseDep, owner_id: ItemOwner, response: Response
) -> Row:
    """Read one item (with `HEROAPI_AUTH_MODE=required`, one of your own)."""
    item = None
    if in_id_range(item_id):
        item = await crud.get_item(database=database, item_id=item_id, owner_id=owner_id)
    if item is None:
        raise item_not_found()
    response.headers["last-modified"] = http_date(item["last_modified"]).decode()
    return item


async def update_item(
    item_id: int, item: ItemUpdate, database: DatabaseDep, owner_id: ItemOwner
) -> Row:
    """Change the fields sent (`description: null` clears it); the others stay as they are."""
    updated = None
    if in_id_range(item_id):
        changes = item.model_dump(exclude_unset=True)
        updated = await crud.update_item(
            database=database, item_id=item_id, changes=changes, owner_id=owner_id
        )
    if updated is None:
        raise item_not_found()
    return updated


async def delete_item(item_id: int, database: DatabaseDep, owner_id: ItemOwner) -> Deleted:
    """Delete an item (with `HEROAPI_AUTH_MODE=required`, one of your own)."""
    if not in_id_range(item_id) or not await crud.delete_item(
        database=database, item_id=item_id, owner_id=owner_id
    ):
        raise item_not_found()
    return Deleted(ok=True)


ITEM_PATH: Final = "/items/{item_id}"
ROUTES: Final = Resource(
    "items",
    [
        Endpoint("GET", "/items/", read_items, list[Item], LIST_RESPONSES),
        Endpoint("GET", ITEM_PATH, read_item, Item, NOT_FOUND),
        Endpoint("PATCH", ITEM_PATH, update_item, Item, NOT_FOUND),
        Endpoint("DELETE", ITEM_PATH, delete_item, Deleted, NOT_FOUND),
    ],
)
