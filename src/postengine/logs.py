"""Logging: JSON lines (structlog) for every logger, uvicorn's included. Never log headers.

Every line written while a request is handled carries its `request_id` (set by the middleware in
a context variable, so the stdlib loggers of every module get it without passing it around)."""

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog

_access = structlog.get_logger("postengine.access")
# The id of the request being handled in this context (task, and the threads it hands work to).
request_id_var: ContextVar[str | None] = ContextVar("postengine_request_id", default=None)
# One access line per request is on the hot path: with JSON logs on, it is serialised directly
# (about 2 µs) instead of through the logging machinery (about 18 µs).
_fast_access = False
_access_enabled = True


def access(**fields: Any) -> None:
    if not _access_enabled:
        return
    if _fast_access:
        line = {
            "event": "request",
            **fields,
            "level": "info",
            "logger": "postengine.access",
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        sys.stderr.write(orjson.dumps(line).decode() + "\n")
    else:
        _access.info("request", **fields)


def _drop_color_message(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    event.pop("color_message", None)  # uvicorn's ANSI-coloured duplicate of the message
    return event


def _add_request_id(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    request_id = request_id_var.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


def configure_logging(*, json: bool = True, level: str = "info") -> None:
    global _fast_access, _access_enabled
    _fast_access = json
    _access_enabled = logging.getLevelName(level.upper()) <= logging.INFO
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        _add_request_id,
        _drop_color_message,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # our middleware logs requests, with ids
    # httpx logs every outgoing request line at INFO, query string included: provider result URLs
    # carry signatures there. Our adapters log what matters, redacted.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
