"""Idempotent POST requests (`Idempotency-Key`), scoped to the organisation.

The first request with a key claims it (a `running` row, held for a lease) and runs. Its 2xx
response is stored *in the same transaction* as what the request created or charged (the service
calls the `Recorder` it is given inside its last transaction), so a process that dies after that
commit leaves a key that replays, never one that runs again. Later requests with the key get that
response byte for byte, with `Idempotent-Replayed: true`, until the key expires (24 h after the first
request). A request that fails (any non-2xx) releases its key: nothing was created or charged, so a
retry runs again. A key held by a process that died is taken over once its lease has run out.

Rate limiting runs before this (the caller dependency), so a replay uses a rate-limit slot like any
request; a replay itself never charges credits or creates anything.
"""

import hashlib
import logging
import math
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import anyio
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
# end of a lease that only matters when the holder died.
IN_PROGRESS_RETRY_AFTER = 2
# How long a claim outlives a generation's deadline before another request may take it over.
LEASE_MARGIN_SECONDS = 60.0


@dataclass
class Claim:
    """This request holds the key."""

    org_id: str
    key: str
    token: str
    request: Request
    response: tuple[int, bytes] | None = field(default=None)

    def record(self, conn: Connection, status: int, data: Any) -> None:
        body = orjson.dumps({"data": data, "error": None, "meta": meta(self.request)})
        if not repository.finish(
            conn, org_id=self.org_id, key=self.key, token=self.token, status_code=status, body=body
        ):
            raise ClaimLost(f"idempotency key lease of {self.org_id} lost")
        self.response = (status, body)


@dataclass(frozen=True, slots=True)
class Replay:
    status: int
    body: bytes


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
    outcome = await _claim(ctx, caller.org_id, key, endpoint, fingerprint, request)
    if isinstance(outcome, Replay):
        metrics.idempotent_replay()
        headers = {**extra_headers(request), REPLAYED_HEADER: "true"}
        return Response(outcome.body, outcome.status, headers=headers, media_type="application/json")
    claim = outcome
    try:
        status, data = await handler(claim.record)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await _release(ctx, claim)
        raise
    if claim.response is None:  # the service did not record in its own transaction: record now
        try:
            await ctx.db.run(lambda conn: claim.record(conn, status, data))
        except ClaimLost:
            log.warning("idempotency key of %s taken over before its response was stored", caller.org_id)
            return ok(request, data, status=status)
    assert claim.response is not None
    status, body = claim.response
    return Response(body, status, headers=extra_headers(request), media_type="application/json")


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


def lease_seconds(settings: Settings) -> float:
    return settings.generation_deadline_seconds + LEASE_MARGIN_SECONDS


async def _claim(
    ctx: AppContext, org_id: str, key: str, endpoint: str, fingerprint: str, request: Request
) -> Claim | Replay:
    now = to_datetime(ctx.clock.time())
    token = secrets.token_hex(16)
    locked_until = now + timedelta(seconds=lease_seconds(ctx.settings))
    expires_at = now + timedelta(seconds=ctx.settings.idempotency_ttl_seconds)
    new = repository.NewClaim(
        org_id,
        key,
        endpoint,
        fingerprint,
        token,
        created_at=now,
        locked_until=locked_until,
        expires_at=expires_at,
    )

    def claim(conn: Connection) -> Replay | None:
        stored = repository.find(conn, org_id, key)
        if stored is None:
            if repository.insert_new(conn, new):
                return None
            stored = repository.find(conn, org_id, key)  # PostgreSQL: a concurrent request inserted it
            if stored is None:
                raise _in_progress(now, now)
        if stored.expires_at <= now:
            if repository.restart(conn, new, stored.token):
                return None
            raise _in_progress(now, now)
        if stored.fingerprint != fingerprint:
            raise IdempotencyKeyMismatch(stored.endpoint)
        if stored.status_code is not None and stored.body is not None:
            return Replay(stored.status_code, stored.body)
        if stored.locked_until > now:
            raise _in_progress(stored.locked_until, now)
        # Its holder's lease ran out: that process died (a live one finishes within its deadline).
        if repository.take_over(
            conn, org_id=org_id, key=key, old_token=stored.token, token=token, locked_until=locked_until
        ):
            log.warning("idempotency key of %s taken over after its lease ran out", org_id)
            return None
        raise _in_progress(now, now)

    replay = await ctx.db.run(claim)
    return replay or Claim(org_id, key, token, request)


def _in_progress(locked_until: datetime, now: datetime) -> IdempotencyInProgress:
    left = (locked_until - now).total_seconds()
    return IdempotencyInProgress(max(1, min(IN_PROGRESS_RETRY_AFTER, math.ceil(left))))


async def _release(ctx: AppContext, claim: Claim) -> None:
    try:
        await ctx.db.run(
            lambda conn: repository.release(conn, org_id=claim.org_id, key=claim.key, token=claim.token)
        )
    except Exception:
        # The key stays `running` until its lease runs out; then a retry takes it over.
        log.exception("could not release an idempotency key of %s", claim.org_id)


async def sweep_expired(ctx: AppContext) -> int:
    """Delete keys past their 24 hours."""
    now = to_datetime(ctx.clock.time())
    deleted = await ctx.db.run(lambda conn: repository.delete_expired(conn, now))
    if deleted:
        log.info("deleted %d expired idempotency keys", deleted)
    return deleted
