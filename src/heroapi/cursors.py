"""List cursors: opaque, signed tokens for "the page after (or before) this row".

A cursor carries its list's name, its order, its direction and the sort values of the row it
starts from, in JSON, followed by an HMAC-SHA256 tag (16 bytes) over them, all in base64url. The
key is derived from the key that signs access tokens (HEROAPI_SECRET_KEY, or the one kept in the
database), with a label of its own: a cursor is never mistaken for a token, nor a token for a
cursor. An edited or forged cursor fails the tag and is refused; it never reads another page.
Cursors do not expire: they name a place in an order, not a permission.
"""

import base64
import binascii
import hashlib
import hmac
from typing import Any, Final, Literal

import orjson

_TAG_SIZE: Final = 16
# Longer than any cursor heroapi makes: its sort values are bounded by the columns' sizes, but
# JSON writes a control character as 6 bytes (`\u0001`), so a 255-character name of them alone
# is 1,530 bytes, 2,040 characters in base64; with the other fields of the longest order, the
# tag and the list's name, under 2,400.
MAX_CURSOR_LENGTH: Final = 4096


class InvalidCursor(ValueError):
    """A cursor that heroapi did not make for this list."""


class Cursors:
    """Makes and reads the cursors of one app (one key)."""

    def __init__(self, signing_key: str) -> None:
        self._key = hmac.new(signing_key.encode(), b"heroapi list cursor", hashlib.sha256).digest()

    def _tag(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_TAG_SIZE]

    def make(
        self, listing: str, order: str, direction: Literal["after", "before"], values: list[Any]
    ) -> str:
        """The cursor of the rows `direction` the row with sort `values`, in `order`."""
        payload = orjson.dumps([listing, order, direction, values])
        return base64.urlsafe_b64encode(payload + self._tag(payload)).rstrip(b"=").decode()

    def read(self, cursor: str, listing: str) -> tuple[str, Literal["after", "before"], list[Any]]:
        """A cursor's order, direction and sort values; `InvalidCursor` unless this app made
        it, for `listing`."""
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise InvalidCursor("too long to be a cursor")
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raise InvalidCursor("not a cursor this service made") from None
        payload, tag = raw[:-_TAG_SIZE], raw[-_TAG_SIZE:]
        if len(raw) <= _TAG_SIZE or not hmac.compare_digest(tag, self._tag(payload)):
            raise InvalidCursor("not a cursor this service made (or it was changed)")
        made_for, order, direction, values = orjson.loads(payload)
        if made_for != listing:
            raise InvalidCursor(f"a cursor of another list ({made_for})")
        return order, direction, values
