"""Idempotent POST requests (`Idempotency-Key`), scoped to the organisation.

1. The request takes the key's lock (`locks`: in-process, or Redis with several processes).
2. A stored response for the key (and the same request) is replayed byte for byte, with
   `Idempotent-Replayed: true`; the same key with another request is a 422. With no stored
   response, a request that did not get the lock is a duplicate of one still running: 409
   `idempotency_in_progress` (or 422 if its body differs).
3. The request runs. Its 2xx response is stored *in the same transaction* as what it created or
   charged (the service calls the `Recorder` it is given inside its last transaction), so a process
   that dies after that commit leaves a key that replays, never one that runs again; and since the
   response is inserted under the key's primary key, of two attempts that both ran (a lock lost to
   an expiry or a Redis failover) only one commits; the other's transaction rolls back and it
   answers with the winner's response.
4. A request that fails (any non-2xx) stores nothing: nothing was created or charged, so a retry
   runs again.

Responses are kept 24 hours from the first request. Rate limiting runs before all this (the caller
dependency), so a replay uses a rate-limit slot like any request; it never charges or creates.
"""

import hashlib
import logging
import math
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import Response

from postengine.auth.authenticator import Caller
from postengine.config import Settings
from postengine.context import AppContext, get_ctx
from postengine.envelope import extra_headers, meta, ok
from postengine.errors import ValidationFailed
from postengine.idempotency import Recorder, repository
from postengine.idempotency.errors import ClaimLost, IdempotencyInProgress, IdempotencyKeyMismatch
from postengine.kit.clock import to_datetime
from postengine.ops import metrics

log = logging.getLogger("postengine.idempotency")

HEADER = "idempotency-key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
# A 409's Retry-After: a generation usually ends within seconds, so retry soon rather than at the
# end of a lock that only lasts that long when its holder died.
IN_PROGRESS_RETRY_AFTER = 2
# How long a lock outlives a generation's deadline (a live request ends within its deadline).
LOCK_MARGIN_SECONDS = 60.0


@dataclass
class Claim:
    """This request holds the key's lock and may store its response."""

    org_id: str
    key: str
    endpoint: str
    fingerprint: str
    token: str
    request: Request
    ttl: timedelta
    now_seconds: float
    response: tuple[int, bytes] | None = field(default=None)

    def record(self, conn: Connection, status: int, data: Any) -> None:
        body = orjson.dumps({"data": data, "error": None, "meta": meta(self.request)})
        created = to_datetime(self.now_seconds)
        stored = repository.Response(
            self.org_id, self.key, self.endpoint, self.fingerprint, status, body, created, created + self.ttl
        )
        if not repository.insert(conn, stored):
            raise ClaimLost(f"another request stored a response for an idempotency key of {self.org_id}")
        self.response = (status, body)


Handler = Callable[[Recorder | None], Awaitable[tuple[int, Any]]]


async def respond(request: Request, caller: Caller, handler: Handler) -> Response:
    """Run `handler` (which returns status and `data`) once per `Idempotency-Key`; without the header,
    just run it."""
    key = key_of(request)
    if key is None:
        status, data = await handler(None)
        return ok(request, data, status=status)
    ctx = get_ctx(request)
    endpoint = f"{request.method} {request.url.path}"
    fingerprint = fingerprint_of(endpoint, await request.body())
    token = secrets.token_hex(16)
    name = lock_name(caller.org_id, key)
    held = await ctx.locks.acquire(name, token, (fingerprint, endpoint), lock_seconds(ctx.settings))
    if held is not None:
        # Someone holds the key: a duplicate still running, or just a concurrent replay.
        replay = await _stored(ctx, request, caller.org_id, key, fingerprint)
        if replay is not None:
            return replay
        if held.fingerprint != fingerprint:
            raise IdempotencyKeyMismatch(held.endpoint)
        raise IdempotencyInProgress(max(1, min(IN_PROGRESS_RETRY_AFTER, math.ceil(held.seconds_left))))
    try:
        # Looked up under the lock, so a holder that stored its response and let go just before is seen.
        replay = await _stored(ctx, request, caller.org_id, key, fingerprint)
        if replay is not None:
            return replay
        claim = Claim(
            caller.org_id,
            key,
            endpoint,
            fingerprint,
            token,
            request,
            timedelta(seconds=ctx.settings.idempotency_ttl_seconds),
            ctx.clock.time(),
        )
        try:
            await handler(claim.record)
        except ClaimLost:
            # Another attempt with this key committed first (our lock had been lost): its answer is
            # the answer, and everything this attempt did was rolled back (or refunded).
            replay = await _stored(ctx, request, caller.org_id, key, fingerprint)
            if replay is None:
                raise IdempotencyInProgress(IN_PROGRESS_RETRY_AFTER) from None
            return replay
        # Every handler's service records its response inside its last transaction (`Recorder`).
        assert claim.response is not None, "the service did not record its response"
        status, body = claim.response
        return Response(body, status, headers=extra_headers(request), media_type="application/json")
    finally:
        await ctx.locks.release(name, token)  # shielded from cancellation where it awaits (Redis)


def lock_name(org_id: str, key: str) -> str:
    return f"{org_id}:{hashlib.sha256(key.encode()).hexdigest()}"


def lock_seconds(settings: Settings) -> float:
    return settings.generation_deadline_seconds + LOCK_MARGIN_SECONDS


async def _stored(
    ctx: AppContext, request: Request, org_id: str, key: str, fingerprint: str
) -> Response | None:
    now = to_datetime(ctx.clock.time())
    stored = await ctx.db.run_read(lambda conn: repository.find(conn, org_id, key, now))
    if stored is None:
        return None
    if stored.fingerprint != fingerprint:
        raise IdempotencyKeyMismatch(stored.endpoint)
    metrics.idempotent_replay()
    headers = {**extra_headers(request), REPLAYED_HEADER: "true"}
    return Response(stored.body, stored.status_code, headers=headers, media_type="application/json")


def key_of(request: Request) -> str | None:
    values = request.headers.getlist(HEADER)
    if not values:
        return None
    if len(values) > 1:
        raise _bad_key("Send one Idempotency-Key header, not several.")
    value = values[0]
    if not 1 <= len(value) <= MAX_KEY_LENGTH:
        raise _bad_key(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters long.")
    if not value.isascii() or not value.isprintable():
        raise _bad_key("Idempotency-Key may contain printable ASCII characters only (a UUID is a good key).")
    return value


def _bad_key(message: str) -> ValidationFailed:
    return ValidationFailed([{"field": "Idempotency-Key", "message": message}])


def fingerprint_of(endpoint: str, body: bytes) -> str:
    """The endpoint and the body; a JSON body by its content (key order and spacing do not matter)."""
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        canonical = body
    digest = hashlib.sha256(endpoint.encode())
    digest.update(b"\n")
    digest.update(canonical)
    return digest.hexdigest()


async def sweep_expired(ctx: AppContext) -> int:
    """Delete keys past their 24 hours."""
    now = to_datetime(ctx.clock.time())
    deleted = await ctx.db.run(lambda conn: repository.delete_expired(conn, now))
    if deleted:
        log.info("deleted %d expired idempotency keys", deleted)
    return deleted
