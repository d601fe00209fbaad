"""The outermost layer of every request: request id, body limit, access log, request metrics,
last-resort 500.

A pure ASGI middleware (no BaseHTTPMiddleware: it would buffer and cost a task per request).
"""

import logging
import os
import random
import re
import time

import anyio
import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from postengine.errors import ApiError, InternalError, PayloadTooLarge, RequestTimeout
from postengine.kit.clock import iso, utcnow
from postengine.logs import access, request_id_var
from postengine.ops.metrics import observe_request, route_label

error_log = logging.getLogger("postengine.error")
# A client's own request id, logged beside ours; never one that carries an API key (a client that
# sends its key as the request id must not get it written to the logs).
_CLIENT_ID = re.compile(r"(?!(?i:.*pe_live_))[A-Za-z0-9._:-]{1,128}")


UPLOAD_PATH_PREFIX = "/uploads/"
# A request body must bring at least this many bytes (or its end) in every window of
# `body_idle_timeout` seconds (see `_paced`): about 2 KiB/s with the default 30 s window.
BODY_PROGRESS_BYTES = 64 * 1024

# Request ids need to be unique, not secret: a generator seeded from the OS once per process, not a
# system call per request (`secrets.token_hex` was 2 % of a cached list page).
_ids = random.Random(os.urandom(32))  # noqa: S311 (unique, not secret)
os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(32)))


def new_request_id() -> str:
    return f"req_{_ids.getrandbits(96):024x}"


# Security headers (OWASP Secure Headers Project) on every response. JSON (the API, its errors, the
# probes, the OpenAPI document) also gets a CSP that allows nothing and, unless the handler chose
# otherwise, `no-store`: responses carry an organisation's data. HTML (`/docs`: Swagger UI loads
# its script and styles from a CDN) gets no CSP, and neither does media (`/cdn` keeps its own
# immutable Cache-Control; a CSP on an image stops some browsers showing it when opened directly).
# Precomputed for every combination of what the response already has: this runs once per response.
_FRAMING = ((b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer"))
_NOSNIFF = (b"x-content-type-options", b"nosniff")
_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
_NO_STORE = (b"cache-control", b"no-store")
_SECURITY_HEADERS = {
    (json, cached, sniffed): (
        *_FRAMING,
        *(() if sniffed else (_NOSNIFF,)),
        *((_CSP,) if json else ()),
        *((_NO_STORE,) if json and not cached else ()),
    )
    for json in (False, True)
    for cached in (False, True)
    for sniffed in (False, True)
}


def _security_headers(headers: list[tuple[bytes, bytes]]) -> tuple[tuple[bytes, bytes], ...]:
    """What to add to a response's headers (lower-case names, as ASGI has them)."""
    json = cached = sniffed = False
    for name, value in headers:
        if name == b"content-type":
            json = value.startswith(b"application/json")
        elif name == b"cache-control":
            cached = True
        elif name == b"x-content-type-options":
            sniffed = True
    return _SECURITY_HEADERS[json, cached, sniffed]


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, body_idle_timeout: float = 30.0) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_idle_timeout = body_idle_timeout

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
                headers = list(message.get("headers", []))
                message["headers"] = [
                    *headers,
                    (b"x-request-id", request_id.encode()),
                    *_security_headers(headers),
                ]
            await send(message)

        try:
            length = _header(scope, b"content-length")
            if scope["path"].startswith(UPLOAD_PATH_PREFIX):
                # The signed upload URL takes file bytes, not JSON: `media.receive` streams them to
                # disk and caps them at the size declared when the upload started (at most 500 MiB).
                # No total deadline (a large file on a slow line takes long), only `_paced`.
                await self.app(scope, self._paced(receive), send_with_id)
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
        """Counts body bytes as they arrive, so a chunked body without Content-Length is cut off too;
        and cuts off a body that stops coming (`_paced`)."""
        received = 0
        limit = self.max_body_bytes
        paced = self._paced(receive)

        async def limited_receive() -> Message:
            nonlocal received
            message = await paced()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _too_large(limit)
            return message

        return limited_receive

    def _paced(self, receive: Receive) -> Receive:
        """Cuts off a body that stalls or dribbles (slowloris): unless the body ends first, the client
        must bring `BODY_PROGRESS_BYTES` within `body_idle_timeout` seconds of waiting for it, again
        and again, else 408 `request_timeout` (with `Connection: close`, so the server drops the
        connection). Only time spent waiting for the client counts, never the app's own work between
        reads. uvicorn has no such deadline: its `timeout_keep_alive` only runs between requests, so a
        stalled body would hold the connection, the request's task and whatever the endpoint holds
        (a database connection, a temp file) for ever. Progress windows, not one total deadline, so
        large uploads on slow lines pass."""
        window = self.body_idle_timeout
        waited = 0.0  # seconds spent waiting for the client since its last progress
        progress = 0
        finished = False

        async def paced_receive() -> Message:
            nonlocal waited, progress, finished
            if finished:
                # After the body the app may wait for the client to disconnect (streaming responses
                # do): that wait is not the client's to hurry.
                return await receive()
            started = time.monotonic()
            try:
                with anyio.fail_after(window - waited):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout(
                    f"The request body arrived too slowly (less than {BODY_PROGRESS_BYTES // 1024} KiB "
                    f"in {window:g} seconds), so the request was cut off. Send the body without pausing."
                ) from None
            waited += time.monotonic() - started
            if message["type"] != "http.request" or not message.get("more_body", False):
                finished = True
            else:
                progress += len(message.get("body", b""))
                if progress >= BODY_PROGRESS_BYTES:
                    progress, waited = 0, 0.0
            return message

        return paced_receive


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
