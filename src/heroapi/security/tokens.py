"""Access tokens (JWT), refresh tokens, and the random values accounts and logins are given.

Access tokens follow RFC 9068 and RFC 8725: the `at+jwt` type in the header, `iss`, `aud`, `exp`,
`iat`, `jti` and `sub` in the claims, HS256 only. Each also carries the account's security stamp
(`stamp`), checked against the account's row on every request: a token names one row, not an id
that another row could take.
"""

import hashlib
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Final

import jwt

from heroapi.config import Settings

ALGORITHM: Final = "HS256"
# What `new_security_stamp()` makes: anything else in a token is refused before any comparison.
STAMP_FORMAT: Final = re.compile(r"[0-9a-f]{32}")
ACCESS_TOKEN_TYPE: Final = "at+jwt"  # noqa: S105 (a media type, not a secret)


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
