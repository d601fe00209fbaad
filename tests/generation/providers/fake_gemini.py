"""A fake Gemini API that speaks the wire format of `generateContent` and `models.get`.

It checks every request the way the real API would care (path, method, `x-goog-api-key`, no `?key=`,
the exact JSON body) and answers with bodies shaped like recorded ones: thought parts, a
`thoughtSignature`, `usageMetadata`, `modelVersion`, `responseId`, Google's error envelope.

A wrong request body is a bug in the adapter, not something the real API would tolerate silently,
so it fails the test at once with an AssertionError raised from the transport. A missing or wrong
key, or an unknown model id, is answered the way the real API answers it.

Tests script answers with `fake.replies.append(...)`: an `httpx.Response`, an exception to raise from
the transport (`httpx.ReadTimeout`, …), or a callable `Call -> httpx.Response`; with nothing scripted
a valid request gets an image.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from tests.generation.providers import fakes

HOST = "generativelanguage.googleapis.com"
BASE_URL = f"https://{HOST}"
# Shaped like a real key (39 characters, "AIza" prefix) so a leak would be easy to spot.
KEY = "AIzaSyD-fakeKeyForTests_0123456789abcde"
PRO = "gemini-3-pro-image-preview"
FLASH = "gemini-2.5-flash-image"
RATIOS = ("1:1", "16:9", "9:16", "4:3", "3:4", "4:5", "5:4")

# PROVIDERS.md: 3-pro image at 2K (1K is half, 4K double).
PRO_2K: dict[str, tuple[int, int]] = {
    "1:1": (2048, 2048),
    "16:9": (2752, 1536),
    "9:16": (1536, 2752),
    "4:3": (2400, 1792),
    "3:4": (1792, 2400),
    "4:5": (1856, 2304),
    "5:4": (2304, 1856),
}
# gemini-2.5-flash-image: one tier, about a megapixel (ai.google.dev/gemini-api/docs/image-generation).
FLASH_1K: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "16:9": (1344, 768),
    "9:16": (768, 1344),
    "4:3": (1184, 864),
    "3:4": (864, 1184),
    "4:5": (896, 1152),
    "5:4": (1152, 896),
}
FINAL_COLOUR = (30, 120, 200)
DRAFT_COLOUR = (200, 40, 40)

_GENERATE = re.compile(r"/v1beta/models/([^/:]+):generateContent")
_MODEL = re.compile(r"/v1beta/models/([^/:]+)")


def expected_size(model_id: str, ratio: str, image_size: str | None) -> tuple[int, int]:
    """What the real model returns: flash has one tier; 3-pro defaults to 1K without `imageSize`."""
    if model_id.startswith("gemini-2"):
        return FLASH_1K[ratio]
    width, height = PRO_2K[ratio]
    factor = {"1K": 0.5, "2K": 1.0, "4K": 2.0}[image_size or "1K"]
    return int(width * factor), int(height * factor)


@functools.lru_cache(maxsize=64)
def png(width: int, height: int, colour: tuple[int, int, int] = FINAL_COLOUR) -> bytes:
    return fakes.png(width, height, colour)


def b64png(width: int, height: int, colour: tuple[int, int, int] = FINAL_COLOUR) -> str:
    return base64.b64encode(png(width, height, colour)).decode("ascii")


@dataclass
class Call:
    """One request the fake received."""

    request: httpx.Request
    model_id: str
    body: Any = None

    @property
    def image_config(self) -> dict[str, Any]:
        config: dict[str, Any] = self.body["generationConfig"]["imageConfig"]
        return config

    @property
    def aspect_ratio(self) -> str:
        ratio: str = self.image_config["aspectRatio"]
        return ratio

    @property
    def image_size(self) -> str | None:
        return self.image_config.get("imageSize")

    @property
    def prompt(self) -> str:
        text: str = self.body["contents"][0]["parts"][0]["text"]
        return text


Reply = httpx.Response | Exception | Callable[[Call], httpx.Response]


@dataclass
class FakeGemini:
    key: str = KEY
    models: set[str] = field(default_factory=lambda: {PRO, FLASH})
    replies: list[Reply] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))

    def handle(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        assert url.scheme == "https", url
        assert url.host == HOST, url
        assert "key" not in url.params, "the key must travel in x-goog-api-key, never in the URL"
        assert self.key not in str(url)
        generate = _GENERATE.fullmatch(url.path)
        model = _MODEL.fullmatch(url.path)
        if generate is not None:
            assert request.method == "POST", request.method
            call = Call(request, generate.group(1), _checked_body(request))
        elif model is not None:
            assert request.method == "GET", request.method
            call = Call(request, model.group(1))
        else:
            raise AssertionError(f"unexpected path {url.path}")
        self.calls.append(call)

        key = request.headers.get("x-goog-api-key")
        if key is None:
            return permission_denied(
                "Method doesn't allow unregistered callers (callers without established identity). "
                "Please use API Key or other form of API consumer identity to call this API."
            )
        if key != self.key:
            return api_key_invalid()
        if call.model_id not in self.models:
            return not_found(call.model_id, generate=generate is not None)
        if generate is not None and call.model_id.startswith("gemini-2") and call.image_size is not None:
            return error(400, "INVALID_ARGUMENT", "Image size is not supported for this model.")

        reply: Reply = self.replies.pop(0) if self.replies else (image if generate else model_resource)
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, httpx.Response):
            return reply
        return reply(call)

    @property
    def generate_calls(self) -> list[Call]:
        return [call for call in self.calls if call.body is not None]


def _checked_body(request: httpx.Request) -> Any:
    assert request.headers.get("content-type", "").startswith("application/json")
    body = orjson.loads(request.content)
    assert set(body) == {"contents", "generationConfig"}, body
    contents = body["contents"]
    assert isinstance(contents, list) and len(contents) == 1, contents
    assert contents[0]["role"] == "user", contents
    parts = contents[0]["parts"]
    assert len(parts) == 1 and set(parts[0]) == {"text"} and isinstance(parts[0]["text"], str), parts
    config = body["generationConfig"]
    assert set(config) == {"responseModalities", "imageConfig", "candidateCount"}, config
    assert config["responseModalities"] == ["IMAGE"], config
    assert config["candidateCount"] == 1, config
    image_config = config["imageConfig"]
    assert set(image_config) <= {"aspectRatio", "imageSize"}, image_config
    assert image_config["aspectRatio"] in RATIOS, image_config
    if "imageSize" in image_config:
        assert image_config["imageSize"] in ("1K", "2K", "4K"), image_config  # upper case only
    return body


# ------------------------------------------------------------------------------------------- success


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return fakes.json_response(status, body, headers, content_type="application/json; charset=UTF-8")


_USAGE = {
    "promptTokenCount": 14,
    "candidatesTokenCount": 1120,
    "totalTokenCount": 1493,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 14}],
    "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 1120}],
    "thoughtsTokenCount": 359,
}


def generated(
    parts: list[dict[str, Any]], finish_reason: str | None = "STOP", model_id: str = PRO
) -> httpx.Response:
    candidate: dict[str, Any] = {"index": 0}
    if parts:
        candidate["content"] = {"parts": parts, "role": "model"}
    if finish_reason is not None:
        candidate["finishReason"] = finish_reason
    return _json(
        200,
        {
            "candidates": [candidate],
            "usageMetadata": _USAGE,
            "modelVersion": model_id,
            "responseId": "x2YqaZ3bKeqY1MkP3vWjuAk",
        },
    )


def thought_text() -> dict[str, Any]:
    return {
        "text": "**Composing the scene**\n\nI'm placing the lighthouse on the right third ...",
        "thought": True,
    }


def image(call: Call, *, inline_key: str = "inlineData", with_text: bool = False) -> httpx.Response:
    """What 3-pro returns: a thought, a draft image marked as a thought, then the final image."""
    width, height = expected_size(call.model_id, call.aspect_ratio, call.image_size)
    final: dict[str, Any] = {
        inline_key: {"mimeType": "image/png", "data": b64png(width, height)},
        "thoughtSignature": "EpYKCpMKAb4+9vt0c2lnbmF0dXJlLW9mLXRoZS10aG91Z2h0",
    }
    parts: list[dict[str, Any]] = [thought_text()]
    if not call.model_id.startswith("gemini-2"):
        draft = {inline_key: {"mimeType": "image/png", "data": b64png(64, 64, DRAFT_COLOUR)}, "thought": True}
        parts.append(draft)
    parts.append(final)
    if with_text:
        parts.append({"text": "Here is your lighthouse at dusk."})
    return generated(parts, model_id=call.model_id)


def snake_case_image(call: Call) -> httpx.Response:
    return image(call, inline_key="inline_data")


def image_then_text(call: Call) -> httpx.Response:
    return image(call, with_text=True)


def model_resource(call: Call) -> httpx.Response:
    """`GET /v1beta/models/{id}` as the real API answers it."""
    return _json(
        200,
        {
            "name": f"models/{call.model_id}",
            "version": "3.0",
            "displayName": "Nano Banana Pro",
            "description": "Gemini 3 Pro Image Preview",
            "inputTokenLimit": 131072,
            "outputTokenLimit": 32768,
            "supportedGenerationMethods": ["generateContent", "countTokens", "batchGenerateContent"],
            "temperature": 1,
            "topP": 0.95,
            "maxTemperature": 2,
            "thinking": True,
        },
    )


# ---------------------------------------------------------------------------------------- no image


def prompt_blocked(reason: str) -> httpx.Response:
    feedback: dict[str, Any] = {"blockReason": reason}
    if reason == "SAFETY":
        feedback["safetyRatings"] = [
            {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "HIGH", "blocked": True},
            {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
        ]
    return _json(
        200,
        {
            "promptFeedback": feedback,
            "usageMetadata": {
                "promptTokenCount": 9,
                "totalTokenCount": 9,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 9}],
            },
            "modelVersion": PRO,
            "responseId": "Bj0qaeTHEo3q1MkPqbmLwQ4",
        },
    )


def output_blocked(finish_reason: str, *, with_thought: bool = False) -> httpx.Response:
    """A refused image: no `inlineData`; sometimes thought parts, sometimes no content at all."""
    return generated([thought_text()] if with_thought else [], finish_reason)


def text_only() -> httpx.Response:
    return generated(
        [thought_text(), {"text": "I can describe the scene, but here is a description instead ..."}], "STOP"
    )


def no_image(finish_reason: str) -> httpx.Response:
    return generated([thought_text()], finish_reason)


# ------------------------------------------------------------------------------------------ errors


def error(
    code: int,
    status: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        body["details"] = details
    return _json(code, {"error": body}, headers)


def api_key_invalid() -> httpx.Response:
    return error(
        400,
        "INVALID_ARGUMENT",
        "API key not valid. Please pass a valid API key.",
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                "locale": "en-US",
                "message": "API key not valid. Please pass a valid API key.",
            },
        ],
    )


def permission_denied(
    message: str = "Your API key was reported as leaked. Please use another API key.",
) -> httpx.Response:
    return error(403, "PERMISSION_DENIED", message)


def unauthenticated() -> httpx.Response:
    return error(
        401,
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
        "or other valid authentication credential.",
    )


def not_found(model_id: str, *, generate: bool = True) -> httpx.Response:
    if generate:
        message = (
            f"models/{model_id} is not found for API version v1beta, or is not supported for "
            "generateContent. Call ListModels to see the list of available models and their supported methods."
        )
    else:
        message = f"models/{model_id} is not found for API version v1beta."
    return error(404, "NOT_FOUND", message)


def invalid_argument(
    message: str = "Unable to process input image. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
) -> httpx.Response:
    return error(400, "INVALID_ARGUMENT", message)


def failed_precondition() -> httpx.Response:
    return error(
        400,
        "FAILED_PRECONDITION",
        "Gemini API free tier is not available in your country. Please enable billing on your project in Google AI Studio.",
    )


def resource_exhausted(
    retry_delay: str | None = "12s", headers: dict[str, str] | None = None
) -> httpx.Response:
    details: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": "generativelanguage.googleapis.com/generate_content_paid_tier_requests",
                    "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                    "quotaDimensions": {"location": "global", "model": "gemini-3-pro-image"},
                    "quotaValue": "20",
                }
            ],
        },
        {
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [
                {
                    "description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                }
            ],
        },
    ]
    if retry_delay is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay})
    return error(
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details. For more "
        "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.\n"
        "* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_paid_tier_requests, "
        f"limit: 20, model: gemini-3-pro-image\nPlease retry in {retry_delay or '12s'}.",
        details,
        headers,
    )


def server_error(code: int) -> httpx.Response:
    if code == 502:  # Google's front end answers 502 with an HTML page, not the JSON envelope
        return httpx.Response(
            502,
            content=b"<!DOCTYPE html><html lang=en><title>Error 502 (Server Error)!!1</title></html>",
            headers={"content-type": "text/html; charset=UTF-8"},
        )
    status, message = {
        500: (
            "INTERNAL",
            "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
        ),
        503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
        504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
    }[code]
    return error(code, status, message)


def not_json() -> httpx.Response:
    return httpx.Response(
        200, content=b'{"candidates": [{"content": {"parts": [', headers={"content-type": "application/json"}
    )
