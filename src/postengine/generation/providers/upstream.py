"""What every HTTP image adapter shares (PROVIDERS.md): retries, status mapping, image decoding.

An adapter's attempt raises `Retryable(error, hint)` for the conditions worth another try (429,
500/502/503/504, timeouts, connection errors, and an adapter's own "no image this time" cases);
`with_retries` retries at most `max_retries` times with exponential backoff and jitter, waits at
least the provider's hint, and never sleeps past the generation's deadline. When it gives up it
raises the error inside the last `Retryable`: `ProviderOverloaded` (503 to the client) for rate
limits and over-capacity, `ProviderFailed` (500) for the rest. Everything else an attempt raises
(`ProviderBlocked`, `ProviderMisconfigured`, `ProviderFailed`) ends the generation at once.

Credentials travel only in request headers; nothing here logs headers, and error messages carry the
upstream's message (truncated) and never the request.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import io
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import httpx
import orjson
from PIL import Image

from postengine.generation.providers.base import (
    ImageRequest,
    ProviderError,
    ProviderFailed,
    ProviderMisconfigured,
    ProviderOverloaded,
)
from postengine.kit import netguard

log = logging.getLogger("postengine.providers")

T = TypeVar("T")

MAX_HINT_SECONDS = 24 * 3600.0  # a longer hint is treated as this (it only means "not now")
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
IMAGE_FORMATS = frozenset({"PNG", "JPEG", "WEBP"})


@dataclass
class UpstreamOptions:
    """Knobs shared by the HTTP adapters; tests inject `sleep`, `jitter`, `now` and `resolver`."""

    max_retries: int = 2
    backoff_base: float = 1.0  # seconds before the first retry (before jitter)
    backoff_max: float = 20.0
    default_retry_after: int = 30  # told to our client when a 429 came without a hint
    # A try needs some time to be worth starting: a retry that would leave less than this is skipped.
    min_attempt_seconds: float = 2.0
    connect_timeout: float = 10.0
    max_download_bytes: int = 32 * 1024 * 1024
    max_pixels: int = 40_000_000  # 4K Gemini output is 16.8 MP; a decompression bomb is refused
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep
    jitter: Callable[[], float] = random.random
    now: Callable[[], float] = anyio.current_time
    resolver: netguard.Resolver = netguard.system_resolver
    allowed_download_schemes: tuple[str, ...] = field(default=("https",))


class Retryable(Exception):
    """Raised by an attempt: this try failed in a way another try may not. `error` is what the client
    gets once the retries are spent; `hint` is the provider's own wait time, in seconds."""

    def __init__(self, error: ProviderError, hint: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.hint = hint


async def with_retries(
    provider: str,
    request: ImageRequest,
    options: UpstreamOptions,
    attempt: Callable[[], Awaitable[T]],
) -> T:
    retries = 0
    while True:
        try:
            return await attempt()
        except Retryable as signal:
            if retries >= options.max_retries:
                raise signal.error from None
            delay = backoff_delay(retries, options)
            if signal.hint is not None:
                delay = max(delay, signal.hint)
            remaining = request.remaining(options.now())
            if delay + options.min_attempt_seconds > remaining:
                log.info(
                    "%s: not retrying (%s): waiting %.1f s would pass the deadline",
                    provider,
                    signal.error,
                    delay,
                )
                raise signal.error from None
            retries += 1
            log.info("%s: %s; retry %d in %.2f s", provider, signal.error, retries, delay)
            await options.sleep(delay)


def backoff_delay(retry: int, options: UpstreamOptions) -> float:
    """Exponential backoff with "equal jitter": half the step fixed, half random."""
    step = min(options.backoff_max, options.backoff_base * 2.0**retry)
    return step / 2 + options.jitter() * step / 2


def attempt_timeout(request: ImageRequest, options: UpstreamOptions) -> httpx.Timeout:
    """httpx timeouts for one try: the rest of the generation's time, and a short connect."""
    remaining = max(0.1, min(request.remaining(options.now()), 600.0))
    return httpx.Timeout(remaining, connect=min(options.connect_timeout, remaining))


async def send(
    client: httpx.AsyncClient,
    provider: str,
    method: str,
    url: str,
    *,
    request: ImageRequest,
    options: UpstreamOptions,
    headers: dict[str, str],
    json: Any = None,
) -> httpx.Response:
    """One HTTP call to the provider's API; transport failures become `Retryable`."""
    if json is not None:
        headers = {"Content-Type": "application/json", **headers}
    try:
        return await client.request(
            method,
            url,
            headers=headers,
            content=None if json is None else orjson.dumps(json),
            timeout=attempt_timeout(request, options),
            follow_redirects=False,
        )
    except httpx.TimeoutException:
        raise Retryable(ProviderFailed(f"{provider}: the request timed out")) from None
    except httpx.TransportError as exc:
        raise Retryable(ProviderFailed(f"{provider}: connection failed ({type(exc).__name__})")) from None


def json_body(response: httpx.Response, provider: str) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise ProviderFailed(
            f"{provider}: HTTP {response.status_code} with a body that is not JSON"
        ) from None


def json_or_none(response: httpx.Response) -> Any:
    """The parsed body, or None when it is not JSON (error pages from proxies are HTML)."""
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None


def key_problem(key: str | None, setting: str) -> str | None:
    """Why a credential cannot be used, or None. A pasted key with a trailing newline would fail
    as a confusing 401 (or a header error), so it is reported here, naming the setting."""
    if not key or not key.strip():
        return f"{setting} is not set"
    if not key.isascii() or any(char.isspace() or not char.isprintable() for char in key):
        return f"{setting} has characters that cannot travel in an HTTP header (whitespace, control or non-ASCII)"
    return None


def require_usable(provider: str, problem: str | None) -> None:
    """At the start of a generation: a provider with a configuration problem fails at once (503),
    with the operator's log line."""
    if problem is not None:
        log.error("%s is not usable: %s", provider, problem)
        raise ProviderMisconfigured(problem)


def base_url_problem(base_url: str) -> str | None:
    """Why a provider's base URL is unsafe, or None. The key travels in a header: https only, except
    to a loopback proxy (tests, sidecars); no credentials, query or fragment in the URL."""
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL:
        return "is not a valid URL"
    if not url.host:
        return "has no host"
    if url.userinfo or url.query or url.fragment:
        return "must not carry credentials, a query or a fragment"
    if url.scheme == "https" or (url.scheme == "http" and netguard.is_loopback_host(url.host)):
        return None
    return "must be an https URL (the API key would travel in clear text)"


def same_origin(url: str, base: str) -> bool:
    """Whether `url` (from an upstream's answer) is on the same scheme, host and port as `base`: the
    only URLs a provider's key may be sent to (queue status and result URLs)."""
    try:
        target, home = httpx.URL(url), httpx.URL(base)
    except httpx.InvalidURL:
        return False
    return not target.userinfo and (target.scheme, target.host, target.port) == (
        home.scheme,
        home.host,
        home.port,
    )


def retry_after_header(response: httpx.Response, now: Callable[[], float] = time.time) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date), or None."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)  # delta-seconds; fractions are tolerated, "inf" and "nan" are not
    except ValueError:
        pass
    else:
        return min(max(0.0, seconds), MAX_HINT_SECONDS) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(0.0, when.timestamp() - now()), MAX_HINT_SECONDS)


def upstream_message(body: Any, limit: int = 200) -> str:
    """The provider's own error message from the usual shapes, truncated; '' if none."""
    message: Any = ""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            message = error.get("message") or error.get("status") or ""
        elif isinstance(error, str):
            message = error
        else:
            message = body.get("detail") or body.get("message") or body.get("title") or ""
        if isinstance(message, list):  # FastAPI-style detail lists (fal)
            message = "; ".join(
                str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in message
            )
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def status_error(
    response: httpx.Response,
    provider: str,
    *,
    setting: str,
    model_setting: str | None = None,
    hint: float | None = None,
    options: UpstreamOptions | None = None,
) -> Exception:
    """The usual mapping of an error status; adapters check their own block signals first.

    `setting` names the credential's environment variable for the operator's log line, and
    `model_setting` the one that holds the upstream model id."""
    options = options or UpstreamOptions()
    try:
        detail = upstream_message(orjson.loads(response.content))
    except orjson.JSONDecodeError:
        detail = ""
    said = f": {detail}" if detail else ""
    status = response.status_code
    if hint is None:
        hint = retry_after_header(response)
    if status in (401, 403):
        log.error("%s rejected our credentials (HTTP %d%s); check %s", provider, status, said, setting)
        return ProviderMisconfigured(
            f"{provider} rejected the server's credentials (HTTP {status}); the operator must check {setting}"
        )
    if status == 404:
        check = model_setting or "the configured upstream model id"
        log.error("%s: HTTP 404%s; check %s", provider, said, check)
        return ProviderMisconfigured(
            f"{provider} does not know the configured model (HTTP 404); the operator must check {check}"
        )
    if status == 429:
        retry_after = math.ceil(hint) if hint is not None else options.default_retry_after
        return Retryable(
            ProviderOverloaded(f"{provider} is rate-limiting us (HTTP 429){said}", max(1, retry_after)),
            hint,
        )
    if status == 503:
        retry_after = math.ceil(hint) if hint is not None else options.default_retry_after
        return Retryable(
            ProviderOverloaded(f"{provider} is over capacity (HTTP 503){said}", max(1, retry_after)), hint
        )
    if status in RETRY_STATUSES:
        return Retryable(ProviderFailed(f"{provider}: HTTP {status}{said}"), hint)
    return ProviderFailed(f"{provider}: HTTP {status}{said}")


def decode_image(data: bytes, provider: str, options: UpstreamOptions | None = None) -> Image.Image:
    """Pillow-checked image bytes (PNG, JPEG or WebP), fully loaded; otherwise ProviderFailed."""
    max_pixels = (options or UpstreamOptions()).max_pixels
    try:
        image = Image.open(io.BytesIO(data))
        if image.format not in IMAGE_FORMATS:
            raise ProviderFailed(
                f"{provider}: returned a {image.format or 'unknown'} file, not an image we accept"
            )
        width, height = image.size
        if width * height > max_pixels:
            raise ProviderFailed(f"{provider}: returned a {width}x{height} image, too large to decode")
        image.load()
    except ProviderFailed:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise ProviderFailed(f"{provider}: returned bytes that are not a valid image") from None
    return image


async def decode_image_async(
    data: bytes, provider: str, options: UpstreamOptions | None = None
) -> Image.Image:
    """`decode_image` in a worker thread: decoding a 2K PNG takes tens of milliseconds, which must
    not stall the event loop (DESIGN.md §2)."""
    return await anyio.to_thread.run_sync(decode_image, data, provider, options)


def decode_base64(data: str, provider: str) -> bytes:
    """Standard or URL-safe base64, padded or not; anything else is ProviderFailed."""
    text = data + "=" * (-len(data) % 4)
    altchars = b"-_" if ("-" in text or "_" in text) else None
    try:
        return base64.b64decode(text, altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        raise ProviderFailed(f"{provider}: image data is not valid base64") from None


def decode_data_uri(uri: str, provider: str) -> bytes:
    """The bytes of a `data:image/...;base64,...` URI."""
    header, sep, payload = uri.partition(",")
    if not sep or not header.startswith("data:") or not header.endswith(";base64"):
        raise ProviderFailed(f"{provider}: malformed data: URI")
    return decode_base64(payload, provider)


async def download_image(
    client: httpx.AsyncClient,
    provider: str,
    url: str,
    *,
    request: ImageRequest,
    options: UpstreamOptions,
) -> Image.Image:
    """Fetch a result URL at once (they expire): https only, public addresses only, byte cap.

    A `data:` URI is decoded in place. Network failures and 5xx are retryable; a refused URL or an
    oversized result is not (the provider would send the same again)."""
    if url.startswith("data:"):
        return await decode_image_async(decode_data_uri(url, provider), provider, options)
    timeout = max(0.1, min(request.remaining(options.now()), 120.0))
    try:
        fetched = await netguard.fetch(
            client,
            url,
            max_bytes=options.max_download_bytes,
            timeout=timeout,
            resolver=options.resolver,
            schemes=options.allowed_download_schemes,
        )
    except netguard.FetchRefused as exc:
        log.warning("%s: refused its result URL: %s", provider, exc)
        raise ProviderFailed(f"{provider}: result URL refused ({exc})") from None
    except netguard.FetchTooLarge as exc:
        raise ProviderFailed(f"{provider}: result too large ({exc})") from None
    except netguard.FetchFailed as exc:
        if exc.status is None or exc.status in RETRY_STATUSES:
            raise Retryable(ProviderFailed(f"{provider}: downloading the result failed ({exc})")) from None
        raise ProviderFailed(f"{provider}: downloading the result failed ({exc})") from None
    return await decode_image_async(fetched.data, provider, options)
