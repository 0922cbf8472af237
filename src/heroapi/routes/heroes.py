"""The tutorial's Hero API: same paths, bodies, status codes and operation ids."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, status

from heroapi import crud
from heroapi.db import Row
from heroapi.errors import ErrorDetail
from heroapi.models import HeroCreate, HeroPublic, HeroUpdate
from heroapi.routes.deps import DatabaseDep, PageSize, PageStart, Requester, in_id_range

router = APIRouter(prefix="/heroes")

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    status.HTTP_404_NOT_FOUND: {"model": ErrorDetail, "description": "Hero not found"}
}


def hero_not_found() -> HTTPException:
    return HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="Hero not found")


async def existing_id(hero_id: int) -> int:
    """The path's id; ids no column can hold (0, negative, past 2^63-1) belong to no hero.

    `async`, like every dependency here: FastAPI runs a plain `def` in its thread pool.
    """
    if not in_id_range(hero_id):
        raise hero_not_found()
    return hero_id


HeroIdDep = Annotated[int, Depends(existing_id)]


async def existing_hero(hero_id: HeroIdDep, database: DatabaseDep) -> Row:
    hero = await crud.get_hero(database=database, hero_id=hero_id)
    if hero is None:
        raise hero_not_found()
    return hero


HeroDep = Annotated[Row, Depends(existing_hero)]


@router.post("/", response_model=HeroPublic)
async def create_hero(_writer: Requester, hero: HeroCreate, database: DatabaseDep) -> Row:
    """Create a hero; the database assigns its id."""
    return await crud.create_hero(database=database, hero=hero)


@router.get("/", response_model=list[HeroPublic])
async def read_heroes(
    database: DatabaseDep,
    offset: PageStart = 0,
    limit: PageSize = 100,
) -> list[Row]:
    """List heroes in id order, `limit` (at most 100) from `offset`."""
    return await crud.list_heroes(database=database, offset=offset, limit=limit)


@router.get("/{hero_id}", response_model=HeroPublic, responses=NOT_FOUND)
async def read_hero(hero: HeroDep) -> Row:
    """Read one hero."""
    return hero


@router.patch("/{hero_id}", response_model=HeroPublic, responses=NOT_FOUND)
async def update_hero(
    _writer: Requester, hero_id: HeroIdDep, hero: HeroUpdate, database: DatabaseDep
) -> Row:
    """Change the fields sent (`age: null` clears the age); the others stay as they are."""
    changes = hero.model_dump(exclude_unset=True)
    updated = await crud.update_hero(database=database, hero_id=hero_id, changes=changes)
    if updated is None:
        raise hero_not_found()
    return updated


@router.delete("/{hero_id}", responses=NOT_FOUND)
async def delete_hero(
    _writer: Requester, hero_id: HeroIdDep, database: DatabaseDep
) -> dict[str, Any]:
    """Delete a hero."""
    if not await crud.delete_hero(database=database, hero_id=hero_id):
        raise hero_not_found()
    return {"ok": True}
