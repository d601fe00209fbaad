"""The response envelope `{data, error, meta}` (API.md §1.1), serialised with orjson."""

from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from postengine.kit.clock import iso


def meta(request: Request) -> dict[str, str]:
    return {"request_id": request_id(request), "timestamp": iso(datetime.now(UTC)) or ""}


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def extra_headers(request: Request) -> dict[str, str]:
    """Headers every response to this request carries (rate-limit headers, once admitted)."""
    headers: dict[str, str] | None = request.scope.get("state", {}).get("response_headers")
    return headers or {}


class EnvelopeResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def ok(request: Request, data: Any, *, status: int = 200) -> EnvelopeResponse:
    return EnvelopeResponse(
        {"data": data, "error": None, "meta": meta(request)},
        status_code=status,
        headers=extra_headers(request),
    )


def error_response(
    request: Request, status: int, error: dict[str, Any], headers: dict[str, str] | None = None
) -> EnvelopeResponse:
    return EnvelopeResponse(
        {"data": None, "error": error, "meta": meta(request)},
        status_code=status,
        headers={**extra_headers(request), **(headers or {})},
    )
