"""One router per resource; `heroapi.main` includes them all."""

from typing import Annotated

from fastapi import Depends, Request

from heroapi.db import Database


async def get_database(request: Request) -> Database:
    """The app's `Database`; `async` so FastAPI calls it without a thread-pool hop."""
    database: Database = request.app.state.database
    return database


DatabaseDep = Annotated[Database, Depends(get_database)]
