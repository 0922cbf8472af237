"""/docs (Swagger UI) and /redoc, with their assets served by heroapi itself.

FastAPI's defaults load Swagger UI, ReDoc and Google Fonts from CDNs, so the pages are blank on a
host without Internet access. The same assets come installed with the `fastapi-offline` package;
heroapi serves them under /static/docs and points the pages there.

Since nothing comes from elsewhere, the pages say so to the browser: a Content-Security-Policy
that allows heroapi's own origin only (a script injected into a page, e.g. through a crafted
OpenAPI description, can neither run nor send anything out), and no framing by other sites.
"""

import base64
import hashlib
import re
from functools import lru_cache
from pathlib import Path
from typing import Final

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS: Final = Path(fastapi_offline.__file__).with_name("static")
ASSETS_URL: Final = "/static/docs"
OAUTH2_REDIRECT_URL: Final = "/docs/oauth2-redirect"
# ReDoc's sidebar shows a "by Redocly" logo it fetches from a CDN, with no option to turn it off:
# the script is served with that address replaced by an empty image.
REDOC_LOGO_URL: Final = "https://cdn.redoc.ly/redoc/logo-mini.svg"
EMPTY_IMAGE: Final = "data:image/gif;base64,R0lGODlhAQABAAAAACH5BAEKAAEALAAAAAABAAEAAAICTAEAOw=="


# The pages' own inline scripts and styles, allowed one by one by their hash, not wholesale.
_INLINE: Final = re.compile(rb"<(script|style)>(.*?)</\1>", re.DOTALL)
# Images: ReDoc's logo is replaced by a data: image, and Swagger UI's stylesheet draws its icons
# with data: SVGs. Workers: ReDoc runs its search in a worker made from a blob: of its own code.
_POLICY: Final = (
    "default-src 'self'; img-src 'self' data:; worker-src 'self' blob:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@lru_cache(maxsize=16)  # one page per root path, the same bytes at every request
def _content_security_policy(page: bytes, *, style_inline: bool) -> str:
    """The policy for `page`: its inline scripts (and styles) allowed by their SHA-256."""
    hashes: dict[bytes, list[str]] = {b"script": [], b"style": []}
    for match in _INLINE.finditer(page):
        digest = base64.b64encode(hashlib.sha256(match[2]).digest()).decode()
        hashes[match[1]].append(f"'sha256-{digest}'")
    scripts = " ".join(["'self'", *hashes[b"script"]])
    # ReDoc's styled-components write their CSS into <style> elements at run time, which no hash
    # can name. (A hash listed beside 'unsafe-inline' would turn 'unsafe-inline' off.)
    styles = " ".join(["'self'", *(["'unsafe-inline'"] if style_inline else hashes[b"style"])])
    return f"{_POLICY}; script-src {scripts}; style-src {styles}"


def _hardened(page: HTMLResponse, *, style_inline: bool = False) -> HTMLResponse:
    """`page` with the headers that keep it to heroapi's own content and out of other sites'
    frames."""
    policy = _content_security_policy(bytes(page.body), style_inline=style_inline)
    page.headers["Content-Security-Policy"] = policy
    page.headers["X-Frame-Options"] = "DENY"  # frame-ancestors, for browsers without CSP 2
    page.headers["X-Content-Type-Options"] = "nosniff"
    return page


def _offline_redoc_script() -> bytes:
    script = (ASSETS / "redoc.standalone.js").read_text(encoding="utf-8")
    return script.replace(REDOC_LOGO_URL, EMPTY_IMAGE).encode("utf-8")


def install_docs(app: FastAPI) -> None:
    """Serve /docs, /docs/oauth2-redirect, /redoc and their assets (create the app with
    `docs_url=None, redoc_url=None`)."""
    redoc_script = _offline_redoc_script()

    # Before the mount, which would serve the original file.
    @app.get(f"{ASSETS_URL}/redoc.standalone.js", include_in_schema=False)
    async def redoc_standalone_js() -> Response:
        return Response(
            redoc_script,
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT_URL}",
        )
        return _hardened(page)

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return _hardened(get_swagger_ui_oauth2_redirect_html())

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
        return _hardened(page, style_inline=True)
