"""Password hashing: Argon2id (pwdlib) on a few workers of its own, taken in turns (`turns.py`)."""

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final, ParamSpec, TypeVar

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

from heroapi.config import Settings
from heroapi.security.turns import Turns

P = ParamSpec("P")
T = TypeVar("T")

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
