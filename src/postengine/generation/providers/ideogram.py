"""Ideogram's legacy `POST /generate` endpoint, for the `ideogram-v2` model (PROVIDERS.md, "Ideogram").

One request per generation: `{"image_request": {prompt, model, resolution, magic_prompt_option,
num_images: 1}}` with the key in the `Api-Key` header (not `Authorization: Bearer`). We always send an
explicit `resolution` (never `aspect_ratio`: the two are mutually exclusive) so the size we get is the
size the table below promises. The answer is a short-lived URL, fetched at once through
`upstream.download_image` (https only, public addresses only, byte cap, Pillow check).

How Ideogram's answers map to our errors:

    200, `is_image_safe: false`, or an empty/missing `url`   ProviderBlocked (never retried)
    422 `{"error": "... failed the safety checks"}`           ProviderBlocked
    422 with a validation `detail` list, or 400                ProviderFailed: we sent a bad request
    400/422 that names the `model` field                       ProviderMisconfigured (PE_IDEOGRAM_MODEL)
    401/403                                                    ProviderMisconfigured (PE_IDEOGRAM_API_KEY)
    429 (too many requests in flight; `Retry-After` honoured)  retried, then ProviderOverloaded
    500/502/503/504, timeouts, connection errors               retried, then ProviderFailed/Overloaded

A generation is charged when `/generate` answers 200, so when only the download of the result fails
in a retryable way the next try fetches the same URL again instead of paying for a new image.

`check()`: Ideogram has no free "who am I" or model-listing endpoint, so it sends `POST /generate`
with an image request that has no prompt. The key is checked before the body (as with any API that
authenticates in front of validation; a wrong key answers 401 whatever the body), so 401/403 means
the key is wrong and 400/422 means it was accepted; nothing is generated or charged because there is
nothing to generate. The model id is checked against Ideogram's documented
values locally (`problem()`), and the 400/422 message is read in case it objects to the model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from PIL import Image

from postengine.generation.models import AspectRatio
from postengine.generation.providers import upstream
from postengine.generation.providers.base import (
    CheckResult,
    ImageRequest,
    ProviderBlocked,
    ProviderFailed,
    ProviderMisconfigured,
)
from postengine.kit import netguard

log = logging.getLogger("postengine.providers")

API_KEY_SETTING = "PE_IDEOGRAM_API_KEY"
MODEL_SETTING = "PE_IDEOGRAM_MODEL"
BASE_URL_SETTING = "PE_IDEOGRAM_BASE_URL"

# https://developer.ideogram.ai/api-reference/api-reference/generate (legacy): `model` values.
KNOWN_MODELS = frozenset({"V_1", "V_1_TURBO", "V_2", "V_2_TURBO", "V_2A", "V_2A_TURBO"})
MAGIC_PROMPT_OPTIONS = frozenset({"AUTO", "ON", "OFF"})

# PROVIDERS.md: the resolution we ask for per aspect ratio (all at least our 1024 long side).
RESOLUTIONS: dict[AspectRatio, str] = {
    AspectRatio.SQUARE: "RESOLUTION_1024_1024",
    AspectRatio.WIDE: "RESOLUTION_1280_720",
    AspectRatio.TALL: "RESOLUTION_720_1280",
    AspectRatio.LANDSCAPE_4_3: "RESOLUTION_1024_768",
    AspectRatio.PORTRAIT_3_4: "RESOLUTION_768_1024",
    AspectRatio.PORTRAIT_4_5: "RESOLUTION_896_1120",
    AspectRatio.LANDSCAPE_5_4: "RESOLUTION_1120_896",
}

CHECK_TIMEOUT = 15.0


@dataclass(frozen=True, slots=True)
class IdeogramConfig:
    api_key: str | None
    base_url: str = "https://api.ideogram.ai"
    model: str = "V_2"
    magic_prompt_option: str = "OFF"  # our prompts are already written; Ideogram's rewrite is a surprise


class IdeogramProvider:
    name = "ideogram"

    def __init__(
        self, config: IdeogramConfig, http: httpx.AsyncClient, options: upstream.UpstreamOptions | None = None
    ) -> None:
        self.config = config
        self.http = http
        self.options = options or upstream.UpstreamOptions()
        self._url = config.base_url.rstrip("/") + "/generate"

    def problem(self) -> str | None:
        if (key_issue := upstream.key_problem(self.config.api_key, API_KEY_SETTING)) is not None:
            return key_issue
        if self.config.model not in KNOWN_MODELS:
            return (
                f"{MODEL_SETTING} {self.config.model!r} is not an Ideogram model for /generate "
                f"(one of {', '.join(sorted(KNOWN_MODELS))})"
            )
        if self.config.magic_prompt_option not in MAGIC_PROMPT_OPTIONS:
            return (
                f"Ideogram magic_prompt_option {self.config.magic_prompt_option!r} is not one of "
                f"{', '.join(sorted(MAGIC_PROMPT_OPTIONS))}"
            )
        if (problem := upstream.base_url_problem(self.config.base_url)) is not None:
            return f"{BASE_URL_SETTING} {problem}"
        return None

    def _headers(self) -> dict[str, str]:
        return {
            "Api-Key": self.config.api_key or "",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }

    async def check(self) -> CheckResult:
        problem = self.problem()
        if problem is not None:
            return CheckResult(False, problem)
        # No prompt: invalid on purpose, so nothing is generated or charged (module docstring).
        probe = {"image_request": {"model": self.config.model, "num_images": 1}}
        try:
            response = await self.http.post(
                self._url,
                headers=self._headers(),
                content=orjson.dumps(probe),
                timeout=CHECK_TIMEOUT,
                follow_redirects=False,
            )
        except httpx.HTTPError as exc:
            return CheckResult(False, f"cannot reach {netguard.redact(self._url)} ({type(exc).__name__})")
        status = response.status_code
        body = upstream.json_or_none(response)
        if status in (401, 403):
            return CheckResult(False, f"Ideogram rejected the key (HTTP {status}); check {API_KEY_SETTING}")
        if status in (400, 422):
            if _names_model(body):
                return CheckResult(
                    False,
                    f"the key works, but Ideogram rejected model {self.config.model!r}: "
                    f"{upstream.upstream_message(body)}; check {MODEL_SETTING}",
                )
            return CheckResult(True, f"key accepted; model {self.config.model} (checked against known ids)")
        if status == 200:  # should not happen without a prompt; the key plainly works
            return CheckResult(True, f"key accepted; model {self.config.model}")
        said = upstream.upstream_message(body)
        if status == 429:
            return CheckResult(False, "Ideogram is rate-limiting us (HTTP 429); the key could not be checked")
        return CheckResult(False, f"unexpected HTTP {status} from Ideogram" + (f": {said}" if said else ""))

    async def generate(self, request: ImageRequest) -> Image.Image:
        upstream.require_usable(self.name, self.problem())
        body = {
            "image_request": {
                "prompt": request.prompt,
                "model": self.config.model,
                "resolution": RESOLUTIONS[request.aspect_ratio],
                "magic_prompt_option": self.config.magic_prompt_option,
                "num_images": 1,
            }
        }
        # Set once /generate has answered: a retry after a failed download fetches it again.
        result_url: str | None = None

        async def attempt() -> Image.Image:
            nonlocal result_url
            if result_url is None:
                result_url = await self._generate_url(request, body)
            return await upstream.download_image(
                self.http, self.name, result_url, request=request, options=self.options
            )

        return await upstream.with_retries(self.name, request, self.options, attempt)

    async def _generate_url(self, request: ImageRequest, body: dict[str, Any]) -> str:
        response = await upstream.send(
            self.http,
            self.name,
            "POST",
            self._url,
            request=request,
            options=self.options,
            headers=self._headers(),
            json=body,
        )
        if response.status_code != 200:
            raise self._error(response)
        payload = upstream.json_body(response, self.name)
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list) or not data or not isinstance(data[0], dict):
            raise ProviderFailed(f"{self.name}: HTTP 200 without an image in `data`")
        item = data[0]
        if item.get("is_image_safe") is False:
            log.info("%s: the generated image failed Ideogram's safety check", self.name)
            raise ProviderBlocked("Ideogram's safety check flagged the generated image")
        url = item.get("url")
        if not isinstance(url, str) or not url:
            # Ideogram withholds the URL of an image it will not serve (PROVIDERS.md).
            log.info("%s: HTTP 200 without an image URL; treated as a safety block", self.name)
            raise ProviderBlocked("Ideogram returned no image for this prompt (safety filter)")
        return url

    def _error(self, response: httpx.Response) -> Exception:
        status = response.status_code
        body = upstream.json_or_none(response)
        if status in (400, 422) and _names_model(body):
            log.error(
                "%s: HTTP %d rejecting the model (%s); check %s",
                self.name,
                status,
                upstream.upstream_message(body),
                MODEL_SETTING,
            )
            return ProviderMisconfigured(
                f"{self.name} rejected the configured model {self.config.model!r} (HTTP {status}); "
                f"the operator must check {MODEL_SETTING}"
            )
        if status == 422 and not _is_validation_error(body):
            message = upstream.upstream_message(body) or "the prompt failed Ideogram's safety checks"
            log.info("%s: prompt refused by the safety checks (HTTP 422)", self.name)
            return ProviderBlocked(f"Ideogram refused the prompt: {message}")
        if status in (400, 422):
            # Our request was wrong, not the user's prompt: a bug to fix, and the same again would fail.
            log.warning(
                "%s: HTTP %d rejecting our request: %s", self.name, status, upstream.upstream_message(body)
            )
        return upstream.status_error(response, self.name, setting=API_KEY_SETTING, options=self.options)


def _is_validation_error(body: Any) -> bool:
    """A FastAPI/pydantic-style `{"detail": [{"loc": [...], "msg": ...}]}`: a malformed request."""
    detail = body.get("detail") if isinstance(body, dict) else None
    return isinstance(detail, list) and any(isinstance(item, dict) and "loc" in item for item in detail)


def _names_model(body: Any) -> bool:
    """Whether a 400/422 body objects to the `model` field (the operator's setting, not our code)."""
    if _is_validation_error(body):
        return any(
            isinstance(item, dict) and "model" in [str(part) for part in item.get("loc") or []]
            for item in body["detail"]
        )
    return "model" in upstream.upstream_message(body).lower()
