"""Throttling of what costs a password hash: logins, registrations and password changes.

An attempt first waits for its turn at the hashing workers (`security.Turns`: in rotation
between client addresses, bounded in count and time; a request that gets no turn is a 503 that
counts nowhere). In its turn it is counted *before* any hashing, per account and per client
address, in the database (`crud.auth.count_hit`), so every worker and replica sees the same
counts with no other server. An attempt that succeeds is taken back, so what the limits count is
failures (and, with `HEROAPI_REGISTRATIONS_PER_ADDRESS`, registrations). Past a limit the answer
is 429 with `Retry-After` and the IETF RateLimit fields (draft-ietf-httpapi-ratelimit-headers):
`RateLimit-Policy: "login-address";q=30;w=900` and `RateLimit: "login-address";r=0;t=540`.

A key past its quota stays past it until its window ends, so each process remembers the keys it
has refused: a route registered with `refused_over` (`heroapi.routes.throttling`) answers such
an address before the request is read, and holds that answer back `HEROAPI_THROTTLE_HOLD` seconds
(`Throttle.hold`), which turns a client that retries at once into one that retries once a second.

Who the client is, and how IPv6 clients are grouped: `heroapi.addresses`.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

from starlette.types import Scope

from heroapi.addresses import Client, Clients
from heroapi.config import Settings
from heroapi.crud import auth
from heroapi.db import Database
from heroapi.models import email_key, normalized_email
from heroapi.security import Hashing, PasswordHasher

logger = logging.getLogger("heroapi")

# Expired counters and refresh tokens are deleted at most this often per process.
CLEANUP_INTERVAL: Final = 60
# Keys past their quota, and recent logins (`Throttle.preferred`), remembered per process.
MAX_REMEMBERED: Final = 100_000
# 429s held back at once per process (`Throttle.hold`; each holds a connection); past that, the
# others are answered at once.
MAX_HELD: Final = 256

# The limits' names, in the RateLimit fields and the counters' keys.
LOGIN_ACCOUNT: Final = "login-account"
LOGIN_ADDRESS: Final = "login-address"
REGISTER_ADDRESS: Final = "register-address"


@dataclass(frozen=True)
class Limit:
    """At most `quota` counted attempts per key in a window of `window` seconds."""

    name: str
    quota: int
    window: int


@dataclass(frozen=True)
class Counted:
    limit: Limit
    key: str
    hits: auth.Hits


class Attempt:
    """An attempt being made in its hashing turn (see `Throttle.hashing`)."""

    def __init__(self, throttle: "Throttle", counted: list[Counted], hashing: Hashing) -> None:
        self._throttle = throttle
        self._counted = counted
        self._hashing = hashing
        self.success = False

    async def hash(self, password: str) -> str:
        return await self._hashing.hash(password)

    async def verify(self, password: str, hashed: str | None) -> tuple[bool, str | None]:
        return await self._hashing.verify(password, hashed)

    async def succeeded(self) -> None:
        """The password was right: the attempt does not count against its limits."""
        self.success = True
        await self._throttle.take_back(self._counted)


class Throttled(Exception):
    """A limit is used up: answered 429."""

    def __init__(self, counted: Counted, now: int) -> None:
        super().__init__(counted.limit.name)
        self.counted = counted
        self.retry_after = max(1, counted.hits.reset_at - now)


class Throttle:
    """The limits of one app, and the counting of attempts against them."""

    def __init__(self, database: Database, settings: Settings, passwords: PasswordHasher) -> None:
        self._database = database
        self._passwords = passwords
        window = settings.throttle_window
        self.login_account = Limit(LOGIN_ACCOUNT, settings.login_failures_per_account, window)
        self.login_address = Limit(LOGIN_ADDRESS, settings.login_failures_per_address, window)
        registrations = settings.registrations_per_address
        self.register_address = (
            None if registrations is None else Limit(REGISTER_ADDRESS, registrations, window)
        )
        self._window = window
        self._clients = Clients(settings.trusted_proxies)
        self._next_cleanup = 0.0
        self._refused: dict[str, Counted] = {}  # keys known to be past their quota, by key
        # Until when each (turn, account) pair that last logged in successfully is preferred.
        self._logged_in: dict[str, int] = {}
        self._hold = settings.throttle_hold
        self._held = 0  # 429s being held back (`hold`)

    # ---------------------------------------------------------------- who is asking

    def client(self, scope: Scope) -> Client:
        """Who the limits count the request against (`addresses`)."""
        return self._clients.of(scope)

    def client_address(self, scope: Scope) -> str:
        """The address limits count the request against."""
        return self.client(scope).key

    @staticmethod
    def account_key(email: str) -> str:
        """What counts as one account: the address as login looks it up."""
        normalized = normalized_email(email)
        return email_key(normalized if normalized is not None else email)[:200]

    # ---------------------------------------------------------------- counting

    def known_refusal(self, scope: Scope, limit_name: str) -> "Throttled | None":
        """The 429 `hashing()` would answer for this request's client address under the limit
        named `limit_name`, if this process already knows it without the database or the request
        body: the address is past its quota."""
        return self._remembered(limit_name, self.client_address(scope), int(time.time()))

    def _remembered(self, limit_name: str, key: str, now: int) -> "Throttled | None":
        """429 if this process has seen `key` past its quota under `limit_name` this window."""
        refused = self._refused.get(f"{limit_name}:{key}")
        if refused is not None and now < refused.hits.reset_at:
            return Throttled(refused, now)
        return None

    async def hold(self, refusal: "Throttled") -> None:
        """Hold back a 429 this process knew without asking the database (`known_refusal`)
        for `HEROAPI_THROTTLE_HOLD` seconds, at most its `Retry-After`, unless `MAX_HELD`
        answers are already waiting. A client that ignores 429s and tries again at once, as
        brute-forcing tools do, then costs the server one cheap answer a second per connection
        instead of a busy loop; one within its limits never waits."""
        if not self._hold or self._held >= MAX_HELD:
            return
        self._held += 1
        try:
            await asyncio.sleep(min(self._hold, refusal.retry_after))
        finally:
            self._held -= 1

    async def count(self, address: str, *attempts: tuple[Limit, str]) -> list[Counted]:
        """Count one attempt from `address` on each (limit, key); `Throttled` if any limit is
        past its quota."""
        now = int(time.time())
        await self._clean_up(now)
        for limit, key in attempts:
            refused = self._remembered(limit.name, key, now)
            if refused is not None and await self._still_refused(limit, key):
                raise refused  # known to be over: no database write, no log line
        counted = []
        for limit, key in attempts:
            hits = await auth.count_hit(
                database=self._database, key=f"{limit.name}:{key}", now=now, window=limit.window
            )
            counted.append(Counted(limit, key, hits))
        for entry in counted:
            if entry.hits.count > entry.limit.quota:
                # The address only: an account's key is its email, which is not logged.
                logger.warning("throttled: %s from %s", entry.limit.name, address)
                self._remember_refused(entry)
                raise Throttled(entry, now)
        return counted

    async def _still_refused(self, limit: Limit, key: str) -> bool:
        """Whether a remembered refusal still holds. An account's count may be cleared before
        its window ends (`heroapi users unlock`, in another process): it is read again, which
        costs a read instead of the write counting would."""
        if limit is not self.login_account:
            return True
        hits = await auth.read_hits(database=self._database, key=f"{limit.name}:{key}")
        if hits is not None and hits.count > limit.quota:
            return True
        self._refused.pop(f"{limit.name}:{key}", None)
        return False

    def _remember_refused(self, entry: Counted) -> None:
        """A key past its quota stays past it until its window ends (within a window counts only
        grow, and a success, which alone takes one back, cannot happen while it is refused; only
        an unlocked account's count is cleared, see `_still_refused`): the flood of attempts
        that follows is answered from memory."""
        if len(self._refused) >= MAX_REMEMBERED:
            self._refused.clear()  # bounded memory; the database still has every count
        self._refused[f"{entry.limit.name}:{entry.key}"] = entry

    def _preferred(self, login: str) -> bool:
        """Whether this (turn, account) pair's last login here succeeded, this window."""
        return self._logged_in.get(login, 0) > time.time()

    def _remember_login(self, login: str, succeeded: bool) -> None:
        self._logged_in.pop(login, None)
        if succeeded:
            if len(self._logged_in) >= MAX_REMEMBERED:
                self._logged_in.clear()
            self._logged_in[login] = int(time.time()) + self._window

    @contextlib.asynccontextmanager
    async def hashing(
        self, scope: Scope, limit: Limit | None, *, account: str | None = None
    ) -> AsyncIterator[Attempt]:
        """An attempt that costs a password hash, from the request's client address.

        It waits for the address's turn at the hashing workers (`HashingBusy`, a 503, when none
        comes: nothing is counted), fair between addresses: a flood from some addresses slows
        everyone else's logins by a turn each, never more. An account's logins from an address
        whose last login of it succeeded take their turns in a lane of their own, served every
        other turn. In its turn the attempt is counted against `limit` (none: not counted) for
        the address and, with `account`, against the account's limit."""
        client = self.client(scope)
        login = None if account is None else f"{client.turn} {self.account_key(account)}"
        preferred = login is not None and self._preferred(login)
        async with self._passwords.turn(client.turn, preferred=preferred) as hashing:
            attempts = [] if limit is None else [(limit, client.key)]
            if account is not None:
                attempts.append((self.login_account, self.account_key(account)))
            attempt = Attempt(self, await self.count(client.key, *attempts), hashing)
            try:
                yield attempt
            finally:
                if login is not None:
                    self._remember_login(login, attempt.success)

    async def take_back(self, counted: list[Counted]) -> None:
        """The attempt succeeded: it does not count (an account's failures start over)."""
        for entry in counted:
            key = f"{entry.limit.name}:{entry.key}"
            if entry.limit is self.login_account:
                await auth.clear_hits(database=self._database, key=key)
            else:
                await auth.take_back_hit(database=self._database, key=key)

    async def _clean_up(self, now: int) -> None:
        if now < self._next_cleanup:
            return
        self._next_cleanup = now + CLEANUP_INTERVAL
        self._refused = {
            key: entry for key, entry in self._refused.items() if entry.hits.reset_at > now
        }
        self._logged_in = {login: until for login, until in self._logged_in.items() if until > now}
        await auth.delete_expired(database=self._database, now=now)
