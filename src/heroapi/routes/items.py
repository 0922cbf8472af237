"""Items: the tutorial's listing, and reading one item."""

from fastapi import APIRouter, HTTPException, status

from heroapi import crud
from heroapi.db import Row
from heroapi.errors import ErrorDetail
from heroapi.models import Item
from heroapi.routes.deps import DatabaseDep, PageSize, PageStart, Requester, in_id_range

router = APIRouter(prefix="/items")


@router.get("/", response_model=list[Item])
async def read_items(
    database: DatabaseDep,
    requester: Requester,
    skip: PageStart = 0,
    limit: PageSize = 100,
) -> list[Row]:
    """List items in id order (with `HEROAPI_AUTH_MODE=required`, only your own)."""
    owner_id = None if requester is None or requester["is_superuser"] else requester["id"]
    return await crud.list_items(database=database, offset=skip, limit=limit, owner_id=owner_id)


@router.get(
    "/{item_id}",
    response_model=Item,
    responses={status.HTTP_404_NOT_FOUND: {"model": ErrorDetail}},
)
async def read_item(item_id: int, database: DatabaseDep, requester: Requester) -> Row:
    """Read one item (with `HEROAPI_AUTH_MODE=required`, one of your own)."""
    owner_id = None if requester is None or requester["is_superuser"] else requester["id"]
    item = None
    if in_id_range(item_id):
        item = await crud.get_item(database=database, item_id=item_id, owner_id=owner_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Item not found")
    return item
