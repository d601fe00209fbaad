"""The outermost layer of every request: request id, body limit, access log, request metrics,
last-resort 500.

A pure ASGI middleware (no BaseHTTPMiddleware: it would buffer and cost a task per request).
"""

import logging
import os
import random
import re
import time

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from postengine.errors import ApiError, InternalError, PayloadTooLarge
from postengine.kit.clock import iso, utcnow
from postengine.logs import access, request_id_var
from postengine.ops.metrics import observe_request, route_label

error_log = logging.getLogger("postengine.error")
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


UPLOAD_PATH_PREFIX = "/uploads/"

# Request ids need to be unique, not secret: a generator seeded from the OS once per process, not a
# system call per request (`secrets.token_hex` was 2 % of a cached list page).
_ids = random.Random(os.urandom(32))  # noqa: S311 (unique, not secret)
os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(32)))


def new_request_id() -> str:
    return f"req_{_ids.getrandbits(96):024x}"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        request_id_token = request_id_var.set(request_id)  # every log line of this request carries it
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        client_id = _header(scope, b"x-request-id")
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            length = _header(scope, b"content-length")
            if scope["path"].startswith(UPLOAD_PATH_PREFIX):
                # The signed upload URL takes file bytes, not JSON: `media.receive` streams them to
                # disk and caps them at the size declared when the upload started (at most 500 MiB).
                await self.app(scope, receive, send_with_id)
            elif length is not None and length.isdigit() and int(length) > self.max_body_bytes:
                await _send_error(send_with_id, request_id, _too_large(self.max_body_bytes))
            else:
                await self.app(scope, self._limited(receive), send_with_id)
        except Exception:
            error_log.exception("unhandled error", extra={"request_id": request_id})
            if not response_started:
                await _send_error(
                    send_with_id,
                    request_id,
                    InternalError("An unexpected error occurred. It has been logged; retry later."),
                )
        finally:
            elapsed = time.perf_counter() - started
            try:
                access(
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                    request_id=request_id,
                    client_request_id=client_id if client_id and _CLIENT_ID.fullmatch(client_id) else None,
                )
                # Labelled by the matched route's template (`/api/v1/media/{media_id}`), never by the
                # raw path, which carries ids.
                observe_request(scope["method"], route_label(scope), status, elapsed)
            finally:
                request_id_var.reset(request_id_token)

    def _limited(self, receive: Receive) -> Receive:
        """Counts body bytes as they arrive, so a chunked body without Content-Length is cut off too."""
        received = 0
        limit = self.max_body_bytes

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _too_large(limit)
            return message

        return limited_receive


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The request body is larger than the limit of {_human(limit)}.", details={"max_bytes": limit}
    )


def _human(size: int) -> str:
    if size % (1024 * 1024) == 0:
        return f"{size // (1024 * 1024)} MiB"
    return f"{size // 1024} KiB" if size % 1024 == 0 else f"{size} bytes"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def _send_error(send: Send, request_id: str, error: ApiError) -> None:
    """The envelope, for the two cases where no app (and so no exception handler) is involved."""
    body = orjson.dumps(
        {"data": None, "error": error.body(), "meta": {"request_id": request_id, "timestamp": iso(utcnow())}}
    )
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
