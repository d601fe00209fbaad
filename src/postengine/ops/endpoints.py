"""`/healthz`, `/readyz` and `/metrics`: for load balancers, orchestrators and Prometheus, not for
API clients. Outside `/api/v1`, no API key and no rate limit, left out of the OpenAPI schema.

Their bodies are plain JSON (or the Prometheus text format), not the API envelope: probes read the
status code, and the shape is the one such tools expect. Every response still carries
`X-Request-Id` (the middleware adds it)."""

import hmac

import anyio.to_thread
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from postengine.config import Settings
from postengine.context import AppContext
from postengine.errors import Unauthorized
from postengine.ops import metrics
from postengine.ops.health import CheckStatus, check_readiness

router = APIRouter(include_in_schema=False)

_NO_STORE = {"Cache-Control": "no-store"}


@router.get("/healthz")
async def healthz() -> Response:
    """Liveness: the process answers. Checks nothing else, so that a database outage does not make
    an orchestrator restart every API process at once."""
    return JSONResponse({"status": "ok"}, headers=_NO_STORE)


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    """Readiness: 200 when the database, Redis (if configured) and media storage answer; 503
    naming the failing checks otherwise, so that the load balancer sends traffic elsewhere."""
    ctx: AppContext | None = getattr(request.app.state, "ctx", None)
    if ctx is None:  # the lifespan has not finished starting (or has stopped)
        return JSONResponse({"status": "unavailable", "failing": ["startup"], "checks": {}}, 503, _NO_STORE)
    results = await check_readiness(ctx)
    failing = [result.name for result in results if result.status is CheckStatus.FAIL]
    body: dict[str, object] = {
        "status": "unavailable" if failing else "ready",
        "checks": {result.name: result.as_dict() for result in results},
    }
    if failing:
        body["failing"] = failing
    return JSONResponse(body, 503 if failing else 200, _NO_STORE)


@router.get("/metrics")
async def metrics_endpoint(request: Request) -> Response:
    """Prometheus exposition. Open unless `PE_METRICS_TOKEN` is set (then `Authorization: Bearer`
    with that token); either way it belongs on an internal network only."""
    settings: Settings = request.app.state.settings
    token = settings.metrics_token
    if token is not None:
        sent = request.headers.get("authorization", "")
        scheme, _, credential = sent.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            credential.strip().encode(), token.get_secret_value().encode()
        ):
            raise Unauthorized("The metrics endpoint needs `Authorization: Bearer` with PE_METRICS_TOKEN.")
    # Multiprocess mode reads one file per process: off the event loop.
    body, content_type = await anyio.to_thread.run_sync(metrics.exposition, request.headers.get("accept"))
    return Response(body, headers={"Content-Type": content_type, **_NO_STORE})
