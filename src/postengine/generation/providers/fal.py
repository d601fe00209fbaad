"""fal.ai's `fal-ai/flux/schnell` as a provider for `flux-schnell` (PROVIDERS.md, "fal.ai").

The key travels as `Authorization: Key KEY`, to fal's own hosts only. Two modes (`PE_FAL_MODE`):

- `sync`: one `POST {base_url}/{model}`; with `sync_mode: true` the image comes back inline as a
  `data:` URI (an https URL, if fal sends one, is downloaded through `upstream.download_image`).
- `queue`: `POST {queue_url}/{model}` answers `{request_id, status_url, response_url, cancel_url}`;
  we poll `status_url` (`IN_QUEUE`, `IN_PROGRESS`, `COMPLETED`) every `poll_interval` seconds, then
  GET `response_url`. We follow the URLs fal returns (they drop the `/schnell` sub-path), but only on
  the queue host: the key is never sent anywhere else. Polling stops at the generation's deadline
  and the queued request is cancelled, best effort (`PUT cancel_url`).
  https://docs.fal.ai/model-endpoints/queue

How fal's answers map to our errors (on top of `upstream.status_error`):

    200 with `has_nsfw_concepts[i] == true`                      ProviderBlocked (never retried)
    422 with `detail[].type == "content_policy_violation"`       ProviderBlocked
    any other 422 (input validation: our bug)                    ProviderFailed
    401/403 (bad key, or an account locked for its balance)      ProviderMisconfigured (PE_FAL_KEY)
    404 on submit (unknown model id)                             ProviderMisconfigured
    429, 500/502/503/504, timeouts, connection errors            retried, then ProviderOverloaded/Failed

`check()`: fal has no free "who am I" endpoint. It asks the queue for the status of a made-up request
id under the model's app (`GET {queue_url}/fal-ai/flux/requests/<zero uuid>/status`): fal
authenticates first, so 401/403 means the key is wrong and anything else (404 "no such request")
means it was accepted; nothing runs, nothing is charged. The model id is then looked up in fal's
public model catalogue (`GET https://api.fal.ai/v1/models?endpoint_id=...`, no key sent); when the
catalogue answers in a shape we do not know, the key check stands and the model is reported as not
verified rather than wrong.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx
from PIL import Image

from postengine.generation.models import AspectRatio
from postengine.generation.providers import upstream
from postengine.generation.providers.base import (
    CheckResult,
    ImageRequest,
    ProviderBlocked,
    ProviderError,
    ProviderFailed,
)

log = logging.getLogger("postengine.providers")

KEY_SETTING = "PE_FAL_KEY"
MODEL_SETTING = "PE_FAL_MODEL"
MODE_SETTING = "PE_FAL_MODE"

# PROVIDERS.md: multiples of 16 with the long side at 1024, which are exactly our output sizes.
SIZES: dict[AspectRatio, tuple[int, int]] = {
    AspectRatio.SQUARE: (1024, 1024),
    AspectRatio.WIDE: (1024, 576),
    AspectRatio.TALL: (576, 1024),
    AspectRatio.LANDSCAPE_4_3: (1024, 768),
    AspectRatio.PORTRAIT_3_4: (768, 1024),
    AspectRatio.PORTRAIT_4_5: (816, 1024),
    AspectRatio.LANDSCAPE_5_4: (1024, 816),
}

CONTENT_POLICY_VIOLATION = "content_policy_violation"
# An endpoint id: `owner/app` and an optional sub-path (`fal-ai/flux/schnell`); it becomes a URL path.
_ENDPOINT_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)+")
PROBE_REQUEST_ID = "00000000-0000-0000-0000-000000000000"  # check(): a request that cannot exist
CHECK_TIMEOUT = 8.0  # per call; check() makes two within the registry's 20 s budget
CANCEL_TIMEOUT = 5.0
# Polling without a deadline (the service always sets one) still ends.
MAX_QUEUE_SECONDS = 600.0


class FalMode(StrEnum):
    SYNC = "sync"
    QUEUE = "queue"


class QueueStatus(StrEnum):
    IN_QUEUE = "IN_QUEUE"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"


@dataclass(frozen=True, slots=True)
class FalConfig:
    api_key: str | None
    model: str = "fal-ai/flux/schnell"
    base_url: str = "https://fal.run"
    queue_url: str = "https://queue.fal.run"
    mode: str = FalMode.SYNC
    poll_interval: float = 1.0
    steps: int = 4
    # fal's platform API: only its public model catalogue, by check(), without the key.
    catalogue_url: str = "https://api.fal.ai"


@dataclass(frozen=True, slots=True)
class _Queued:
    request_id: str
    status_url: str
    response_url: str
    cancel_url: str | None


class FalProvider:
    name = "fal"

    def __init__(
        self, config: FalConfig, http: httpx.AsyncClient, options: upstream.UpstreamOptions | None = None
    ) -> None:
        self.config = config
        self.http = http
        self.options = options or upstream.UpstreamOptions()
        self._base = config.base_url.rstrip("/")
        self._queue = config.queue_url.rstrip("/")

    def problem(self) -> str | None:
        config = self.config
        if (key_issue := upstream.key_problem(config.api_key, KEY_SETTING)) is not None:
            return key_issue
        if config.mode not in tuple(FalMode):
            return f"{MODE_SETTING} must be 'sync' or 'queue', not {config.mode!r}"
        if not _ENDPOINT_ID.fullmatch(config.model):
            return f"{MODEL_SETTING} {config.model!r} is not a fal endpoint id like 'fal-ai/flux/schnell'"
        for setting, url in (("PE_FAL_BASE_URL", config.base_url), ("PE_FAL_QUEUE_URL", config.queue_url)):
            if (problem := upstream.base_url_problem(url)) is not None:
                return f"{setting} {problem}"
        if not config.poll_interval > 0:
            return "the fal poll interval must be positive"
        if config.steps < 1:
            return "the fal step count must be at least 1"
        return None

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Key {self.config.api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }

    # --- generation ------------------------------------------------------------------------------

    async def generate(self, request: ImageRequest) -> Image.Image:
        upstream.require_usable(self.name, self.problem())
        width, height = SIZES[request.aspect_ratio]
        payload = {
            "prompt": request.prompt,
            "image_size": {"width": width, "height": height},
            "num_inference_steps": self.config.steps,
            "num_images": 1,
            "enable_safety_checker": True,
            "sync_mode": True,
        }
        fetch_output: Callable[[], Awaitable[Any]]
        if self.config.mode == FalMode.QUEUE:
            queued = await upstream.with_retries(
                self.name, request, self.options, functools.partial(self._submit, request, payload)
            )
            await self._wait(request, queued)
            fetch_output = functools.partial(self._result, request, queued)
        else:
            fetch_output = functools.partial(self._run, request, payload)
        # Set once fal has answered with an image: a retry after a failed download fetches it again
        # instead of paying for a new image.
        image_url: str | None = None

        async def attempt() -> Image.Image:
            nonlocal image_url
            if image_url is None:
                image_url = _image_url(await fetch_output())
            return await upstream.download_image(
                self.http, self.name, image_url, request=request, options=self.options
            )

        return await upstream.with_retries(self.name, request, self.options, attempt)

    async def _run(self, request: ImageRequest, payload: dict[str, Any]) -> Any:
        response = await self._send(request, "POST", f"{self._base}/{self.config.model}", payload)
        if response.status_code != 200:
            raise self._error(response)
        return upstream.json_body(response, self.name)

    async def _submit(self, request: ImageRequest, payload: dict[str, Any]) -> _Queued:
        response = await self._send(request, "POST", f"{self._queue}/{self.config.model}", payload)
        if response.status_code not in (200, 201, 202):
            raise self._error(response)
        body = upstream.json_body(response, self.name)
        if not isinstance(body, dict):
            body = {}
        request_id, status_url, response_url, cancel_url = (
            body.get(key) for key in ("request_id", "status_url", "response_url", "cancel_url")
        )
        if not (
            isinstance(request_id, str)
            and isinstance(status_url, str)
            and isinstance(response_url, str)
            and request_id
        ):
            raise ProviderFailed(f"{self.name}: the queue answered without a request id and its URLs")
        for url in (status_url, response_url):
            if not self._on_queue_host(url):
                # Following it would send the key to a host we did not configure.
                log.warning("%s: refused a queue URL on another host: %s", self.name, _origin(url))
                raise ProviderFailed(f"{self.name}: the queue pointed at another host ({_origin(url)})")
        log.debug("%s: queued request %s", self.name, request_id)
        cancel = cancel_url if isinstance(cancel_url, str) and self._on_queue_host(cancel_url) else None
        return _Queued(request_id, status_url, response_url, cancel)

    async def _wait(self, request: ImageRequest, queued: _Queued) -> None:
        """Poll the status URL until COMPLETED; at the deadline, cancel and fail."""
        interval = self.config.poll_interval
        limit = request.deadline
        if limit is None:
            limit = self.options.now() + MAX_QUEUE_SECONDS
        try:
            while True:
                status = await upstream.with_retries(
                    self.name, request, self.options, functools.partial(self._status, request, queued)
                )
                if status == QueueStatus.COMPLETED:
                    return
                if status not in (QueueStatus.IN_QUEUE, QueueStatus.IN_PROGRESS):
                    raise ProviderFailed(f"{self.name}: unexpected queue status {status!r}")
                if self.options.now() + interval >= limit:
                    log.warning(
                        "%s: request %s still %s at the deadline", self.name, queued.request_id, status
                    )
                    raise ProviderFailed(f"{self.name}: timed out in queue ({status})")
                await self.options.sleep(interval)
        except ProviderError:
            await self._cancel(queued)
            raise

    async def _status(self, request: ImageRequest, queued: _Queued) -> str:
        response = await self._send(request, "GET", queued.status_url)
        if response.status_code not in (200, 202):
            raise self._error(response, submitted=True)
        body = upstream.json_body(response, self.name)
        status = body.get("status") if isinstance(body, dict) else None
        return str(status)

    async def _result(self, request: ImageRequest, queued: _Queued) -> Any:
        response = await self._send(request, "GET", queued.response_url)
        if response.status_code != 200:
            raise self._error(response, submitted=True)
        return upstream.json_body(response, self.name)

    async def _cancel(self, queued: _Queued) -> None:
        """Best effort: a request left in the queue would still run and be charged."""
        if queued.cancel_url is None:
            return
        try:
            response = await self.http.put(
                queued.cancel_url, headers=self._headers(), timeout=CANCEL_TIMEOUT, follow_redirects=False
            )
        except httpx.HTTPError as exc:
            log.warning(
                "%s: cancelling request %s failed (%s)", self.name, queued.request_id, type(exc).__name__
            )
            return
        log.info("%s: cancel of request %s: HTTP %d", self.name, queued.request_id, response.status_code)

    async def _send(
        self, request: ImageRequest, method: str, url: str, payload: dict[str, Any] | None = None
    ) -> httpx.Response:
        return await upstream.send(
            self.http,
            self.name,
            method,
            url,
            request=request,
            options=self.options,
            headers=self._headers(),
            json=payload,
        )

    def _error(self, response: httpx.Response, *, submitted: bool = False) -> Exception:
        status = response.status_code
        body = upstream.json_or_none(response)
        if status == 422:
            if _policy_violation(body):
                log.info("%s: the prompt was refused by fal's content checker (HTTP 422)", self.name)
                return ProviderBlocked("fal's content checker flagged the prompt")
            # Input validation: our request was wrong, not the user's prompt. A bug to fix.
            log.warning("%s: HTTP 422 rejecting our request: %s", self.name, upstream.upstream_message(body))
        if status == 404 and submitted:
            # The model was found when we submitted: a vanished request, not a wrong model id.
            said = upstream.upstream_message(body)
            return ProviderFailed(
                f"{self.name}: the queued request is gone (HTTP 404)" + (f": {said}" if said else "")
            )
        return upstream.status_error(response, self.name, setting=KEY_SETTING, options=self.options)

    def _on_queue_host(self, url: str) -> bool:
        return upstream.same_origin(url, self._queue)

    # --- check -----------------------------------------------------------------------------------

    async def check(self) -> CheckResult:
        problem = self.problem()
        if problem is not None:
            return CheckResult(False, problem)
        app = "/".join(self.config.model.split("/")[:2])  # status URLs drop the sub-path
        url = f"{self._queue}/{app}/requests/{PROBE_REQUEST_ID}/status"
        try:
            response = await self.http.get(
                url, headers=self._headers(), timeout=CHECK_TIMEOUT, follow_redirects=False
            )
        except httpx.HTTPError as exc:
            return CheckResult(False, f"cannot reach {_origin(url)} ({type(exc).__name__})")
        status = response.status_code
        said = upstream.upstream_message(upstream.json_or_none(response))
        said = f": {said}" if said else ""
        if status in (401, 403):
            return CheckResult(False, f"fal rejected the key (HTTP {status}{said}); check {KEY_SETTING}")
        if status == 429 or status >= 500:
            return CheckResult(False, f"fal answered HTTP {status}{said}; try again later")
        known, note = await self._check_model()
        if known is False:
            return CheckResult(False, f"key accepted, but {note}; check {MODEL_SETTING}")
        return CheckResult(True, f"key accepted; {note}")

    async def _check_model(self) -> tuple[bool | None, str]:
        """Whether fal's catalogue lists the model: True, False, or None (could not tell)."""
        model = self.config.model
        url = f"{self.config.catalogue_url.rstrip('/')}/v1/models"
        try:
            response = await self.http.get(
                url, params={"endpoint_id": model}, timeout=CHECK_TIMEOUT, follow_redirects=False
            )
        except httpx.HTTPError as exc:
            return None, f"model {model} not verified (catalogue unreachable: {type(exc).__name__})"
        if response.status_code == 404:
            return False, f"fal does not know the model {model!r}"
        body = upstream.json_or_none(response)
        models = body.get("models") if isinstance(body, dict) else None
        if response.status_code != 200 or not isinstance(models, list):
            return None, f"model {model} not verified (catalogue answered HTTP {response.status_code})"
        if any(isinstance(item, dict) and item.get("endpoint_id") == model for item in models):
            return True, f"model {model} exists"
        return False, f"fal's catalogue has no model {model!r}"


def _image_url(output: Any) -> str:
    """The first image's URL, after fal's safety verdict; ProviderBlocked or ProviderFailed."""
    if not isinstance(output, dict):
        raise ProviderFailed("fal: the result is not a JSON object")
    flags = output.get("has_nsfw_concepts")
    if isinstance(flags, list) and any(flag is True for flag in flags):
        # fal blanks a flagged image (all black) rather than withholding it: never serve it.
        log.info("fal: the safety checker flagged the generated image")
        raise ProviderBlocked("fal's safety checker flagged the generated image")
    images = output.get("images")
    first = images[0] if isinstance(images, list) and images else None
    url = first.get("url") if isinstance(first, dict) else None
    if not isinstance(url, str) or not url:
        raise ProviderFailed("fal: the result has no image")
    return url


def _policy_violation(body: Any) -> bool:
    detail = body.get("detail") if isinstance(body, dict) else None
    return isinstance(detail, list) and any(
        isinstance(item, dict) and item.get("type") == CONTENT_POLICY_VIOLATION for item in detail
    )


def _origin(url: str) -> str:
    """Scheme and host only, for messages: queue URLs are not secret, but keep messages short."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "an invalid URL"
    return f"{parsed.scheme}://{parsed.host}" if parsed.host else "a URL without a host"
