"""A fake Ideogram: the legacy `POST /generate` API and its image CDN, behind one `httpx.MockTransport`.

It checks what the adapter sends (method, path, `Api-Key` header, JSON body, the resolution for the
ratio) by raising `AssertionError` from the transport, which the adapter does not catch, so a wrong
request fails the test where it happened. Responses follow the shapes Ideogram documents; the
result images are PNGs at the size Ideogram returns for the resolution, served from an https CDN
host (`ideogram.ai/api/images/ephemeral/...?exp=...&signature=...`) like the real signed URLs.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from tests.generation.providers import fakes

API_HOST = "api.ideogram.ai"
CDN_HOST = "ideogram.ai"
API_KEY = "ik_live_9f3c2e7a41b04d6c8e5f1a2b3c4d5e6f"

# PROVIDERS.md: our ratio → the resolution enum → the pixel size Ideogram returns.
RESOLUTION_FOR_RATIO = {
    "1:1": "RESOLUTION_1024_1024",
    "16:9": "RESOLUTION_1280_720",
    "9:16": "RESOLUTION_720_1280",
    "4:3": "RESOLUTION_1024_768",
    "3:4": "RESOLUTION_768_1024",
    "4:5": "RESOLUTION_896_1120",
    "5:4": "RESOLUTION_1120_896",
}
IMAGE_COLOUR = (200, 90, 40)


def size_of(resolution: str) -> tuple[int, int]:
    _, width, height = resolution.split("_")
    return int(width), int(height)


# Error answers as Ideogram sends them (its errors are `{"error": "..."}` or FastAPI `{"detail": ...}`).
def unauthorized() -> httpx.Response:
    return fakes.json_response(401, {"detail": "Invalid API key"})


def forbidden() -> httpx.Response:
    return fakes.json_response(403, {"detail": "Not authorized to generate an image."})


def safety_refused() -> httpx.Response:
    return fakes.json_response(422, {"error": "Prompt or provided image failed the safety checks"})


def bad_input(message: str = "Invalid input provided.") -> httpx.Response:
    return fakes.json_response(400, {"detail": message})


def unknown_model(value: str) -> httpx.Response:
    return fakes.json_response(
        422,
        {
            "detail": [
                {
                    "type": "enum",
                    "loc": ["body", "image_request", "model"],
                    "msg": "Input should be 'V_1', 'V_1_TURBO', 'V_2', 'V_2_TURBO', 'V_2A' or 'V_2A_TURBO'",
                    "input": value,
                }
            ]
        },
    )


def too_many_requests(after: str | None = None) -> httpx.Response:
    return fakes.json_response(
        429, {"detail": "Too many requests in flight. Please try again later."}, fakes.retry_after(after)
    )


def server_error(status: int = 500) -> httpx.Response:
    if status == 502:
        return fakes.bad_gateway()
    return fakes.json_response(status, {"detail": "Internal server error"})


def not_json() -> httpx.Response:
    return fakes.html_response(200, "Ideogram")


Responder = Callable[["FakeIdeogram", httpx.Request, dict[str, Any]], httpx.Response]
CdnResponder = Callable[["FakeIdeogram", httpx.Request], httpx.Response]


@dataclass
class FakeIdeogram(fakes.RoutedByHost):
    api_key: str = API_KEY
    cdn_scheme: str = "https"
    # Scripted answers, used in order; when a script runs out the fake behaves normally.
    generate_script: list[Responder] = field(default_factory=list)
    cdn_script: list[CdnResponder] = field(default_factory=list)
    # What the /generate answer's data[0] should look like, for block signals (`is_image_safe`, `url`).
    item_overrides: dict[str, Any] = field(default_factory=dict)
    drop_url: bool = False
    generate_requests: list[dict[str, Any]] = field(default_factory=list)
    cdn_requests: list[httpx.Request] = field(default_factory=list)
    images: dict[str, bytes] = field(default_factory=dict)
    generated: int = 0  # images Ideogram would have charged for

    def routes(self) -> dict[str, Callable[[httpx.Request], httpx.Response]]:
        return {API_HOST: self._api, CDN_HOST: self._cdn}

    # --- the API -------------------------------------------------------------------------------------

    def _api(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST", request.method
        assert request.url.scheme == "https"
        assert request.url.path == "/generate", request.url.path
        assert not request.url.query, "nothing belongs in the query string (keys end up in logs)"
        assert "authorization" not in request.headers, "Ideogram takes `Api-Key`, not Authorization"
        assert request.headers.get("content-type") == "application/json"
        body = orjson.loads(request.content)
        self.generate_requests.append(body)
        if request.headers.get("api-key") != self.api_key:
            return unauthorized()
        if self.generate_script:
            return self.generate_script.pop(0)(self, request, body)
        return self.generate(body)

    def generate(self, body: dict[str, Any]) -> httpx.Response:
        """What Ideogram answers to a well-formed request from a valid key."""
        assert set(body) == {"image_request"}, body
        image_request = body["image_request"]
        if "prompt" not in image_request:  # the shape check() sends on purpose
            return fakes.json_response(
                422,
                {
                    "detail": [
                        {
                            "type": "missing",
                            "loc": ["body", "image_request", "prompt"],
                            "msg": "Field required",
                            "input": image_request,
                        }
                    ]
                },
            )
        if image_request.get("model") not in {"V_1", "V_1_TURBO", "V_2", "V_2_TURBO", "V_2A", "V_2A_TURBO"}:
            return unknown_model(str(image_request.get("model")))
        assert "aspect_ratio" not in image_request, "resolution and aspect_ratio are mutually exclusive"
        assert set(image_request) == {"prompt", "model", "resolution", "magic_prompt_option", "num_images"}, (
            image_request
        )
        assert image_request["num_images"] == 1
        assert image_request["magic_prompt_option"] in {"AUTO", "ON", "OFF"}
        resolution = image_request["resolution"]
        assert resolution in RESOLUTION_FOR_RATIO.values(), resolution
        width, height = size_of(resolution)
        self.generated += 1
        token = secrets.token_urlsafe(16)
        self.images[token] = fakes.png(width, height, IMAGE_COLOUR)
        item: dict[str, Any] = {
            "prompt": image_request["prompt"],
            "resolution": f"{width}x{height}",
            "is_image_safe": True,
            "seed": 1_234_567_890,
            "style_type": "GENERAL",
            "url": self.url_for(token),
        }
        item.update(self.item_overrides)
        if self.drop_url:
            del item["url"]
        return fakes.json_response(200, {"created": "2025-01-14T09:31:07.412733+00:00", "data": [item]})

    def url_for(self, token: str) -> str:
        return (
            f"{self.cdn_scheme}://{CDN_HOST}/api/images/ephemeral/{token}.png"
            f"?exp=1736933467&signature={self.signature(token)}"
        )

    @staticmethod
    def signature(token: str) -> str:
        return f"sig{token[::-1]}0a9f"

    # --- the CDN -------------------------------------------------------------------------------------

    def _cdn(self, request: httpx.Request) -> httpx.Response:
        fakes.check_cdn_request(request, "api-key", "the key must never go to the CDN")
        self.cdn_requests.append(request)
        if self.cdn_script:
            return self.cdn_script.pop(0)(self, request)
        return self.serve(request)

    def serve(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        prefix = "/api/images/ephemeral/"
        assert path.startswith(prefix) and path.endswith(".png"), path
        token = path[len(prefix) : -len(".png")]
        params = request.url.params
        if (
            token not in self.images
            or params.get("signature") != self.signature(token)
            or "exp" not in params
        ):
            return httpx.Response(403, content=b"<Error><Code>AccessDenied</Code></Error>")
        return httpx.Response(200, content=self.images[token], headers={"content-type": "image/png"})
