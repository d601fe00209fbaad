"""A fake Replicate: predictions, account and model lookups, and the delivery CDN, behind one MockTransport.

It checks what the adapter sends (method, path, `Authorization: Bearer ...`, `Prefer: wait=N`, the
JSON input and its `aspect_ratio`) by raising `AssertionError` from the transport, which the adapter
does not catch, so a wrong request fails the test where it happened. A wrong token gets Replicate's
own 401. Predictions and errors follow Replicate's HTTP API: a prediction object with `id`, `status`,
`output` (a list of `https://replicate.delivery/...` URLs), `error`, `urls.get`/`urls.cancel`, and
RFC 7807 problem documents (`title`, `detail`, `status`) for errors.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from PIL import Image

from tests.generation.providers import fakes

API_HOST = "api.replicate.com"
CDN_HOST = "replicate.delivery"
MODEL = "black-forest-labs/flux-schnell"
TOKEN = "r8_Tq4vZ9kP2mV7bN1cL5hJ3gF8dS6aW0eRxY2u"

# The model's `aspect_ratio` values for our ratios, and the size it renders at `megapixels: "1"`.
SIZE_FOR_RATIO = {
    "1:1": (1024, 1024),
    "16:9": (1344, 768),
    "9:16": (768, 1344),
    "4:3": (1152, 896),
    "3:4": (896, 1152),
    "4:5": (896, 1088),
    "5:4": (1088, 896),
}
NSFW_ERROR = "NSFW content detected. Try running it again, or try a different prompt."


def webp(width: int, height: int, colour: tuple[int, int, int] = (220, 80, 60)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="WEBP", quality=80)
    return buffer.getvalue()


def problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """An RFC 7807 problem document, the way Replicate sends its errors."""
    body = {"title": title, "detail": detail, "status": status}
    return fakes.json_response(status, body, headers, content_type="application/problem+json")


# --- Replicate's error answers -------------------------------------------------------------------


def unauthenticated() -> httpx.Response:
    return problem(401, "Unauthenticated", "You did not pass a valid authentication token")


def not_found() -> httpx.Response:
    return problem(404, "Not found", "The requested resource could not be found.")


def insufficient_credit() -> httpx.Response:
    return problem(
        402,
        "Insufficient credit",
        "You have insufficient credit to run this model. Go to https://replicate.com/account/billing#billing "
        "to purchase credit. Once you purchase credit, please wait a few minutes before trying again.",
    )


def invalid_input() -> httpx.Response:
    return fakes.json_response(
        422,
        {
            "type": "https://replicate.com/docs/reference/http#input-validation",
            "title": "Input validation failed",
            "detail": '- input.megapixels: megapixels must be one of the following: "1", "0.25"',
            "status": 422,
            "invalid_fields": [
                {
                    "type": "enum",
                    "field": "input.megapixels",
                    "description": 'megapixels must be one of the following: "1", "0.25"',
                }
            ],
        },
        content_type="application/problem+json",
    )


def throttled(after: str | None = None) -> httpx.Response:
    return problem(
        429,
        "Request was throttled.",
        "Request was throttled. Your rate limit for creating predictions is reduced to 6 requests per "
        "minute with a burst of 1 requests until you add a payment method.",
        fakes.retry_after(after),
    )


def server_error(status: int = 500) -> httpx.Response:
    if status == 502:
        return fakes.bad_gateway()
    return problem(status, "Internal Server Error", "An unexpected error occurred.")


def not_json() -> httpx.Response:
    return fakes.html_response(201, "Replicate")


Responder = Callable[["FakeReplicate", httpx.Request], httpx.Response]


@dataclass
class FakeReplicate(fakes.RoutedByHost):
    token: str = TOKEN
    models: set[str] = field(default_factory=lambda: {MODEL, "black-forest-labs/flux-dev"})
    # The statuses a prediction goes through: the first is what the create call answers (after
    # `Prefer: wait`), each poll moves one on; the last one repeats.
    statuses: list[str] = field(default_factory=lambda: ["succeeded"])
    error: str | None = None  # for a `failed` prediction
    output_as_string: bool = False
    cdn_scheme: str = "https"
    image_bytes: bytes | None = None
    urls_override: dict[str, str] = field(default_factory=dict)
    # Scripted answers, used in order; when a script runs out the fake behaves normally.
    create_script: list[Responder] = field(default_factory=list)
    poll_script: list[Responder] = field(default_factory=list)
    cdn_script: list[Responder] = field(default_factory=list)
    account_script: list[Responder] = field(default_factory=list)
    # What the adapter sent.
    inputs: list[dict[str, Any]] = field(default_factory=list)
    prefer: list[str | None] = field(default_factory=list)
    creates: int = 0
    polls: int = 0
    cancels: list[str] = field(default_factory=list)
    cdn_requests: list[httpx.Request] = field(default_factory=list)
    all_requests: list[httpx.Request] = field(default_factory=list)
    predictions: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)

    def routes(self) -> dict[str, Callable[[httpx.Request], httpx.Response]]:
        return {API_HOST: self._api, CDN_HOST: self._cdn}

    def record(self, request: httpx.Request) -> None:
        self.all_requests.append(request)

    # --- the API -------------------------------------------------------------------------------------

    def _api(self, request: httpx.Request) -> httpx.Response:
        assert request.url.scheme == "https" and request.url.host == API_HOST
        assert not request.url.query, "nothing belongs in the query string (tokens end up in logs)"
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return unauthenticated()
        path, method = request.url.path, request.method
        parts = path.strip("/").split("/")
        if (
            method == "POST"
            and len(parts) == 5
            and parts[:2] == ["v1", "models"]
            and parts[4] == "predictions"
        ):
            return self._create(request, f"{parts[2]}/{parts[3]}")
        if method == "GET" and len(parts) == 3 and parts[:2] == ["v1", "predictions"]:
            return self._poll(request, parts[2])
        if (
            method == "POST"
            and len(parts) == 4
            and parts[:2] == ["v1", "predictions"]
            and parts[3] == "cancel"
        ):
            return self._cancel(parts[2])
        if method == "GET" and path == "/v1/account":
            if self.account_script:
                return self.account_script.pop(0)(self, request)
            return fakes.json_response(
                200,
                {
                    "type": "organization",
                    "username": "acme-studio",
                    "name": "Acme Studio",
                    "github_url": None,
                },
            )
        if method == "GET" and len(parts) == 4 and parts[:2] == ["v1", "models"]:
            return self._model(f"{parts[2]}/{parts[3]}")
        raise AssertionError(f"unexpected API call {method} {path}")

    def _create(self, request: httpx.Request, model: str) -> httpx.Response:
        self.prefer.append(request.headers.get("prefer"))
        assert request.headers.get("content-type") == "application/json"
        body = orjson.loads(request.content)
        assert set(body) == {"input"}, body
        given = body["input"]
        assert set(given) == {"prompt", "aspect_ratio", "num_outputs", "output_format", "megapixels"}, given
        assert isinstance(given["prompt"], str) and given["prompt"]
        assert given["aspect_ratio"] in SIZE_FOR_RATIO, given["aspect_ratio"]
        assert given["num_outputs"] == 1
        assert given["output_format"] == "webp"
        assert given["megapixels"] == "1"
        self.inputs.append(given)
        self.creates += 1
        if self.create_script:
            return self.create_script.pop(0)(self, request)
        if model not in self.models:
            return not_found()
        prediction_id = secrets.token_hex(13)[:26]
        self.predictions[prediction_id] = {"input": given, "statuses": list(self.statuses), "model": model}
        return fakes.json_response(201, self.prediction(prediction_id))

    def prediction(self, prediction_id: str) -> dict[str, Any]:
        state = self.predictions[prediction_id]
        status = state["statuses"][0]
        base = f"https://{API_HOST}/v1/predictions/{prediction_id}"
        output: Any = None
        if status == "succeeded":
            if "output" not in state:
                width, height = SIZE_FOR_RATIO[state["input"]["aspect_ratio"]]
                path = f"/xezq/{secrets.token_urlsafe(24)}/out-0.webp"
                self.files[path] = self.image_bytes if self.image_bytes is not None else webp(width, height)
                state["output"] = f"{self.cdn_scheme}://{CDN_HOST}{path}"
            output = state["output"] if self.output_as_string else [state["output"]]
        urls = {
            "cancel": f"{base}/cancel",
            "get": base,
            "stream": f"https://stream.replicate.com/v1/files/{prediction_id}",
            "web": f"https://replicate.com/p/{prediction_id}",
        }
        urls.update(self.urls_override)
        finished = status in {"succeeded", "failed", "canceled"}
        return {
            "id": prediction_id,
            "model": state["model"],
            "version": "dp-4d0bcc010b3049749a251855f12800be",
            "input": state["input"],
            "logs": ""
            if status == "starting"
            else "Using seed: 1138\n100%|██████████| 4/4 [00:00<00:00, 9.12it/s]",
            "output": output,
            "data_removed": False,
            "error": self.error if status == "failed" else None,
            "status": status,
            "created_at": "2025-03-04T10:11:12.345Z",
            "started_at": None if status == "starting" else "2025-03-04T10:11:12.901Z",
            "completed_at": "2025-03-04T10:11:13.512Z" if finished else None,
            "urls": urls,
            "metrics": {"image_count": 1, "predict_time": 0.47} if status == "succeeded" else {},
        }

    def _poll(self, request: httpx.Request, prediction_id: str) -> httpx.Response:
        self.polls += 1
        if self.poll_script:
            return self.poll_script.pop(0)(self, request)
        state = self.predictions.get(prediction_id)
        if state is None:
            return not_found()
        if len(state["statuses"]) > 1:
            state["statuses"].pop(0)
        return fakes.json_response(200, self.prediction(prediction_id))

    def _cancel(self, prediction_id: str) -> httpx.Response:
        self.cancels.append(prediction_id)
        state = self.predictions.get(prediction_id)
        if state is None:
            return not_found()
        state["statuses"] = ["canceled"]
        return fakes.json_response(200, self.prediction(prediction_id))

    def _model(self, model: str) -> httpx.Response:
        if model not in self.models:
            return not_found()
        owner, name = model.split("/")
        return fakes.json_response(
            200,
            {
                "url": f"https://replicate.com/{model}",
                "owner": owner,
                "name": name,
                "description": "The fastest image generation model tailored for local development and personal use",
                "visibility": "public",
                "github_url": "https://github.com/replicate/cog-flux",
                "run_count": 512_345_678,
                "cover_image_url": "https://tjzk.replicate.delivery/models_models_featured_image/flux-schnell.webp",
                "default_example": None,
                "latest_version": {"id": "c846a69991daf4c0e5d016514849d14ee5b2e6846ce6b9d6f21369e564cfe51e"},
            },
        )

    # --- the CDN -------------------------------------------------------------------------------------

    def _cdn(self, request: httpx.Request) -> httpx.Response:
        fakes.check_cdn_request(request, "authorization", "the token must never go to the CDN")
        self.cdn_requests.append(request)
        if self.cdn_script:
            return self.cdn_script.pop(0)(self, request)
        data = self.files.get(request.url.path)
        if data is None:
            return httpx.Response(404, content=b"Not Found")
        return httpx.Response(200, content=data, headers={"content-type": "image/webp"})
