"""heroapi: the FastAPI SQL tutorial's Hero and Users/Items APIs, built for real use."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("heroapi")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
