"""What the security tests share: the classified route inventory, API keys of every kind, a
rate-limit store that records admissions, log capture, and secret-leak detection."""

import io
import logging
import re
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import structlog
from fastapi import FastAPI
from PIL import Image
from sqlalchemy import select

from postengine import logs
from postengine.app import create_app
from postengine.auth import keys as key_service
from postengine.auth.scopes import Scope
from postengine.config import Settings
from postengine.db import Database
from postengine.generation.models import ImageModel
from postengine.generation.providers import ImageProvider, ImageRequest
from postengine.kit.clock import Clock, to_datetime
from postengine.models import Base
from postengine.ratelimit.rules import RateLimitWindow
from postengine.ratelimit.store import Admission, RateLimitStore, WindowState
from tests.conftest import SECRET

# ---------------------------------------------------------------------------------------------------
# The route inventory. Every (method, path) the app serves is in exactly one of these two tables;
# `test_access_matrix.test_every_route_is_classified` fails for a route that is in neither, so a new
# endpoint cannot ship without someone deciding who may call it.

# API.md §2: the scope each authenticated endpoint needs (None: any valid key).
AUTHENTICATED: dict[tuple[str, str], Scope | None] = {
    ("GET", "/api/v1/me"): None,
    ("POST", "/api/v1/ai/generate-image"): Scope.AI,
    ("POST", "/api/v1/media/upload"): Scope.WRITE,
    ("POST", "/api/v1/media/upload-from-url"): Scope.WRITE,
    ("POST", "/api/v1/media/{media_id}/complete"): Scope.WRITE,
    ("GET", "/api/v1/media"): Scope.READ,
    ("GET", "/api/v1/media/{media_id}"): Scope.READ,
    ("DELETE", "/api/v1/media/{media_id}"): Scope.WRITE,
    ("GET", "/api/v1/accounts"): Scope.READ,
    ("GET", "/api/v1/accounts/{account_id}"): Scope.READ,
    ("GET", "/api/v1/accounts/{account_id}/health"): Scope.READ,
    ("POST", "/api/v1/posts"): Scope.WRITE,
    ("GET", "/api/v1/posts"): Scope.READ,
    ("GET", "/api/v1/posts/{post_id}"): Scope.READ,
    ("PATCH", "/api/v1/posts/{post_id}"): Scope.WRITE,
    ("DELETE", "/api/v1/posts/{post_id}"): Scope.WRITE,
    ("GET", "/api/v1/posts/{post_id}/results"): Scope.READ,
    ("POST", "/api/v1/posts/{post_id}/retry"): Scope.WRITE,
}

# Routes that take no API key, each with the reason and what protects it instead.
PUBLIC: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "liveness probe: says only that the process answers",
    ("GET", "/readyz"): "readiness probe: names failing checks, no data",
    ("GET", "/metrics"): "Prometheus; Authorization: Bearer PE_METRICS_TOKEN when that is set",
    ("GET", "/cdn/media/{media_id}/{name}"): "media bytes, like a CDN URL: 96 random bits in the id",
    ("HEAD", "/cdn/media/{media_id}/{name}"): "as GET",
    ("PUT", "/uploads/{media_id}"): "signed upload URL: the HMAC signature and expiry are the credential",
    ("GET", "/openapi.json"): "the public API description",
    ("HEAD", "/openapi.json"): "as GET",
    ("GET", "/docs"): "Swagger UI for the public API description",
    ("HEAD", "/docs"): "as GET",
    ("GET", "/docs/oauth2-redirect"): "Swagger UI's OAuth helper page (static)",
    ("HEAD", "/docs/oauth2-redirect"): "as GET",
}

# Path parameters filled with well-formed ids that name nothing: an authenticated request gets past
# the key and scope checks and then fails (404/400) without changing anything.
_PLACEHOLDERS = {
    "media_id": "med_" + "0" * 24,
    "post_id": "00000000-0000-4000-8000-000000000000",
    "account_id": "999999",
    "name": "original.webp",
}


def route_inventory(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path template) the app routes, read from the app itself."""
    try:
        # FastAPI ≥ 0.16x keeps included routers as lazy `_IncludedRouter` entries in `app.routes`;
        # this public helper flattens them into the effective routes with their prefixes.
        from fastapi.routing import iter_route_contexts

        routes: Sequence[Any] = list(iter_route_contexts(app.routes))
    except ImportError:
        routes = app.routes
    found: set[tuple[str, str]] = set()
    for route in routes:
        methods = getattr(route, "methods", None) or {"*"}  # a mount: classify it by hand too
        for method in methods:
            found.add((method, str(route.path)))
    return found


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: _PLACEHOLDERS[m.group(1)], path)


def scopes_lacking(scope: Scope) -> list[frozenset[Scope]]:
    """Every non-empty scope set without `scope`: {write, ai}, {write}, {ai} for `read`."""
    others = [s for s in Scope if s is not scope]
    return [frozenset(others), *(frozenset({s}) for s in others)]


async def add_key(
    db: Database,
    clock: Clock,
    org_id: str,
    scopes: frozenset[Scope] = frozenset(Scope),
    *,
    expires_in: float | None = None,
    name: str = "security test",
) -> tuple[str, str]:
    """A new key of `org_id` (what `postengine keys create` does); returns (key id, secret)."""
    now = to_datetime(clock.time())
    expires_at = now + timedelta(seconds=expires_in) if expires_in is not None else None
    async with db.write() as session:
        key, secret = await key_service.create_key(
            session,
            secret_key=SECRET.encode(),
            org_id=org_id,
            name=name,
            scopes=scopes,
            now=now,
            expires_at=expires_at,
        )
    return key.id, secret


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@dataclass
class RecordingRateLimits:
    """The app's rate-limit store, recording every admission (subject and window names)."""

    inner: RateLimitStore
    admitted: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)

    async def admit(self, subject: str, windows: Sequence[RateLimitWindow]) -> Admission:
        self.admitted.append((subject, tuple(w.name for w in windows)))
        return await self.inner.admit(subject, windows)

    async def peek(self, subject: str, windows: Sequence[RateLimitWindow]) -> tuple[WindowState, ...]:
        return await self.inner.peek(subject, windows)


def record_admissions(app: FastAPI) -> RecordingRateLimits:
    ctx = app.state.ctx
    recorder = RecordingRateLimits(ctx.rate_limits)
    ctx.rate_limits = recorder
    return recorder


# ---------------------------------------------------------------------------------------------------
# Logs


class _KeepEverything(logging.Handler):
    """Keeps, for every record, everything a handler could write: message, arguments, extra
    fields and the formatted traceback, whatever the formatter would have left out."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self._tracebacks = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        parts = [repr(record.__dict__)]
        try:
            parts.append(record.getMessage())
        except Exception as exc:  # a bad format string is still evidence of what was passed
            parts.append(f"<unformattable: {exc!r}>")
        if record.exc_info:
            parts.append(self._tracebacks.formatException(record.exc_info))
        if record.stack_info:
            parts.append(record.stack_info)
        self.lines.append("\n".join(parts))


@dataclass
class CapturedLogs:
    stream: io.StringIO  # what the configured handler (and the fast access log) wrote
    kept: _KeepEverything

    def text(self) -> str:
        return self.stream.getvalue() + "\n" + "\n".join(self.kept.lines)


@contextmanager
def captured_logs(*, json: bool) -> Iterator[CapturedLogs]:
    """The real logging set-up (`configure_logging`) at DEBUG, writing into a buffer, plus a
    handler on the root logger that keeps every record whole; the previous logging state is put
    back afterwards. Enter it in the test body (pytest swaps `sys.stderr` around fixtures)."""
    stream = io.StringIO()
    root = logging.getLogger()
    named = ("uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "httpcore")
    saved_loggers = {
        name: (
            logging.getLogger(name).handlers[:],
            logging.getLogger(name).propagate,
            logging.getLogger(name).level,
            logging.getLogger(name).disabled,
        )
        for name in named
    }
    saved = (root.handlers[:], root.level, structlog.get_config(), logs._fast_access, logs._access_enabled)
    saved_stderr, sys.stderr = sys.stderr, stream
    kept = _KeepEverything()
    try:
        logs.configure_logging(json=json, level="debug")
        root.addHandler(kept)
        yield CapturedLogs(stream, kept)
    finally:
        sys.stderr = saved_stderr
        root.handlers[:], level, config, logs._fast_access, logs._access_enabled = saved
        root.setLevel(level)
        structlog.configure(**config)
        for name, (handlers, propagate, lvl, disabled) in saved_loggers.items():
            logger = logging.getLogger(name)
            logger.handlers[:], logger.propagate, logger.disabled = handlers, propagate, disabled
            logger.setLevel(lvl)


# ---------------------------------------------------------------------------------------------------
# Secrets

_WINDOW = 12  # hex characters: 48 bits, so a window found by chance in other hex data is ~1e-14


def fragments(secret: str) -> list[str]:
    """What must never be written anywhere: the key, its 32-hex secret part, and every 12-character
    piece of that part (a truncated or split key is still a leak). The stored, displayed
    `key_prefix` is `pe_live_` + 4 hex characters, shorter than any piece."""
    body = secret.removeprefix("pe_live_")
    pieces = [body[i : i + _WINDOW] for i in range(len(body) - _WINDOW + 1)] if len(body) >= _WINDOW else []
    return [secret, body, *pieces]


def leaks(text: str, secrets: Sequence[str]) -> list[str]:
    """The secrets (by their first characters) any fragment of which occurs in `text`."""
    lowered = text.lower()
    return [
        secret[:12] + "…"
        for secret in secrets
        if any(fragment.lower() in lowered for fragment in fragments(secret))
    ]


async def dump_database(db: Database) -> str:
    """Every value of every row of every table, as text."""
    out: list[str] = []
    async with db.read() as session:
        for table in Base.metadata.sorted_tables:
            rows = (await session.execute(select(table))).all()
            out.extend(f"{table.name}: {tuple(row)!r}" for row in rows)
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------------
# An app whose image provider has a bug


class BuggyProvider:
    """Draws a flat image, except that a prompt mentioning a bug makes it fail as code with a bug
    does (a KeyError, not a ProviderError): the request ends in the middleware's last-resort 500."""

    name = "buggy"

    async def generate(self, request: ImageRequest) -> Image.Image:
        if "bug" in request.prompt:
            raise KeyError("image")
        return Image.new("RGB", (request.width, request.height), (20, 120, 60))


@asynccontextmanager
async def serving(settings: Settings, clock: Clock) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    providers: dict[ImageModel, list[ImageProvider]] = {model: [BuggyProvider()] for model in ImageModel}
    app = create_app(settings, clock=clock, providers=providers, background=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield app, client
