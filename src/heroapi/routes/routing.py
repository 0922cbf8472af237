"""How every route is registered: a resource is a list of `Endpoint`s, and `add_routes` puts
them on the app in that order (the order requests are matched in: `/users/me` before
`/users/{user_id}`), each guarded by its rule in the app's auth mode (`policy.RULES`), with its
documented answers, and with what `Route` does before FastAPI's own handling: the early refusal
of a throttled address (`refused_over`) and the fast path (`fast`, see `direct`).

The routes are added to the app's own router, not through `include_router`: FastAPI answers an
included router's requests through a wrapper that matches the path a second time (~10% of a
`GET /heroes/{id}`).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from fastapi import FastAPI
from fastapi.datastructures import Default
from fastapi.routing import APIRoute
from starlette._utils import get_route_path  # what `Route.matches` reads its pattern against
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from heroapi.routes import policy
from heroapi.routes.direct import FastAnswer
from heroapi.routes.policy import AuthMode
from heroapi.routes.throttling import refused_early

Responses = dict[int | str, dict[str, Any]]  # documented answers besides 200 and 422, by status

_JSON: Final = (b"content-type", b"application/json")


@dataclass(frozen=True)
class Endpoint:
    """One operation: its method, path template and handler, what it documents, and what its
    route does before FastAPI handles a request (`Route`)."""

    method: str
    path: str
    handler: Callable[..., Any]
    # FastAPI's default: the handler's return annotation, unless it is a `Response`.
    response_model: Any = field(default_factory=lambda: Default(None))
    responses: Responses = field(default_factory=dict)
    # A GET's 200 without FastAPI's per-request machinery (`direct`), used where the rule is
    # `ANYONE` (in a mode where it asks for a token, FastAPI handles every request).
    fast: FastAnswer | None = None
    # The throttle limit (`heroapi.throttle`) whose known-refused addresses are answered early.
    refused_over: str | None = None
    include_in_schema: bool = True


@dataclass(frozen=True)
class Resource:
    """A resource's endpoints, in matching order, under its OpenAPI tag."""

    tag: str
    endpoints: Sequence[Endpoint]


class Route(APIRoute):
    """FastAPI's route, which first refuses an address known to be throttled under
    `refused_over`, and answers a GET that `fast` can answer; anything else, FastAPI handles.

    It also tells quickly that a path is not its own: the router asks every route in turn
    until one matches (a `GET /items/` was asked of 16 routes, ~2 us each: a tenth of a plain
    read), and a path whose start is not the route's text before its first parameter cannot
    match its pattern, so that is compared first."""

    fast: FastAnswer | None = None
    refused_over: str | None = None

    def __init__(self, path: str, endpoint: Callable[..., Any], **options: Any) -> None:
        super().__init__(path, endpoint, **options)
        self.fixed_start = path.partition("{")[0]

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and not get_route_path(scope).startswith(self.fixed_start):
            return Match.NONE, {}
        return super().matches(scope)

    def configure(self, *, fast: FastAnswer | None, refused_over: str | None) -> None:
        """Set what the route does before FastAPI's handling. A fast answer refuses the route's
        dependencies (its rule's guards, or its router's or app's): answering before FastAPI
        solves them would skip them. The handler's own parameters are the fast answer's to
        read as the handler would."""
        if fast is not None and self.dependencies:
            raise TypeError(f"{self.path}: a fast answer comes before dependencies could run")
        self.fast = fast
        self.refused_over = refused_over

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.refused_over is not None and await refused_early(
            scope, receive, send, self.refused_over
        ):
            return
        if self.fast is not None and scope["method"] == "GET":
            answer = await self.fast(scope)
            if answer is not None:
                body, headers = answer
                # The headers Starlette's Response(body, media_type="application/json") sends.
                length = (b"content-length", b"%d" % len(body))
                headers = [length, _JSON, *headers]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await super().handle(scope, receive, send)


def add_routes(app: FastAPI, resource: Resource, *, mode: AuthMode) -> None:
    """`resource`'s routes on `app`, in order, each with the dependencies of its rule in `mode`
    (`policy.dependencies`: an operation `RULES` does not name is an error) and its `Endpoint`
    options."""
    for endpoint in resource.endpoints:
        guards = policy.dependencies(mode, endpoint.method, endpoint.path)
        app.router.add_api_route(
            endpoint.path,
            endpoint.handler,
            methods=[endpoint.method],
            response_model=endpoint.response_model,
            responses=endpoint.responses,
            dependencies=guards,
            tags=[resource.tag],
            include_in_schema=endpoint.include_in_schema,
            route_class_override=Route,
        )
        route = app.router.routes[-1]
        assert isinstance(route, Route)  # add_api_route appends the route it made
        # A fast answer is for what anyone may do (`ANYONE`, no guard): under a rule that asks
        # for a token, every request goes through FastAPI's handling, where the guard runs.
        fast = None if guards else endpoint.fast
        route.configure(fast=fast, refused_over=endpoint.refused_over)
