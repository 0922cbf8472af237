"""Registering an account, the one way: `POST /users/`, the first superuser at start-up and
`heroapi users create-superuser` all call `register`."""

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from heroapi import crud
from heroapi.db import Database, Row
from heroapi.models import UserCreate
from heroapi.security import PasswordHasher


class Hasher(Protocol):
    """What hashes a password in a hashing turn (`security.Hashing`, `throttle.Attempt`)."""

    async def hash(self, password: str) -> str: ...


async def register(
    *,
    database: Database,
    account: UserCreate,
    turn: AbstractAsyncContextManager[Hasher],
    is_superuser: bool = False,
) -> Row:
    """Create the active account `account`, its password hashed in `turn`;
    `crud.EmailAlreadyRegistered` if its email is taken.

    The email is first looked up in the turn, a cheap early answer for the common case (a burst
    of requests for one email hashes once or twice, not once per request); the unique index
    decides races, after the turn is given back.
    """
    async with turn as hasher:
        if await crud.email_registered(database=database, email=account.email):
            raise crud.EmailAlreadyRegistered(account.email)
        hashed = await hasher.hash(account.password)
    return await crud.create_user(
        database=database,
        email=account.email,
        hashed_password=hashed,
        is_superuser=is_superuser,
    )


async def create_superuser(
    database: Database, email: str, password: str, passwords: PasswordHasher
) -> bool:
    """Create an active superuser; False if the email is already registered (nothing changes)."""
    account = UserCreate(email=email, password=password)  # the same rules as the API's
    minimum = database.settings.password_min_length
    if len(account.password) < minimum:
        raise ValueError(f"the password must be at least {minimum} characters long")
    try:
        await register(
            database=database, account=account, turn=passwords.turn(""), is_superuser=True
        )
    except crud.EmailAlreadyRegistered:  # registered already, or by another process meanwhile
        return False
    return True
