"""The URL a request was sent to, as its client sees it: for links a client follows as they are.

The scheme and host are the request's own (`Host`), unless a proxy of
`HEROAPI_TRUSTED_PROXIES` forwarded it (`middleware.proxies`): then `X-Forwarded-Proto`
and `X-Forwarded-Host` say what the client asked the proxy for. From any other peer they are
ignored (a client could otherwise make the links of an answer a shared cache keeps point
anywhere). The path is the request's whole path,
root path included (an ASGI server adds it: `uvicorn --root-path`).
"""

import functools
import re
from typing import Final
from urllib.parse import quote

from starlette.types import Scope

from heroapi.addresses import PROXIED

# A host as a URL carries it: a name or an IPv4 address, or an IPv6 one in brackets; a port.
_HOST: Final = re.compile(r"(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


def _server(scope: Scope, scheme: str) -> str:
    """The address the request came in on, for a request with no usable `Host`."""
    server = scope.get("server")
    if not server:
        return "localhost"
    host, port = server
    host = f"[{host}]" if ":" in host else host
    default = 443 if scheme == "https" else 80
    return host if port is None or port == default else f"{host}:{port}"


def request_url(scope: Scope) -> str:
    """The request's URL without its query: `https://api.example/heroes/`."""
    scheme = scope.get("scheme", "http")
    host = _header(scope, b"host")
    if scope.get(PROXIED):  # its scheme is already the one the proxy reported
        forwarded = _header(scope, b"x-forwarded-host")
        if forwarded is not None:
            host = forwarded.split(",")[0].strip()
    if host is None or not _HOST.fullmatch(host):
        host = _server(scope, scheme)
    return f"{scheme}://{host}{_quoted(scope['path'])}"


@functools.lru_cache(maxsize=64)
def _quoted(path: str) -> str:
    """The path as a URL carries it (a list's path is one of a few, root path included)."""
    return quote(path)
