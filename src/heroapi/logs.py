"""heroapi's log lines: one JSON object per line on stderr, each with its request's id."""

import contextvars
import json
import logging
import logging.config
import time
from typing import Any, Final

# The id of the request being answered (set by `middleware.observe`), on every log line.
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every log record (`%(request_id)s`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class JSONFormatter(logging.Formatter):
    """One JSON object per line: what log collectors parse without configuration. The time is
    the access log's (UTC, milliseconds), so every line of a server sorts and parses alike."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry: dict[str, Any] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        else:
            entry["message"] = record.getMessage()
            entry["request_id"] = getattr(record, "request_id", request_id_var.get())
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, separators=(",", ":"), default=str)


# uvicorn's loggers: "uvicorn.error" (start-up, shutdown, errors; it propagates to "uvicorn")
# and "uvicorn.access" (off under `heroapi serve`, which writes its own access lines).
_UVICORN_LOGGERS: Final = ("uvicorn", "uvicorn.access")


def log_config(level: str = "INFO") -> dict[str, Any]:
    """For `logging.config.dictConfig` and uvicorn's `log_config`: heroapi's loggers and
    uvicorn's write JSON lines to stderr through `JSONFormatter`."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JSONFormatter}},
        "filters": {"request_id": {"()": RequestIdFilter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "json",
                "filters": ["request_id"],
            }
        },
        "loggers": {
            name: {"handlers": ["stderr"], "level": level, "propagate": False}
            for name in ("heroapi", *_UVICORN_LOGGERS)
        }
        | {"uvicorn.error": {"level": level, "propagate": True}},
    }


def configure_logging(level: str = "INFO") -> None:
    """heroapi's loggers write JSON lines to stderr; so do uvicorn's when they still have
    uvicorn's own format (`uvicorn heroapi.main:app`; a `--log-config` of the user's is kept)."""
    config = log_config(level)
    if not _uvicorn_has_its_default_format():
        for name in (*_UVICORN_LOGGERS, "uvicorn.error"):
            del config["loggers"][name]
    elif not logging.getLogger("uvicorn.access").handlers:
        # `uvicorn --no-access-log` emptied it: it stays so (left out here, dictConfig would make
        # it propagate to "uvicorn", whose handler writes every line again).
        config["loggers"]["uvicorn.access"] = {"handlers": [], "propagate": False}
    logging.config.dictConfig(config)


def _uvicorn_has_its_default_format() -> bool:
    handlers = logging.getLogger("uvicorn").handlers
    module = "uvicorn.logging"
    return bool(handlers) and all(
        type(handler.formatter).__module__ in (module, __name__) for handler in handlers
    )
