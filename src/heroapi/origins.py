"""Browser origins, as a browser sends them in `Origin`: what each entry of
`HEROAPI_CORS_ORIGINS` is checked and normalized to, so that `https://App.example:443/` matches
the requests of `https://app.example`."""

from urllib.parse import urlsplit


def browser_origin(value: str) -> str:
    """A browser's origin as it sends it in `Origin`: scheme://host[:port], lowercase, without
    a default port or a trailing slash (`https://App.example:443/` is `https://app.example`)."""
    problem = f"{value!r} is not an origin (scheme://host[:port], e.g. https://app.example.com)"
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        raise ValueError(problem) from None
    if (
        parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or "@" in parts.netloc
    ):
        raise ValueError(problem)
    scheme = parts.scheme.lower()
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default_port = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" + (f":{port}" if port not in (None, default_port) else "")
