"""Prometheus metrics (prometheus-client), one definition per fact an operator watches.

Labels are bounded sets only (route templates, model names, scopes, outcomes), never ids: a label
value per media id or key would make a time series per object.

Several processes (`postengine serve --workers N`): prometheus-client's multiprocess mode. Each
process writes its values to files in `PROMETHEUS_MULTIPROC_DIR`, and whichever process answers the
scrape adds them all up. The variable must be set before prometheus-client is imported in each
process; `prepare_multiprocess_metrics` does that in the parent, before the processes start.
See https://prometheus.github.io/client_python/multiprocess/.
"""

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.exposition import choose_encoder
from starlette.routing import replace_params

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED_ROUTE: Final = "<unmatched>"  # no route matched (404s): never the raw path
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "postengine_http_requests",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "postengine_http_request_duration_seconds",
    "Time from the request's arrival to the end of its response, by method and route template.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0),
)
GENERATION_SECONDS = Histogram(
    "postengine_generation_duration_seconds",
    "Image generations that reserved credits, from reservation to settlement, by model and outcome "
    "(completed, failed, blocked, unavailable, interrupted).",
    ["model", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0),
)
CREDITS_RESERVED = Counter("postengine_credits_reserved", "AI credits reserved for generations (committed).")
CREDITS_SETTLED = Counter(
    "postengine_credits_settled", "AI credits of reservations that became completed generations."
)
CREDITS_REFUNDED = Counter(
    "postengine_credits_refunded", "AI credits returned for failed or expired generations (sweeper included)."
)
RATE_LIMITED = Counter(
    "postengine_rate_limited",
    "Requests refused with 429, by the scope of the limit that refused them.",
    ["scope"],
)
IDEMPOTENT_REPLAYS = Counter(
    "postengine_idempotent_replays",
    "Requests answered with a stored response because their Idempotency-Key was already used.",
)
PUBLISH_OUTCOMES = Counter(
    "postengine_publish_outcomes",
    "Publish attempts by outcome: published, transient (to be retried), permanent (failed), lost "
    "(the lease went to another worker, which finishes the job).",
    ["outcome"],
)

# The request counter's children, cached: `labels()` validates and locks on every call, and this is
# on every request's path.
_request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def route_label(scope: Mapping[str, Any]) -> str:
    """The matched route's full template (`/api/v1/media/{media_id}`), from what the router left in
    the ASGI scope; `<unmatched>` when no route matched.

    FastAPI leaves the route as declared in its router (`/media/{media_id}`), without the prefix it
    was included under: the prefix is what the request path has in front of the route's own part.
    Our include prefixes are literals (`/api/v1`), so this adds no request-specific value."""
    route = scope.get("route")
    template = getattr(route, "path_format", None)
    if not isinstance(template, str):
        return UNMATCHED_ROUTE
    path = scope.get("path")
    params = scope.get("path_params")
    if not isinstance(path, str):
        return template
    try:
        own, _ = replace_params(template, getattr(route, "param_convertors", {}), dict(params or {}))
    except (KeyError, TypeError, ValueError):
        return template
    if not path.endswith(own):
        return template
    return path[: len(path) - len(own)] + template


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    method = method if method in _METHODS else "OTHER"
    key = (method, route, status)
    children = _request_children.get(key)
    if children is None:
        children = (
            HTTP_REQUESTS.labels(method, key[1], str(status)),
            HTTP_REQUEST_SECONDS.labels(method, key[1]),
        )
        _request_children[key] = children
    children[0].inc()
    children[1].observe(seconds)


def observe_generation(model: str, outcome: str, seconds: float) -> None:
    GENERATION_SECONDS.labels(model, outcome).observe(seconds)


def credits_reserved(amount: int) -> None:
    CREDITS_RESERVED.inc(amount)


def credits_settled(amount: int) -> None:
    CREDITS_SETTLED.inc(amount)


def credits_refunded(amount: int) -> None:
    CREDITS_REFUNDED.inc(amount)


def rate_limited(scope: str) -> None:
    RATE_LIMITED.labels(scope).inc()


def idempotent_replay() -> None:
    IDEMPOTENT_REPLAYS.inc()


def publish_outcomes(*, published: int, transient: int, permanent: int, lost: int) -> None:
    for outcome, count in (
        ("published", published),
        ("transient", transient),
        ("permanent", permanent),
        ("lost", lost),
    ):
        if count:
            PUBLISH_OUTCOMES.labels(outcome).inc(count)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def exposition(accept: str | None, directory: str | None = None) -> tuple[bytes, str]:
    """The scrape body and its content type (OpenMetrics when the scraper asks for it). With a
    multiprocess directory, the sum over every process that wrote there, dead ones included (their
    counters must not go backwards)."""
    encoder, content_type = choose_encoder(accept or "")
    directory = directory or multiprocess_dir()
    if directory is None:
        return encoder(REGISTRY), content_type
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return encoder(registry), content_type


def prepare_multiprocess_metrics(directory: str | Path | None = None) -> Path:
    """Call once in the parent before starting several server processes (`serve --workers N`).

    Creates `directory` (None: `$PROMETHEUS_MULTIPROC_DIR` if the operator set it, else a new
    temporary folder), deletes the value files of a previous run (their counts would be added to
    this run's), and sets `PROMETHEUS_MULTIPROC_DIR` so that the processes started afterwards write
    there. Uvicorn spawns its workers (fresh interpreters), so they pick the variable up even though
    this process imported prometheus-client before; a forked child of this process would not.
    Returns the directory."""
    chosen = directory or multiprocess_dir()
    path = Path(chosen) if chosen else Path(tempfile.mkdtemp(prefix="postengine-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)
    os.environ[MULTIPROC_ENV] = str(path)
    return path
