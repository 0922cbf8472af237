"""Items: the tutorial's listing, and reading one item.

Which items a requester sees is the operation's rule in the app's auth mode (`policy.RULES`:
every item, or only your own), so the handlers are made for that mode, in `router()`: each takes
its rule's `policy.item_owner`, and FastAPI documents just what that asks for.
"""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Response, status

from heroapi import crud, policy
from heroapi.db import Row
from heroapi.errors import ErrorDetail
from heroapi.models import Item
from heroapi.policy import AuthMode
from heroapi.rendering import http_date
from heroapi.routes.deps import DatabaseDep, PageSize, PageStart, in_id_range


def router(mode: AuthMode) -> APIRouter:
    """The `/items` routes, each guarded by its rule in `mode` (`policy.RULES`)."""
    items = policy.Router(mode, prefix="/items")
    list_owner = policy.item_owner(mode, "GET", "/items/")
    one_owner = policy.item_owner(mode, "GET", "/items/{item_id}")

    @items.get("/", response_model=list[Item])
    async def read_items(
        database: DatabaseDep,
        owner_id: Annotated[int | None, list_owner],
        skip: PageStart = 0,
        limit: PageSize = 100,
    ) -> list[Row]:
        """List items in id order (with `HEROAPI_AUTH_MODE=required`, only your own)."""
        return await crud.list_items(database=database, offset=skip, limit=limit, owner_id=owner_id)

    @items.get(
        "/{item_id}",
        response_model=Item,
        responses={status.HTTP_404_NOT_FOUND: {"model": ErrorDetail}},
    )
    async def read_item(
        item_id: int,
        database: DatabaseDep,
        owner_id: Annotated[int | None, one_owner],
        response: Response,
    ) -> Row:
        """Read one item (with `HEROAPI_AUTH_MODE=required`, one of your own)."""
        item = None
        if in_id_range(item_id):
            item = await crud.get_item(database=database, item_id=item_id, owner_id=owner_id)
        if item is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "Item not found")
        response.headers["last-modified"] = http_date(item["last_modified"]).decode()
        return item

    return items
