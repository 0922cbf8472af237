"""Password hashing (Argon2id, pwdlib) on a few workers, taken in turns; access tokens (JWT).

Access tokens follow RFC 9068 and RFC 8725: the `at+jwt` type in the header, `iss`, `aud`, `exp`,
`iat`, `jti` and `sub` in the claims, HS256 only. Each also carries the account's security stamp
(`stamp`), checked against the account's row on every request: a token names one row, not an id
that another row could take.
"""

import asyncio
import contextlib
import functools
import hashlib
import re
import secrets
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
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

# New hashes are Argon2id with OWASP's recommended parameters: 19 MiB, two passes, one lane
# (~20 ms of one core; argon2-cffi's defaults, 64 MiB on four lanes, took ~0.12 s of two cores, so
# a two-core server hashed 8 passwords a second: registering 1,000 users took two minutes).
# bcrypt hashes, and Argon2 hashes made with other parameters, still verify, and are replaced at
# the next successful login.
ARGON2_MEMORY_KIB: Final = 19 * 1024
ARGON2_PASSES: Final = 2
password_hash = PasswordHash(
    (
        Argon2Hasher(time_cost=ARGON2_PASSES, memory_cost=ARGON2_MEMORY_KIB, parallelism=1),
        BcryptHasher(),
    )
)


# Verified against when the email is unknown, so that answer takes as long as a wrong password.
# Made once with the parameters above (a test checks they still match): computing it at start-up
# would cost every process a hash's time and memory before anyone logs in.
UNKNOWN_USER_HASH: Final = (
    "$argon2id$v=19$m=19456,t=2,p=1$Iw+ZWy9wQrHY8BT3AhcaDw"
    "$PcAOAdawjl8CSLiyIuzhyKgWp2jgsVCl9oJlkhO0Rz8"
)


class HashingBusy(Exception):
    """No hashing turn came within the wait, or too many requests wait already: retry shortly."""


# A lane of waiting requests: each client's waiters in arrival order, the clients in the order
# they take their turns.
Lane = OrderedDict[str, deque["asyncio.Future[None]"]]


class Turns:
    """`slots` turns at once, handed to waiting clients in rotation.

    A client (an address, as the throttle groups them) that asks while every slot is taken waits
    its turn: each freed slot goes to the next client in the rotation, so a client with a
    hundred requests waiting gets one turn per round like a client with one. `preferred`
    clients (whose last login here succeeded) wait in a lane of their own: a request there is
    next, but the other lane still gets every other turn. At most `max_waiting` requests wait,
    each at most `max_wait` seconds: past the first, the newest waiter of the client with the
    most is dropped to make room (or, when that is the newcomer's own client, the newcomer is
    refused); past the second, `HashingBusy`.
    """

    def __init__(self, *, slots: int, max_waiting: int, max_wait: float) -> None:
        self._free = slots
        self._max_waiting = max_waiting
        self._max_wait = max_wait
        self._lanes: tuple[Lane, Lane] = (OrderedDict(), OrderedDict())  # others, preferred
        self._waiting = 0  # only touched on the event loop's thread, like everything here
        self._preferred_next = True

    @property
    def waiting(self) -> int:
        return self._waiting

    @contextlib.asynccontextmanager
    async def turn(self, client: str, *, preferred: bool = False) -> AsyncIterator[None]:
        """Hold one slot for the block, once it is `client`'s turn."""
        await self._acquire(client, self._lanes[preferred])
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, client: str, lane: Lane) -> None:
        if self._free and not self._waiting:
            self._free -= 1
            return
        if self._waiting >= self._max_waiting and not self._drop_for(client):
            raise HashingBusy
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        lane.setdefault(client, deque()).append(waiter)
        self._waiting += 1
        try:
            async with asyncio.timeout(self._max_wait):
                await waiter
        except TimeoutError:
            self._give_up(lane, client, waiter)
            raise HashingBusy from None
        except BaseException:
            self._give_up(lane, client, waiter)
            raise

    def _give_up(self, lane: Lane, client: str, waiter: "asyncio.Future[None]") -> None:
        """A waiter stops waiting (its wait ended, it was dropped, or its request cancelled)."""
        if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
            self._release()  # its turn came just as it gave up: pass the slot on
            return
        waiters = lane.get(client)
        if waiters is not None and waiter in waiters:
            waiters.remove(waiter)
            self._waiting -= 1
            if not waiters:
                del lane[client]

    def _drop_for(self, client: str) -> bool:
        """Make room for one more of `client`'s requests by dropping the newest waiter of the
        client with the most waiting, if that client has more waiting than `client` does."""
        if not self._waiting:
            return False
        own = sum(len(lane.get(client, ())) for lane in self._lanes)
        lane, busiest = max(
            ((lane, name) for lane in self._lanes for name in lane),
            key=lambda entry: len(entry[0][entry[1]]),
        )
        if len(lane[busiest]) <= own + 1:
            return False
        dropped = lane[busiest].pop()
        self._waiting -= 1
        dropped.set_exception(HashingBusy())
        return True

    def _release(self) -> None:
        """A slot is free: the next waiter's turn, or free for whoever asks next."""
        while self._waiting:
            lane = self._next_lane()
            client, waiters = next(iter(lane.items()))
            waiter = waiters.popleft()
            if waiters:
                lane.move_to_end(client)
            else:
                del lane[client]
            self._waiting -= 1
            if not waiter.done():  # a cancelled request's waiter may still be there
                waiter.set_result(None)
                return
        self._free += 1

    def _next_lane(self) -> Lane:
        """The preferred lane, unless its last turn was the last one given while others waited:
        a preferred request that comes is next, and the others still get every other turn."""
        others, preferred = self._lanes
        if not others or not preferred:
            lane = preferred or others
        else:
            lane = preferred if self._preferred_next else others
        self._preferred_next = lane is others
        return lane


class PasswordHasher:
    """Hashes and verifies passwords in threads of its own (it never shares one with anything
    else), `workers` at a time: Argon2 holds 19 MiB while it runs. A request waits for its
    turn (`Turns`: fair between clients, bounded in count and time); a waiting request costs no
    memory beyond itself."""

    def __init__(self, *, workers: int, queue: int, wait: float) -> None:
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="heroapi-hash")
        self.turns = Turns(slots=workers, max_waiting=queue, max_wait=wait)

    @contextlib.asynccontextmanager
    async def turn(self, client: str, *, preferred: bool = False) -> AsyncIterator["Hashing"]:
        """A worker for `client`'s hashes, once it is its turn (see `Turns.turn`)."""
        async with self.turns.turn(client, preferred=preferred):
            yield Hashing(self._executor)

    @classmethod
    def for_settings(cls, settings: Settings) -> "PasswordHasher":
        """The hasher HEROAPI_PASSWORD_HASH_WORKERS, _QUEUE and _WAIT ask for."""
        return cls(
            workers=settings.password_hash_workers,
            queue=settings.password_hash_queue,
            wait=settings.password_hash_wait,
        )

    async def hash(self, password: str, *, client: str = "") -> str:
        """The Argon2id hash of `password`, in `client`'s turn."""
        async with self.turn(client) as hashing:
            return await hashing.hash(password)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class Hashing:
    """Hashing during a turn (`PasswordHasher.turn`): each call runs on a worker at once."""

    def __init__(self, executor: ThreadPoolExecutor) -> None:
        self._executor = executor

    async def _run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, functools.partial(function, *args, **kwargs)
        )

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
