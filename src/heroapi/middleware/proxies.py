"""Requests a trusted proxy forwards, seen as their client sent them (`addresses.py`)."""

from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from heroapi.addresses import PROXIED, Clients, trusted_peer

_SCHEMES: Final = frozenset({"http", "https"})


class ProxiedRequests:
    """Pure ASGI, outermost: a request whose peer is one of `HEROAPI_TRUSTED_PROXIES` gets the
    client `X-Forwarded-For` names and the scheme `X-Forwarded-Proto` says, and `PROXIED`.
    Installed only when proxies are trusted: no other request pays for it."""

    def __init__(self, app: ASGIApp, *, trusted_proxies: list[str]) -> None:
        self.app = app
        self._clients = Clients(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and trusted_peer(
            scope, self._clients.trusted_proxies
        ):
            scope = dict(scope)
            client = self._clients.address(scope)
            if client is not None:
                scope["client"] = (str(client), 0)
            for name, value in scope["headers"]:
                if name == b"x-forwarded-proto":
                    proto = value.decode("latin-1").split(",")[0].strip().lower()
                    if proto in _SCHEMES:
                        scope["scheme"] = proto
                    break
            scope[PROXIED] = True
        await self.app(scope, receive, send)
