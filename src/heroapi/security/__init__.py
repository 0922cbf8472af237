"""Security: password hashing on workers taken in turns (`passwords.py`, `turns.py`), and access
and refresh tokens (`tokens.py`)."""

from heroapi.security.passwords import (
    UNKNOWN_USER_HASH,
    Hashing,
    PasswordHasher,
    password_hash,
)
from heroapi.security.tokens import (
    AccessTokens,
    TokenClaims,
    new_refresh_token,
    new_secret_key,
    new_security_stamp,
    new_session_id,
    refresh_token_hash,
    refresh_token_session,
)
from heroapi.security.turns import HashingBusy, Turns

__all__ = [
    "UNKNOWN_USER_HASH",
    "AccessTokens",
    "Hashing",
    "HashingBusy",
    "PasswordHasher",
    "TokenClaims",
    "Turns",
    "new_refresh_token",
    "new_secret_key",
    "new_security_stamp",
    "new_session_id",
    "password_hash",
    "refresh_token_hash",
    "refresh_token_session",
]
