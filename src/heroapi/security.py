"""Password hashing (Argon2id, pwdlib) in a bounded executor, and access tokens (JWT, PyJWT).

Access tokens follow RFC 9068 and RFC 8725: the `at+jwt` type in the header, `iss`, `aud`, `exp`,
`iat`, `jti` and `sub` in the claims, HS256 only. Each also carries the account's security stamp
(`stamp`), checked against the account's row on every request: a token names one row, not an id
that another row could take.
"""

import asyncio
import functools
import hashlib
import re
import secrets
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final, ParamSpec, TypeVar

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

from heroapi.config import Settings

P = ParamSpec("P")
T = TypeVar("T")

ALGORITHM: Final = "HS256"
# What `new_security_stamp()` makes: anything else in a token is refused before any comparison.
STAMP_FORMAT: Final = re.compile(r"[0-9a-f]{32}")
ACCESS_TOKEN_TYPE: Final = "at+jwt"  # noqa: S105 (a media type, not a secret)
# bcrypt uses the first 72 bytes of a password and bcrypt 4.1+ refuses longer ones.
BCRYPT_MAX_BYTES: Final = 72

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


class HashingBusy(Exception):
    """Every password-hashing slot is taken and its queue is full: retry shortly."""


class PasswordHasher:
    """Hashes and verifies passwords in threads of its own, at most `workers` at a time (Argon2
    holds 64 MiB while it runs), with at most `queue` more waiting. Past that, `HashingBusy` at
    once: a flood of logins gets fast 503s instead of a queue that makes everyone wait seconds,
    and it never shares a thread with anything else (the default executor runs other work)."""

    def __init__(self, *, workers: int, queue: int) -> None:
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="heroapi-hash")
        self._capacity = workers + queue
        self._pending = 0  # only touched on the event loop's thread

    async def _run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self._pending >= self._capacity:
            raise HashingBusy
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            call = functools.partial(function, *args, **kwargs)
            return await loop.run_in_executor(self._executor, call)
        finally:
            self._pending -= 1

    async def hash(self, password: str) -> str:
        """The Argon2id hash of `password`."""
        return await self._run(password_hash.hash, password)

    async def verify(self, password: str, hashed: str | None) -> tuple[bool, str | None]:
        """Whether `password` matches `hashed`, and a stronger hash to store if one is due.

        `hashed=None` (no such user) costs the same time as a wrong password, and so does a
        password bcrypt cannot have hashed (over 72 bytes): both are simply wrong.
        """
        target = hashed
        if hashed is None or (
            hashed.startswith("$2") and len(password.encode("utf-8")) > BCRYPT_MAX_BYTES
        ):
            target = None
        valid, updated = await self._run(
            password_hash.verify_and_update, password, target or UNKNOWN_USER_HASH
        )
        if target is None:
            return False, None
        return valid, updated

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def new_security_stamp() -> str:
    """A fresh random stamp for an account (32 hex characters)."""
    return secrets.token_hex(16)


def new_secret_key() -> str:
    """A random signing key (256 bits), for when HEROAPI_SECRET_KEY is not set."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    stamp: str


class AccessTokens:
    """Issues and checks access tokens with one key (HEROAPI_SECRET_KEY or the stored one)."""

    def __init__(self, key: str, settings: Settings) -> None:
        self._key = key
        self._issuer = settings.token_issuer
        self._audience = settings.token_audience
        self.lifetime = settings.access_token_expire_minutes * 60

    def issue(self, *, user_id: int, stamp: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": str(user_id),
            "stamp": stamp,
            "iat": now,
            "exp": now + self.lifetime,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(
            claims, self._key, algorithm=ALGORITHM, headers={"typ": ACCESS_TOKEN_TYPE}
        )

    def check(self, token: str) -> TokenClaims | None:
        """The claims of a valid, unexpired access token of ours; None for anything else."""
        try:
            if jwt.get_unverified_header(token).get("typ") != ACCESS_TOKEN_TYPE:
                return None
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                audience=self._audience,
                options={"require": ["iss", "aud", "sub", "exp", "iat", "stamp"]},
            )
            user_id, stamp = int(claims["sub"]), claims["stamp"]
        except (jwt.InvalidTokenError, ValueError, TypeError):
            return None
        if not isinstance(stamp, str) or not STAMP_FORMAT.fullmatch(stamp):
            return None
        return TokenClaims(user_id, stamp)


# A login's id (`new_session_id`), as the first part of each of its refresh tokens.
SESSION_ID_FORMAT: Final = re.compile(r"[0-9a-f]{32}")


def new_session_id() -> str:
    """A login's id: 128 random bits, in hex."""
    return uuid.uuid4().hex


def new_refresh_token(session_id: str) -> tuple[str, str]:
    """A refresh token of the login `session_id` and the hash it is stored under: the login's id,
    a dot, and 256 random bits. The id lets a spent token be recognized as its login's."""
    token = f"{session_id}.{secrets.token_urlsafe(32)}"
    return token, refresh_token_hash(token)


def refresh_token_hash(token: str) -> str:
    """How a refresh token is stored and looked up (SHA-256: the token itself is random, so no
    slow hash is needed to protect it)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def refresh_token_session(token: str) -> str | None:
    """The login a refresh token names, if it has the form `new_refresh_token` gives."""
    session_id, dot, _ = token.partition(".")
    return session_id if dot and SESSION_ID_FORMAT.fullmatch(session_id) else None
