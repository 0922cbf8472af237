"""Logging in: the OAuth2 password flow, so "Authorize" in /docs works."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import OAuth2PasswordRequestForm

from heroapi import crud
from heroapi.errors import ErrorDetail
from heroapi.models import PASSWORD_MAX_LENGTH, Token
from heroapi.routes.deps import DatabaseDep, SettingsDep
from heroapi.security import create_access_token, verify_password

router = APIRouter(tags=["login"])

# The same answer, after the same work, for an unknown email and a wrong password.
INCORRECT_LOGIN = "Incorrect email or password"


@router.post(
    "/login/access-token",
    response_model=Token,
    responses={status.HTTP_400_BAD_REQUEST: {"model": ErrorDetail}},
)
async def login_access_token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    database: DatabaseDep,
    settings: SettingsDep,
) -> Token:
    """Exchange an email (as `username`) and password for a bearer token."""
    password = form.password[: PASSWORD_MAX_LENGTH + 1]  # never hash megabytes
    user = await crud.get_login(database=database, email=form.username)
    hashed = None if user is None else user["hashed_password"]
    valid, stronger_hash = await verify_password(password, hashed)
    if user is None or not valid:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, INCORRECT_LOGIN)
    if not user["is_active"]:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "Inactive user")
    if stronger_hash is not None:
        # A bcrypt hash, or Argon2 with older parameters: replaced now that we know the password.
        await crud.set_password_hash(
            database=database,
            user_id=user["id"],
            hashed_password=stronger_hash,
            revoke_tokens=False,
        )
    token = create_access_token(
        user_id=user["id"], generation=user["token_generation"], settings=settings
    )
    return Token(access_token=token)
