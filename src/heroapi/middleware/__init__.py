"""Every middleware of the app, and the one place that says in which order they wrap it.

Outermost first (`install_middleware`):

1. `proxies.ProxiedRequests` (only with HEROAPI_TRUSTED_PROXIES): everything else sees the
   client, not the proxy.
2. `observe.ObservabilityMiddleware`: request id, access log, metrics, HEAD; it wraps all the
   rest, so it times and counts it all.
3. `body_limit.BodyLimit`: the 413 for a body over HEROAPI_MAX_BODY_SIZE.
4. Starlette's CORS (only with HEROAPI_CORS_ORIGINS).
5. `compression.GzipIfAccepted` (unless HEROAPI_GZIP_MINIMUM_SIZE is 0).
"""

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.middleware import Middleware

from heroapi.config import Settings
from heroapi.middleware.body_limit import BodyLimit
from heroapi.middleware.compression import GzipIfAccepted
from heroapi.middleware.observe import ObservabilityMiddleware
from heroapi.middleware.proxies import ProxiedRequests

# The response headers the API documents that a browser hides from a script of another origin
# unless they are named (Content-Type, Content-Length and Last-Modified it shows anyway).
CORS_EXPOSED_HEADERS = [
    "Link",
    "X-Total-Count",
    "X-Total-Count-At-Least",
    "Preference-Applied",
    "Retry-After",
    "RateLimit",
    "RateLimit-Policy",
    "Last-Modified",
    "WWW-Authenticate",
    "X-Request-ID",
]


def middleware_stack(settings: Settings) -> list[Middleware]:
    """The app's middleware for `settings`, outermost first."""
    stack = []
    if settings.trusted_proxies:
        stack.append(Middleware(ProxiedRequests, trusted_proxies=settings.trusted_proxies))
    stack.append(Middleware(ObservabilityMiddleware, access_log=settings.access_log))
    stack.append(
        Middleware(
            BodyLimit,
            max_body_size=settings.max_body_size,
            discard_size=settings.body_discard_size,
            discard_seconds=settings.body_discard_seconds,
        )
    )
    if settings.cors_origins:
        stack.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["*"],
                allow_headers=["*"],
                expose_headers=CORS_EXPOSED_HEADERS,
            )
        )
    if settings.gzip_minimum_size:
        stack.append(Middleware(GzipIfAccepted, minimum_size=settings.gzip_minimum_size))
    return stack


def install_middleware(app: FastAPI, settings: Settings) -> None:
    """Wrap `app` in `middleware_stack(settings)`."""
    for cls, args, kwargs in reversed(middleware_stack(settings)):
        app.add_middleware(cls, *args, **kwargs)
