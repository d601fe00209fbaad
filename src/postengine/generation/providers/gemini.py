"""The Gemini API (`generateContent`) as a provider for `nano-banana-pro` and `gemini-3-pro` (PROVIDERS.md).

One call per try: `POST {base_url}/v1beta/models/{model}:generateContent` with the key in the
`x-goog-api-key` header (never `?key=`: query strings end up in access logs). The image comes back
inline as base64, so there is no result URL to download.

How answers map to our errors (on top of `upstream.status_error`):

- HTTP 200 with `promptFeedback.blockReason`, or no image and a safety `finishReason` → ProviderBlocked.
- HTTP 200 with no image for any other reason (text only, `NO_IMAGE`, `IMAGE_OTHER`, `OTHER`,
  `MAX_TOKENS`, …) → ProviderFailed, retried once per generation whatever `max_retries` says.
- HTTP 400 `API_KEY_INVALID`, 403, 404 (model id), 400 `FAILED_PRECONDITION` (region or billing)
  → ProviderMisconfigured; any other 400 is our bug → ProviderFailed.
- HTTP 429 `RESOURCE_EXHAUSTED` → retried after the `google.rpc.RetryInfo.retryDelay` it carries
  (or `Retry-After`), then ProviderOverloaded.

Sources: https://ai.google.dev/api/generate-content, https://ai.google.dev/gemini-api/docs/image-generation,
https://ai.google.dev/gemini-api/docs/troubleshooting (error codes).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import httpx
import orjson
from PIL import Image

from postengine.generation.models import ImageModel
from postengine.generation.providers.base import (
    CheckResult,
    ImageRequest,
    ProviderBlocked,
    ProviderFailed,
    ProviderMisconfigured,
)
from postengine.generation.providers.upstream import (
    Retryable,
    UpstreamOptions,
    base_url_problem,
    decode_base64,
    decode_image_async,
    json_body,
    key_problem,
    require_usable,
    send,
    status_error,
    upstream_message,
    with_retries,
)

log = logging.getLogger("postengine.providers")

SETTING = "PE_GEMINI_API_KEY"
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
DEFAULT_MODELS: Mapping[ImageModel, str] = MappingProxyType(
    {
        ImageModel.NANO_BANANA_PRO: "gemini-3-pro-image-preview",
        ImageModel.GEMINI_3_PRO: "gemini-3-pro-image-preview",
    }
)
DEFAULT_IMAGE_SIZES: Mapping[ImageModel, str] = MappingProxyType(
    {ImageModel.NANO_BANANA_PRO: "2K", ImageModel.GEMINI_3_PRO: "2K"}
)
IMAGE_SIZES = ("1K", "2K", "4K")

# A model id goes into the URL path: letters, digits, dots, dashes, underscores, nothing else.
_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

# https://ai.google.dev/api/generate-content#FinishReason: an answer without an image that ended
# for one of these reasons was refused for safety; it is the prompt's fault, so never retried.
BLOCK_FINISH_REASONS = frozenset(
    {
        "SAFETY",
        "PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "RECITATION",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    }
)
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s)\s*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class GeminiConfig:
    api_key: str | None
    base_url: str = DEFAULT_BASE_URL
    # Public model → upstream model id. Preview ids get renamed and retired, hence configuration.
    models: Mapping[ImageModel, str] = field(default_factory=lambda: DEFAULT_MODELS)
    # Public model → `imageConfig.imageSize`; sent only where the upstream model takes it.
    image_sizes: Mapping[ImageModel, str] = field(default_factory=lambda: DEFAULT_IMAGE_SIZES)


def takes_image_size(model_id: str) -> bool:
    """Whether `imageConfig.imageSize` may be sent to this upstream model.

    The rule: every Gemini 2.x image model (`gemini-2.5-flash-image`, `gemini-2.0-flash-preview-image-
    generation`, …) has a single 1K tier and no `imageSize`; the 3.x image models (`gemini-3-pro-image-
    preview`) take it. An id we cannot place is assumed to be newer, so it gets `imageSize`."""
    return not model_id.lower().startswith("gemini-2")


def retry_delay(body: Any) -> float | None:
    """Seconds from the `google.rpc.RetryInfo` entry of a Google error envelope, or None.

    `retryDelay` is a JSON `google.protobuf.Duration` ("12s", "0.600s"); "600ms" and the object form
    `{"seconds": 12, "nanos": 0}` are accepted too."""
    for detail in _error_details(body):
        if detail.get("@type") != _RETRY_INFO:
            continue
        value = detail.get("retryDelay")
        if isinstance(value, str):
            match = _DURATION.fullmatch(value)
            if match is None:
                return None
            amount = float(match.group(1))
            return amount / 1000 if match.group(2).lower() == "ms" else amount
        if isinstance(value, dict):
            seconds, nanos = value.get("seconds", 0), value.get("nanos", 0)
            try:
                return max(0.0, float(seconds) + float(nanos) / 1e9)
            except (TypeError, ValueError):
                return None
    return None


class GeminiProvider:
    name = "gemini"

    def __init__(
        self, config: GeminiConfig, http: httpx.AsyncClient, options: UpstreamOptions | None = None
    ) -> None:
        self.config = config
        self.options = options or UpstreamOptions()
        self._http = http
        self._base = config.base_url.rstrip("/")

    def problem(self) -> str | None:
        if (key_issue := key_problem(self.config.api_key, SETTING)) is not None:
            return key_issue
        base_problem = base_url_problem(self.config.base_url)
        if base_problem is not None:
            return f"PE_GEMINI_BASE_URL {base_problem}"
        if not self.config.models:
            return "gemini has no upstream model configured"
        for model, model_id in self.config.models.items():
            if not _MODEL_ID.fullmatch(_bare_id(model_id)):
                return f"gemini: the upstream model id for {model} is not a valid model id"
        for model, size in self.config.image_sizes.items():
            if size.upper() not in IMAGE_SIZES:
                return f"gemini: image size {size!r} for {model} is not one of {', '.join(IMAGE_SIZES)}"
        return None

    async def check(self) -> CheckResult:
        """`GET /v1beta/models/{id}` for each configured id: free, and it needs a valid key."""
        problem = self.problem()
        if problem is not None:
            return CheckResult(False, problem)
        reachable: list[str] = []
        for model_id in dict.fromkeys(_bare_id(value) for value in self.config.models.values()):
            try:
                response = await self._http.get(
                    f"{self._base}/v1beta/models/{model_id}",
                    headers=self._headers(),
                    timeout=httpx.Timeout(30.0, connect=self.options.connect_timeout),
                    follow_redirects=False,
                )
            except httpx.HTTPError as exc:
                host = httpx.URL(self._base).host
                return CheckResult(False, f"gemini: cannot reach {host} ({type(exc).__name__})")
            failure = self._check_failure(response, model_id)
            if failure is not None:
                return CheckResult(False, failure)
            reachable.append(f"{model_id} reachable")
        return CheckResult(True, "; ".join(reachable))

    async def generate(self, request: ImageRequest) -> Image.Image:
        require_usable(self.name, self.problem())
        model_id = self.config.models.get(request.model)
        if model_id is None:
            log.error("gemini has no upstream model configured for %s", request.model)
            raise ProviderMisconfigured(f"gemini has no upstream model configured for {request.model}")
        model_id = _bare_id(model_id)
        url = f"{self._base}/v1beta/models/{model_id}:generateContent"
        body = self._body(request, model_id)
        no_image_answers = 0

        async def attempt() -> Image.Image:
            nonlocal no_image_answers
            response = await send(
                self._http,
                self.name,
                "POST",
                url,
                request=request,
                options=self.options,
                headers=self._headers(),
                json=body,
            )
            if response.status_code != 200:
                raise self._status_error(response, request.model, model_id)
            try:
                data = self._image_bytes(json_body(response, self.name))
            except _NoImage as exc:
                # PROVIDERS.md allows one retry for an answer without an image: asking a third time
                # rarely helps and every answer is billed.
                no_image_answers += 1
                failed = ProviderFailed(f"gemini returned no image ({exc})")
                if no_image_answers > 1:
                    raise failed from None
                raise Retryable(failed) from None
            return await decode_image_async(data, self.name, self.options)

        image = await with_retries(self.name, request, self.options, attempt)
        if image.width < request.width or image.height < request.height:
            log.warning(
                "gemini: %s answered %dx%d for a %dx%d output; check the configured image size",
                model_id,
                image.width,
                image.height,
                request.width,
                request.height,
            )
        return image

    # ------------------------------------------------------------------------------------- request

    def _headers(self) -> dict[str, str]:
        return {
            "x-goog-api-key": self.config.api_key or "",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }

    def _body(self, request: ImageRequest, model_id: str) -> dict[str, Any]:
        image_config: dict[str, str] = {"aspectRatio": request.aspect_ratio.value}
        size = self.config.image_sizes.get(request.model)
        if size is not None and takes_image_size(model_id):
            image_config["imageSize"] = size.upper()
        return {
            "contents": [{"role": "user", "parts": [{"text": request.prompt}]}],
            "generationConfig": {
                "responseModalities": ["IMAGE"],
                "imageConfig": image_config,
                "candidateCount": 1,
            },
        }

    # ------------------------------------------------------------------------------------ response

    def _image_bytes(self, payload: Any) -> bytes:
        if not isinstance(payload, dict):
            raise ProviderFailed("gemini: HTTP 200 with a body that is not a JSON object")
        feedback = payload.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            reason = str(feedback["blockReason"])
            log.info("gemini blocked the prompt (%s)", reason)
            raise ProviderBlocked(f"gemini refused the prompt ({reason})")
        candidates = payload.get("candidates")
        if not isinstance(candidates, list) or not candidates or not isinstance(candidates[0], dict):
            raise _NoImage("no candidates")
        candidate = candidates[0]
        data = _last_image_data(candidate)
        if data is not None:
            return decode_base64(data, self.name)
        finish = str(candidate.get("finishReason") or "none")
        if finish in BLOCK_FINISH_REASONS:
            log.info("gemini blocked the image (finishReason %s)", finish)
            raise ProviderBlocked(f"gemini refused to return the image ({finish})")
        if finish == "STOP":
            raise _NoImage("finishReason STOP with only text")
        raise _NoImage(f"finishReason {finish}")

    def _status_error(self, response: httpx.Response, model: ImageModel, model_id: str) -> Exception:
        status = response.status_code
        try:
            body: Any = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        upstream_status = error.get("status") if isinstance(error, dict) else None
        said = upstream_message(body)
        if status == 400 and _has_reason(body, "API_KEY_INVALID"):
            log.error("gemini rejected our API key (HTTP 400 API_KEY_INVALID); check %s", SETTING)
            return ProviderMisconfigured(
                f"gemini rejected the server's API key (API_KEY_INVALID); the operator must check {SETTING}"
            )
        if status == 400 and upstream_status == "FAILED_PRECONDITION":
            # "User location is not supported", "free tier is not available in your country": the
            # operator's Google project, not this request; another provider in the chain may work.
            log.error("gemini refuses this project (HTTP 400 FAILED_PRECONDITION): %s", said)
            return ProviderMisconfigured(
                "gemini refuses the server's project (FAILED_PRECONDITION: region or billing); "
                "the operator must check the Google AI Studio project"
            )
        if status == 404:
            # Named here, unlike the generic mapping: preview ids are retired, and the operator needs
            # to know which setting to change.
            log.error("gemini: HTTP 404 for model %r (%s): %s", model_id, model, said)
            return ProviderMisconfigured(
                f"gemini does not know the model {model_id!r} configured for {model} (HTTP 404); "
                "the operator must check its model id"
            )
        return status_error(
            response, self.name, setting=SETTING, hint=retry_delay(body), options=self.options
        )

    def _check_failure(self, response: httpx.Response, model_id: str) -> str | None:
        """Why `GET models/{id}` says this setup will not work, or None."""
        status = response.status_code
        try:
            body: Any = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            body = None
        if status == 200:
            if not isinstance(body, dict):
                return f"gemini: HTTP 200 for {model_id} with a body that is not a JSON object"
            methods = body.get("supportedGenerationMethods")
            if isinstance(methods, list) and "generateContent" not in methods:
                return f"gemini: {model_id} does not support generateContent"
            return None
        said = upstream_message(body)
        if status in (401, 403) or (status == 400 and _has_reason(body, "API_KEY_INVALID")):
            return f"gemini rejected the API key (HTTP {status}); check {SETTING}"
        if status == 404:
            return f"gemini does not know the model {model_id!r} (HTTP 404); check its upstream model id"
        if status == 429:
            retry = retry_delay(body)
            wait = f"; retry in {math.ceil(retry)} s" if retry is not None else ""
            return f"gemini is rate-limiting us (HTTP 429){wait}"
        return f"gemini: HTTP {status} for {model_id}" + (f": {said}" if said else "")


class _NoImage(Exception):
    """An HTTP 200 answer with no image and no safety reason: worth one more try."""


def _last_image_data(candidate: dict[str, Any]) -> str | None:
    """The base64 data of the last non-thought inline image part (3-pro sends draft "thought" images
    before the final one)."""
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        return None
    for part in reversed(parts):
        if not isinstance(part, dict) or part.get("thought") is True:
            continue
        inline = part.get("inlineData", part.get("inline_data"))
        if isinstance(inline, dict) and isinstance(inline.get("data"), str) and inline["data"]:
            data: str = inline["data"]
            return data
    return None


def _error_details(body: Any) -> Iterator[dict[str, Any]]:
    error = body.get("error") if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    if isinstance(details, list):
        yield from (detail for detail in details if isinstance(detail, dict))


def _has_reason(body: Any, reason: str) -> bool:
    """Whether a `google.rpc.ErrorInfo` entry of the error envelope carries `reason`."""
    return any(detail.get("reason") == reason for detail in _error_details(body))


def _bare_id(model_id: str) -> str:
    """`models/gemini-…` (as ListModels spells it) and `gemini-…` name the same model."""
    model_id = model_id.strip()
    return model_id.removeprefix("models/")
