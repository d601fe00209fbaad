"""Replicate's `black-forest-labs/flux-schnell` as a provider for `flux-schnell` (PROVIDERS.md, "Replicate").

`POST {base_url}/v1/models/{model}/predictions` with `Authorization: Bearer TOKEN` and `Prefer:
wait=N`: Replicate holds the request up to N seconds and usually answers with a finished prediction.
If it is still `starting`/`processing`, we poll `urls.get` (only on the API host: the token is never
sent anywhere else) every `poll_interval` seconds until it finishes or the generation's deadline
comes; then we cancel it, best effort (`POST urls.cancel`), so it is not run and charged for nothing.
A succeeded prediction's `output[0]` (or a plain string `output`) is downloaded at once through
`upstream.download_image` (https only, public addresses only, byte cap, Pillow check).
https://replicate.com/docs/reference/http#create-a-prediction-using-an-official-model

How Replicate's answers map to our errors (errors are RFC 7807 `{type, title, status, detail}`):

    prediction `failed` with an error mentioning NSFW        ProviderBlocked (never retried)
    prediction `failed` otherwise, `canceled`, `aborted`     ProviderFailed
    401/403                                                  ProviderMisconfigured (PE_REPLICATE_API_TOKEN)
    402 (out of credit)                                      ProviderMisconfigured: the operator must pay
    404 on create (unknown model)                            ProviderMisconfigured (PE_REPLICATE_MODEL)
    422 (input validation: our bug)                          ProviderFailed
    429 (`Retry-After` honoured), 500/502/503/504, timeouts  retried, then ProviderOverloaded/Failed

`Prefer: wait` is shortened when the deadline is nearer than `wait_seconds`, so Replicate answers
(with the prediction's id) before our own timeout cuts the request: a request we abandon unanswered
is a prediction we can neither poll nor cancel.

`check()`: `GET /v1/account` proves the token (200, or 401), then `GET /v1/models/{model}` proves
the model id (404 when it does not exist). Both are free.
"""

from __future__ import annotations

import functools
import logging
import math
import re
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
    ProviderMisconfigured,
)

log = logging.getLogger("postengine.providers")

TOKEN_SETTING = "PE_REPLICATE_API_TOKEN"  # noqa: S105 - the name of the setting, not a token
MODEL_SETTING = "PE_REPLICATE_MODEL"
BASE_URL_SETTING = "PE_REPLICATE_BASE_URL"

# All seven of our ratios are values of the model's `aspect_ratio` input; at `megapixels: "1"` each
# comes back at least as large as our 1024-long-side output (16:9 is 1344x768).
ASPECT_RATIOS: dict[AspectRatio, str] = {ratio: ratio.value for ratio in AspectRatio}

_MODEL_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")  # owner/name, no `:version`
MAX_WAIT_SECONDS = 60  # Replicate's limit for `Prefer: wait`
WAIT_MARGIN = 5.0  # seconds between Replicate's answer to `Prefer: wait` and our own timeout
CHECK_TIMEOUT = 8.0  # per call; check() makes two within the registry's 20 s budget
CANCEL_TIMEOUT = 5.0
# Polling without a deadline (the service always sets one) still ends.
MAX_POLL_SECONDS = 600.0


class PredictionStatus(StrEnum):
    STARTING = "starting"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


RUNNING = frozenset({PredictionStatus.STARTING, PredictionStatus.PROCESSING})


@dataclass(frozen=True, slots=True)
class ReplicateConfig:
    api_token: str | None
    model: str = "black-forest-labs/flux-schnell"
    base_url: str = "https://api.replicate.com"
    wait_seconds: int = 60  # `Prefer: wait`; 0 sends no Prefer header (poll from the start)
    poll_interval: float = 1.0


class ReplicateProvider:
    name = "replicate"

    def __init__(
        self,
        config: ReplicateConfig,
        http: httpx.AsyncClient,
        options: upstream.UpstreamOptions | None = None,
    ) -> None:
        self.config = config
        self.http = http
        self.options = options or upstream.UpstreamOptions()
        self._base = config.base_url.rstrip("/")

    def problem(self) -> str | None:
        config = self.config
        if (key_issue := upstream.key_problem(config.api_token, TOKEN_SETTING)) is not None:
            return key_issue
        if not _MODEL_ID.fullmatch(config.model):
            return f"{MODEL_SETTING} {config.model!r} is not a Replicate model name like 'owner/name'"
        if (problem := upstream.base_url_problem(config.base_url)) is not None:
            return f"{BASE_URL_SETTING} {problem}"
        if not 0 <= config.wait_seconds <= MAX_WAIT_SECONDS:
            return f"the Replicate wait must be between 0 and {MAX_WAIT_SECONDS} seconds"
        if not config.poll_interval > 0:
            return "the Replicate poll interval must be positive"
        return None

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.config.api_token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }

    # --- generation ------------------------------------------------------------------------------

    async def generate(self, request: ImageRequest) -> Image.Image:
        upstream.require_usable(self.name, self.problem())
        body = {
            "input": {
                "prompt": request.prompt,
                "aspect_ratio": ASPECT_RATIOS[request.aspect_ratio],
                "num_outputs": 1,
                "output_format": "webp",
                "megapixels": "1",
            }
        }
        prediction = await upstream.with_retries(
            self.name, request, self.options, functools.partial(self._create, request, body)
        )
        prediction = await self._wait(request, prediction)
        url = _output_url(prediction)
        return await upstream.with_retries(
            self.name,
            request,
            self.options,
            functools.partial(
                upstream.download_image, self.http, self.name, url, request=request, options=self.options
            ),
        )

    async def _create(self, request: ImageRequest, body: dict[str, Any]) -> dict[str, Any]:
        headers = self._headers()
        wait = self._wait_seconds(request)
        if wait is not None:
            headers["Prefer"] = f"wait={wait}"
        response = await upstream.send(
            self.http,
            self.name,
            "POST",
            f"{self._base}/v1/models/{self.config.model}/predictions",
            request=request,
            options=self.options,
            headers=headers,
            json=body,
        )
        if response.status_code not in (200, 201, 202):
            raise self._error(response)
        prediction = self._prediction(response)
        log.debug("%s: prediction %s is %s", self.name, prediction.get("id"), prediction.get("status"))
        return prediction

    def _wait_seconds(self, request: ImageRequest) -> int | None:
        if self.config.wait_seconds <= 0:
            return None
        remaining = request.remaining(self.options.now()) - WAIT_MARGIN
        if math.isinf(remaining):
            return self.config.wait_seconds
        return max(1, min(self.config.wait_seconds, math.floor(remaining)))

    async def _wait(self, request: ImageRequest, prediction: dict[str, Any]) -> dict[str, Any]:
        """Poll `urls.get` until the prediction has finished; at the deadline, cancel and fail."""
        if prediction.get("status") not in RUNNING:
            return prediction
        urls = prediction.get("urls")
        get_url = urls.get("get") if isinstance(urls, dict) else None
        cancel_url = urls.get("cancel") if isinstance(urls, dict) else None
        if not isinstance(cancel_url, str) or not self._on_api_host(cancel_url):
            cancel_url = None
        if not isinstance(get_url, str) or not self._on_api_host(get_url):
            await self._cancel(cancel_url, prediction)
            log.warning("%s: refused to poll a prediction URL off the API host", self.name)
            raise ProviderFailed(f"{self.name}: the prediction has no pollable URL on the API host")
        interval = self.config.poll_interval
        limit = request.deadline
        if limit is None:
            limit = self.options.now() + MAX_POLL_SECONDS
        try:
            while prediction.get("status") in RUNNING:
                if self.options.now() + interval >= limit:
                    log.warning(
                        "%s: prediction %s still %s at the deadline",
                        self.name,
                        prediction.get("id"),
                        prediction.get("status"),
                    )
                    raise ProviderFailed(f"{self.name}: the prediction did not finish before the deadline")
                await self.options.sleep(interval)
                prediction = await upstream.with_retries(
                    self.name, request, self.options, functools.partial(self._poll, request, get_url)
                )
        except ProviderError:
            await self._cancel(cancel_url, prediction)
            raise
        return prediction

    async def _poll(self, request: ImageRequest, url: str) -> dict[str, Any]:
        response = await upstream.send(
            self.http, self.name, "GET", url, request=request, options=self.options, headers=self._headers()
        )
        if response.status_code != 200:
            raise self._error(response, created=True)
        return self._prediction(response)

    async def _cancel(self, url: str | None, prediction: dict[str, Any]) -> None:
        """Best effort: an abandoned prediction would still run and be charged."""
        if url is None:
            return
        try:
            response = await self.http.post(
                url, headers=self._headers(), timeout=CANCEL_TIMEOUT, follow_redirects=False
            )
        except httpx.HTTPError as exc:
            log.warning(
                "%s: cancelling prediction %s failed (%s)",
                self.name,
                prediction.get("id"),
                type(exc).__name__,
            )
            return
        log.info(
            "%s: cancel of prediction %s: HTTP %d", self.name, prediction.get("id"), response.status_code
        )

    def _prediction(self, response: httpx.Response) -> dict[str, Any]:
        body = upstream.json_body(response, self.name)
        if not isinstance(body, dict) or not isinstance(body.get("status"), str):
            raise ProviderFailed(f"{self.name}: HTTP {response.status_code} without a prediction")
        return body

    def _error(self, response: httpx.Response, *, created: bool = False) -> Exception:
        status = response.status_code
        body = upstream.json_or_none(response)
        said = upstream.upstream_message(body)
        if status == 402:
            log.error("%s: the account is out of credit (HTTP 402: %s); top it up", self.name, said)
            return ProviderMisconfigured(
                f"{self.name} refused to run the model: the account is out of credit (HTTP 402)"
            )
        if status == 404 and created:
            # The model was found when we created the prediction: the prediction is gone, not the model.
            return ProviderFailed(f"{self.name}: the prediction is gone (HTTP 404)")
        if status == 404:
            log.error("%s: HTTP 404 creating a prediction (%s); check %s", self.name, said, MODEL_SETTING)
            return ProviderMisconfigured(
                f"{self.name} does not know the configured model (HTTP 404); the operator must check {MODEL_SETTING}"
            )
        if status == 422:
            # Input validation: our request was wrong, not the user's prompt. A bug to fix.
            log.warning("%s: HTTP 422 rejecting our request: %s", self.name, said)
        return upstream.status_error(response, self.name, setting=TOKEN_SETTING, options=self.options)

    def _on_api_host(self, url: str) -> bool:
        return upstream.same_origin(url, self._base)

    # --- check -----------------------------------------------------------------------------------

    async def check(self) -> CheckResult:
        problem = self.problem()
        if problem is not None:
            return CheckResult(False, problem)
        account = await self._check_get("/v1/account")
        if isinstance(account, str):
            return CheckResult(False, account)
        if account.status_code in (401, 403):
            return CheckResult(
                False, f"Replicate rejected the token (HTTP {account.status_code}); check {TOKEN_SETTING}"
            )
        if account.status_code != 200:
            return CheckResult(False, _unexpected(account, "/v1/account"))
        model = await self._check_get(f"/v1/models/{self.config.model}")
        if isinstance(model, str):
            return CheckResult(False, model)
        if model.status_code == 404:
            return CheckResult(
                False,
                f"token accepted, but Replicate has no model {self.config.model!r}; check {MODEL_SETTING}",
            )
        if model.status_code != 200:
            return CheckResult(False, _unexpected(model, "/v1/models"))
        username = upstream.json_or_none(account)
        who = username.get("username") if isinstance(username, dict) else None
        return CheckResult(
            True, f"token accepted{f' (account {who})' if who else ''}; model {self.config.model} exists"
        )

    async def _check_get(self, path: str) -> httpx.Response | str:
        """The response, or why there is none."""
        try:
            return await self.http.get(
                f"{self._base}{path}", headers=self._headers(), timeout=CHECK_TIMEOUT, follow_redirects=False
            )
        except httpx.HTTPError as exc:
            return f"cannot reach {httpx.URL(self._base).host} ({type(exc).__name__})"


def _output_url(prediction: dict[str, Any]) -> str:
    """A finished prediction's first output URL; ProviderBlocked or ProviderFailed otherwise."""
    status = prediction.get("status")
    if status == PredictionStatus.FAILED:
        error = upstream.upstream_message({"error": prediction.get("error")}) or "no reason given"
        if "nsfw" in error.lower():
            log.info("replicate: the safety checker flagged the output (%s)", error)
            raise ProviderBlocked("Replicate's safety checker flagged the generated image (NSFW)")
        raise ProviderFailed(f"replicate: the prediction failed: {error}")
    if status != PredictionStatus.SUCCEEDED:  # canceled, or a status newer than this code
        raise ProviderFailed(f"replicate: the prediction ended {status}")
    output = prediction.get("output")
    url = output[0] if isinstance(output, list) and output else output
    if not isinstance(url, str) or not url:
        raise ProviderFailed("replicate: the prediction succeeded without an output URL")
    return url


def _unexpected(response: httpx.Response, path: str) -> str:
    said = upstream.upstream_message(upstream.json_or_none(response))
    return f"unexpected HTTP {response.status_code} from Replicate {path}" + (f": {said}" if said else "")
