"""The tutorial's Hero API: same paths, bodies, status codes and operation ids."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status

from heroapi import crud
from heroapi.db import Row
from heroapi.errors import Message
from heroapi.models import ID_MAX, HeroCreate, HeroPublic, HeroUpdate
from heroapi.routes import DatabaseDep

router = APIRouter(prefix="/heroes")

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    status.HTTP_404_NOT_FOUND: {"model": Message, "description": "Hero not found"}
}


def hero_not_found() -> HTTPException:
    return HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="Hero not found")


async def existing_id(hero_id: int) -> int:
    """The path's id; ids no column can hold (0, negative, past 2^63-1) belong to no hero.

    `async`, like every dependency here: FastAPI runs a plain `def` in its thread pool.
    """
    if not 1 <= hero_id <= ID_MAX:
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
async def create_hero(hero: HeroCreate, database: DatabaseDep) -> Row:
    """Create a hero; the database assigns its id."""
    return await crud.create_hero(database=database, hero=hero)


@router.get("/", response_model=list[HeroPublic])
async def read_heroes(
    database: DatabaseDep,
    offset: Annotated[int, Query(ge=0, le=ID_MAX)] = 0,
    limit: Annotated[int, Query(ge=0, le=100)] = 100,
) -> list[Row]:
    """List heroes in id order, `limit` (at most 100) from `offset`."""
    return await crud.list_heroes(database=database, offset=offset, limit=limit)


@router.get("/{hero_id}", response_model=HeroPublic, responses=NOT_FOUND)
async def read_hero(hero: HeroDep) -> Row:
    """Read one hero."""
    return hero


@router.patch("/{hero_id}", response_model=HeroPublic, responses=NOT_FOUND)
async def update_hero(hero_id: HeroIdDep, hero: HeroUpdate, database: DatabaseDep) -> Row:
    """Change the fields sent (`age: null` clears the age); the others stay as they are."""
    changes = hero.model_dump(exclude_unset=True)
    updated = await crud.update_hero(database=database, hero_id=hero_id, changes=changes)
    if updated is None:
        raise hero_not_found()
    return updated


@router.delete("/{hero_id}", responses=NOT_FOUND)
async def delete_hero(hero_id: HeroIdDep, database: DatabaseDep) -> dict[str, Any]:
    """Delete a hero."""
    if not await crud.delete_hero(database=database, hero_id=hero_id):
        raise hero_not_found()
    return {"ok": True}
