"""`create_app(settings)` → the FastAPI application. The lifespan owns the database engines, the
rate-limit store, the providers, the storage and the background loops."""

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from anyio import CapacityLimiter
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from PIL import _imaging  # Pillow's C core, for its block cache
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from postengine import __version__, migrate
from postengine.accounts.endpoints import router as accounts_router
from postengine.auth.authenticator import Authenticator
from postengine.auth.endpoints import router as auth_router
from postengine.config import Settings
from postengine.context import AppContext
from postengine.db import Database
from postengine.envelope import error_response
from postengine.errors import ApiError, MethodNotAllowed, NotFound, ServiceUnavailable, ValidationFailed
from postengine.generation import service as generation_service
from postengine.generation.endpoints import router as generation_router
from postengine.generation.models import ImageModel
from postengine.generation.providers import ImageProvider
from postengine.generation.providers.registry import Providers, build_providers, log_checks, report_problems
from postengine.idempotency import service as idempotency_service
from postengine.idempotency.locks import MemoryLocks, RedisLocks
from postengine.kit import listcache
from postengine.kit.clock import Clock, SystemClock
from postengine.kit.epoch import REMOTE_KEY, Epoch, follow_remote
from postengine.kit.tasks import cancel_requested
from postengine.media import service as media_service
from postengine.media.cdn import router as cdn_router
from postengine.media.endpoints import router as media_router
from postengine.media.endpoints import uploads_router
from postengine.media.storage import MediaStorage, storage_from_settings
from postengine.middleware import RequestContextMiddleware
from postengine.openapi import add_links, add_response_headers
from postengine.ops.endpoints import router as ops_router
from postengine.orgs.snapshot import OrgCache
from postengine.posts.endpoints import router as posts_router
from postengine.posts.scheduler import run_publisher
from postengine.ratelimit.redis_store import (
    RedisRateLimitStore,
    close_rate_limit_store,
    open_rate_limit_store,
)
from postengine.ratelimit.redis_store import connect as redis_connect
from postengine.ratelimit.store import MemoryRateLimitStore, RateLimitStore

log = logging.getLogger("postengine.app")
SHUTDOWN_SECONDS = 10.0  # how long the background tasks get to stop once cancelled

API_DESCRIPTION = """\
AI image generation for social media. Generate an image from a prompt, pay for it with AI credits,
find it in your media library, and attach it to posts.

Every response is an envelope `{data, error, meta}`. Authenticate with
`Authorization: Bearer pe_live_…`.
"""


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    rate_limits: RateLimitStore | None = None,
    providers: dict[ImageModel, list[ImageProvider]] | None = None,
    storage: MediaStorage | None = None,
    background: bool = True,
) -> FastAPI:
    settings = settings or Settings()
    clock = clock or SystemClock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(
            settings.database_url,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
        )
        http = new_http_client()
        shared = redis_connect(settings.redis_url) if settings.redis_url else None
        try:
            await _prepare_schema(settings, db)
            _imaging.set_blocks_max(settings.image_block_cache)  # see Settings.image_block_cache
            cpu = CapacityLimiter(max(1, os.cpu_count() or 1))
            built = None if providers else _providers(settings, http, cpu)
            chains = providers or (built.chains if built else {})
            ctx = AppContext(
                settings=settings,
                db=db,
                clock=clock,
                authenticator=Authenticator(
                    db, settings.secret, settings.epoch_path, settings.auth_cache_seconds, clock
                ),
                orgs=OrgCache(db, Epoch(settings.epoch_path), settings.quota_cache_seconds),
                rate_limits=rate_limits
                or await open_rate_limit_store(settings, clock)  # PE_REDIS_URL set: shared by every process
                or MemoryRateLimitStore(clock),
                providers=chains,
                storage=storage or storage_from_settings(settings),  # PE_STORAGE_URL: file:// or s3://
                cpu=cpu,
                http=http,
                locks=RedisLocks(shared, settings.redis_prefix) if shared is not None else MemoryLocks(clock),
            )
            app.state.ctx = ctx
            tasks = []
            if background:
                # A previous process may have died mid-generation: settle its reservations now.
                await generation_service.sweep_expired(ctx)
                tasks = [
                    asyncio.create_task(_every(5.0, ctx.authenticator.flush_last_used)),
                    asyncio.create_task(
                        _every(
                            generation_service.sweep_interval(settings),
                            lambda: generation_service.sweep_expired(ctx),
                        )
                    ),
                    asyncio.create_task(run_publisher(ctx)),  # due destinations → their connectors
                    asyncio.create_task(_every(30.0, lambda: media_service.sweep_abandoned_uploads(ctx))),
                    # Stored Idempotency-Key responses, once their 24 hours are over.
                    asyncio.create_task(_every(600.0, lambda: idempotency_service.sweep_expired(ctx))),
                ]
                if built is not None:
                    # Credentials and upstream model ids are checked once, without delaying start-up.
                    tasks.append(asyncio.create_task(log_checks(built)))
                if isinstance(ctx.rate_limits, MemoryRateLimitStore | RedisRateLimitStore):
                    # Idle in-process logs: the embedded store's, or the Redis store's outage fallback.
                    store = ctx.rate_limits
                    tasks.append(asyncio.create_task(_every(60.0, lambda: _sync(store.sweep))))
            if shared is not None:
                # Several processes: no list cache (read-your-writes across processes), and key or
                # credit changes made on any machine reach this process's caches through Redis.
                listcache.disable(db)
                epoch_key = settings.redis_prefix + REMOTE_KEY
                tasks.append(asyncio.create_task(follow_remote(settings.epoch_path, shared, epoch_key)))
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                if tasks:
                    # Bounded: a task that ignored its cancellation must not hang the shutdown.
                    _, stuck = await asyncio.wait(tasks, timeout=SHUTDOWN_SECONDS)
                    for task in stuck:
                        log.error(
                            "background task %s did not stop within %s s", task.get_name(), SHUTDOWN_SECONDS
                        )
                await ctx.authenticator.flush_last_used()
                if ctx.rate_limits is not rate_limits:  # opened here, not handed in: ours to close
                    await close_rate_limit_store(ctx.rate_limits)
        finally:
            await http.aclose()
            if shared is not None:
                await shared.aclose()
            await db.dispose()

    app = FastAPI(
        title="postengine",
        version="1.0.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings  # for what answers before the lifespan has built the context (/metrics)
    app.include_router(auth_router, prefix="/api/v1")
    app.include_router(generation_router, prefix="/api/v1")
    app.include_router(media_router, prefix="/api/v1")
    app.include_router(accounts_router, prefix="/api/v1")
    app.include_router(posts_router, prefix="/api/v1")
    app.include_router(uploads_router)
    app.include_router(cdn_router)
    app.include_router(ops_router)  # /healthz, /readyz, /metrics: no key, no rate limit
    _install_error_handlers(app)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        body_idle_timeout=settings.body_idle_timeout_seconds,
    )
    _install_openapi(app)
    return app


def new_http_client() -> httpx.AsyncClient:
    """The process's client for outgoing calls (providers). Timeouts are set per call from each
    generation's deadline; redirects are never followed implicitly (a redirect could carry a provider
    key to another host, or lead to a private address)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(120.0, connect=10.0),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=40),
        follow_redirects=False,
        headers={"User-Agent": f"postengine/{__version__}"},
    )


def _providers(settings: Settings, http: httpx.AsyncClient, cpu: CapacityLimiter) -> Providers:
    built = build_providers(settings, http, cpu)
    for model, names in built.names.items():
        log.info("model %s is served by %s", model, " → ".join(names))
    report_problems(built)
    return built


async def _prepare_schema(settings: Settings, db: Database) -> None:
    """Embedded mode: apply pending migrations on start. PostgreSQL: refuse to run on an old schema
    (migrations there are an explicit step: `postengine db upgrade`)."""
    if settings.is_sqlite:
        await migrate.upgrade(db)
        return
    if settings.secret_key is None:
        log.warning(
            "PE_SECRET_KEY is not set: API key hashes use the secret in %s, so every process and machine "
            "that shares this database must share that file; set PE_SECRET_KEY instead",
            settings.data_dir / "secret",
        )
    missing = await migrate.pending(db)
    if missing:
        raise RuntimeError(
            f"the database schema is behind ({len(missing)} pending migrations); run `postengine db upgrade`"
        )


async def _sync(job: Callable[[], Any]) -> None:
    job()


async def _every(seconds: float, job: Callable[[], Awaitable[Any]]) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await job()
        except Exception:
            if cancel_requested():
                raise asyncio.CancelledError from None  # a cancellation a driver reported as an error
            log.exception("background job failed; retrying in %s s", seconds)


# The driver's ways of saying "not now": no connection could be had or kept (asyncpg's
# TooManyConnectionsError and CannotConnectNowError, refused or dropped connections).
_UNAVAILABLE_NAMES = frozenset(
    {
        "TooManyConnectionsError",
        "CannotConnectNowError",
        "ConnectionDoesNotExistError",
        "ConnectionRefusedError",
    }
)


def _database_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, SATimeoutError):  # the pool had no free connection within its timeout
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    cause = getattr(exc, "orig", None)
    seen = 0
    while cause is not None and seen < 5:
        if type(cause).__name__ in _UNAVAILABLE_NAMES or isinstance(cause, ConnectionError | OSError):
            return True
        if type(cause).__name__ == "OperationalError" and "database is locked" in str(cause):
            return True  # SQLite: another writer held the lock past busy_timeout
        cause, seen = cause.__cause__ or getattr(cause, "__context__", None), seen + 1
    return False


def _install_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(request, exc.status, exc.body(), exc.headers)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        error: ApiError
        if exc.status_code == 404:
            error = NotFound(f"No such route: {request.method} {request.url.path}")
        elif exc.status_code == 405:
            error = MethodNotAllowed(f"Method {request.method} is not allowed on {request.url.path}.")
        else:
            error = ApiError(str(exc.detail))
            error.status = exc.status_code  # type: ignore[misc]
        return error_response(request, exc.status_code, error.body(), dict(exc.headers or {}))

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = []
        for err in exc.errors():
            loc = [
                str(part) for part in err.get("loc", ()) if part not in ("query", "path", "header", "body")
            ]
            field = ".".join(loc) or "request"
            errors.append({"field": field, "message": f"{field}: {err.get('msg', 'invalid value')}"})
        failed = ValidationFailed(errors)
        return error_response(request, failed.status, failed.body())

    async def database_busy(request: Request, exc: Exception) -> Response:
        if not _database_unavailable(exc):
            raise exc  # a real fault: the outermost middleware logs it and answers 500
        log.warning("database unavailable: %s", type(getattr(exc, "orig", None) or exc).__name__)
        busy = ServiceUnavailable("The service is overloaded right now. Retry in a few seconds.")
        return error_response(request, busy.status, busy.body(), busy.headers)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(SQLAlchemyError, database_busy)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)


def _install_openapi(app: FastAPI) -> None:
    """FastAPI documents a 422 on every endpoint; we never send one (validation errors are 400). The
    links between operations (`openapi.LINKS`) and the response headers are added here, once the
    paths exist."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                responses = operation.get("responses", {})
                # Only FastAPI's own 422; a declared one (`idempotency_key_mismatch`) stays.
                if "HTTPValidationError" in str(responses.get("422", "")):
                    del responses["422"]
        schema.get("components", {}).get("schemas", {}).pop("HTTPValidationError", None)
        schema.get("components", {}).get("schemas", {}).pop("ValidationError", None)
        add_links(schema)  # create → get → update → delete, for clients and stateful tests
        add_response_headers(schema)  # X-Request-Id, rate limits, Retry-After
        schema["components"].setdefault("securitySchemes", {})["bearerAuth"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "pe_live_ followed by 32 hex characters",
        }
        schema["security"] = [{"bearerAuth": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
