"""The rules request fields share: text every database can store, email addresses (and what
makes two the same account), ages, passwords, and PATCH's "left out, not null"."""

import unicodedata
from typing import Annotated, TypeVar

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, Field

from heroapi.models.limits import AGE_MAX, EMAIL_MAX_LENGTH, PASSWORD_MAX_LENGTH

T = TypeVar("T")


def not_null(value: T | None) -> T:
    """For PATCH bodies: a field may be left out, but a NOT NULL column cannot be set to null."""
    if value is None:
        raise ValueError("may be left out, but not set to null")
    return value


def storable_text(value: str) -> str:
    """Refuse what no database stores as text: NUL characters and lone UTF-16 surrogates."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return value


def _email_address(value: str) -> str:
    """A syntactically valid address, its domain normalized (lowercase, IDNA); no DNS lookup."""
    storable_text(value)
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise ValueError(f"not a valid email address: {error}") from None


def email_key(email: str) -> str:
    """What makes two addresses the same account: the normalized address (NFC, as registration
    stores it), compared case-insensitively and otherwise exactly, on every backend."""
    return unicodedata.normalize("NFC", email).lower()


def normalized_email(value: str) -> str | None:
    """The address as registration would store it, or None if no account can have it (what a
    login form's `username` is looked up by)."""
    try:
        return _email_address(value)
    except ValueError:
        return None


Age = Annotated[int, Field(ge=0, le=AGE_MAX)]
EmailAddress = Annotated[
    str,
    Field(max_length=EMAIL_MAX_LENGTH, json_schema_extra={"format": "email"}),
    AfterValidator(_email_address),
]
# The minimum length is a setting (HEROAPI_PASSWORD_MIN_LENGTH), checked by the routes and
# written into the OpenAPI document by heroapi.openapi.
Password = Annotated[
    str,
    Field(max_length=PASSWORD_MAX_LENGTH),
    AfterValidator(storable_text),
]
