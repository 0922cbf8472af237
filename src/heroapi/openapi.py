"""The OpenAPI document states every status a route can answer, not only its success.

FastAPI documents 200 and 422 by itself; the routes add their own 404 and 400. What comes from
the layers around them is added here, once, by the same rules the code follows: a body that is
not JSON (400) or too large (413), a database that cannot be reached (503), a write refused by a
constraint (409), a missing or bad token (401) and too few privileges (403).
"""

from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR: Final = {"$ref": "#/components/schemas/ErrorDetail"}
_BODY_ERRORS: Final = {
    "400": "The body could not be parsed (not JSON, not UTF-8)",
    "413": "The body is larger than HEROAPI_MAX_BODY_SIZE",
}
_AUTH_ERRORS: Final = {
    "401": "Missing, malformed, expired or revoked bearer token",
    "403": "The token's user may not do this",
}
_WRITES: Final = {"post", "put", "patch", "delete"}
# Routes that never reach the database.
_NO_DATABASE: Final = {"/health/live"}


# Password fields, whose minimum length is a setting (HEROAPI_PASSWORD_MIN_LENGTH).
_PASSWORDS: Final = (
    ("UserCreate", "password"),
    ("UserUpdate", "password"),
    ("UpdatePassword", "new_password"),
)


def _set_password_minimum(schemas: dict[str, Any], minimum: int) -> None:
    for schema, field in _PASSWORDS:
        spec = schemas.get(schema, {}).get("properties", {}).get(field)
        if spec is None:
            continue
        for variant in spec.get("anyOf", [spec]):  # `str | None` is an anyOf
            if variant.get("type") == "string":
                variant["minLength"] = minimum


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR}}}


def document_statuses(app: FastAPI) -> None:
    """Replace `app.openapi` with one that adds the statuses every route shares."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            routes=app.routes,
        )
        document["components"]["schemas"].setdefault(
            "ErrorDetail",
            {
                "title": "ErrorDetail",
                "type": "object",
                "properties": {"detail": {"title": "Detail", "type": "string"}},
                "required": ["detail"],
            },
        )
        _set_password_minimum(
            document["components"]["schemas"], app.state.settings.password_min_length
        )
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                added: dict[str, str] = {}
                if "requestBody" in operation:
                    added |= _BODY_ERRORS
                if operation.get("security"):
                    added |= _AUTH_ERRORS
                if method in _WRITES:
                    added["409"] = "A database constraint refused the change"
                if path not in _NO_DATABASE:
                    added["503"] = "The database is unavailable; retry after Retry-After seconds"
                for code, description in added.items():
                    responses.setdefault(code, _error(description))
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
