"""Password hashing (Argon2id, pwdlib) and access tokens (JWT, PyJWT)."""

import asyncio
import time
from dataclasses import dataclass
from typing import Final

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

from heroapi.config import Settings

ALGORITHM: Final = "HS256"

# New hashes are Argon2id with argon2-cffi's current defaults; bcrypt hashes (and Argon2 hashes
# made with other parameters) still verify, and are replaced at the next successful login.
password_hash = PasswordHash((Argon2Hasher(), BcryptHasher()))


# Verified against when the email is unknown, so that answer takes as long as a wrong password.
# Made once with the parameters above (a test checks they still match): computing it at start-up
# would cost every process Argon2's 64 MiB of memory before anyone logs in.
UNKNOWN_USER_HASH: Final = (
    "$argon2id$v=19$m=65536,t=3,p=4$VrJoiM9v7esi6CNt/g0Whg"
    "$p8eKvoWb2hhP7piCrWNZt0GlkDkiRwrJYR6mq3NRtY8"
)


async def hash_password(password: str) -> str:
    """The Argon2id hash of `password`, computed in a thread (it takes tens of milliseconds)."""
    return await asyncio.to_thread(password_hash.hash, password)


async def verify_password(password: str, hashed: str | None) -> tuple[bool, str | None]:
    """Whether `password` matches `hashed`, and a stronger hash to store if one is due.

    `hashed=None` (no such user) costs the same time as a wrong password.
    """
    target = hashed if hashed is not None else UNKNOWN_USER_HASH
    valid, updated = await asyncio.to_thread(password_hash.verify_and_update, password, target)
    if hashed is None:
        return False, None
    return valid, updated


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    generation: int


def create_access_token(*, user_id: int, generation: int, settings: Settings) -> str:
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "gen": generation,
        "iat": now,
        "exp": now + settings.access_token_expire_minutes * 60,
    }
    return jwt.encode(claims, settings.secret_key.get_secret_value(), algorithm=ALGORITHM)


def decode_access_token(token: str, settings: Settings) -> TokenClaims | None:
    """The claims of a valid, unexpired token signed with our key; None for anything else."""
    try:
        claims = jwt.decode(
            token,
            settings.secret_key.get_secret_value(),
            algorithms=[ALGORITHM],
            options={"require": ["sub", "exp", "iat", "gen"]},
        )
        user_id, generation = int(claims["sub"]), claims["gen"]
    except (jwt.InvalidTokenError, ValueError, TypeError):
        return None
    if not isinstance(generation, int) or isinstance(generation, bool):
        return None
    return TokenClaims(user_id, generation)
