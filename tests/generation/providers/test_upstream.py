"""upstream: retries, status mapping, error messages and image decoding shared by the HTTP adapters.

No network and no real sleeping: `sleep`, `jitter`, `now` and `resolver` are injected."""

import base64
import email.utils
import io
import logging
import math
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest
from PIL import Image

from postengine.generation.models import AspectRatio, ImageModel
from postengine.generation.providers.base import (
    ImageRequest,
    ProviderBlocked,
    ProviderFailed,
    ProviderMisconfigured,
    ProviderOverloaded,
)
from postengine.generation.providers.upstream import (
    Retryable,
    UpstreamOptions,
    attempt_timeout,
    backoff_delay,
    decode_base64,
    decode_data_uri,
    decode_image,
    download_image,
    json_body,
    retry_after_header,
    send,
    status_error,
    upstream_message,
    with_retries,
)

KEY = "AIzaSy-THE-REAL-SECRET-KEY-0123456789"
SETTING = "PE_GEMINI_API_KEY"
SECRET = "SECRET-SIGNATURE-123"
PUBLIC = "93.184.216.34"
NOW = 1000.0
API = "https://api.example.com/v1/generate"


def image_request(deadline: float | None = None) -> ImageRequest:
    return ImageRequest(
        model=ImageModel.FLUX_SCHNELL,
        prompt="a lighthouse at dusk",
        aspect_ratio=AspectRatio.SQUARE,
        width=1024,
        height=1024,
        deadline=deadline,
    )


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def options(sleeps: Sleeps | None = None, **overrides: Any) -> UpstreamOptions:
    async def no_resolver(host: str, port: int) -> list[str]:
        raise AssertionError(f"unexpected DNS lookup of {host}")

    settings: dict[str, Any] = {
        "sleep": sleeps or Sleeps(),
        "jitter": lambda: 0.0,
        "now": lambda: NOW,
        "resolver": no_resolver,
    }
    settings.update(overrides)
    return UpstreamOptions(**settings)


def script(*outcomes: Any) -> tuple[Callable[[], Awaitable[Any]], list[int]]:
    """An attempt that raises or returns the outcomes in order; counts its calls."""
    calls: list[int] = []

    async def attempt() -> Any:
        outcome = outcomes[len(calls)]
        calls.append(1)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return attempt, calls


def response(
    status: int, body: Any = None, headers: dict[str, str] | None = None, content: bytes | None = None
) -> httpx.Response:
    request = httpx.Request("POST", API, headers={"x-goog-api-key": KEY, "Authorization": f"Key {KEY}"})
    if content is None and body is not None:
        content = orjson.dumps(body)
    return httpx.Response(status, content=content or b"", headers=headers, request=request)


def image_bytes(fmt: str, size: tuple[int, int] = (16, 16), noise: bool = False) -> bytes:
    if noise:
        image = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    else:
        image = Image.new("RGB", size, (200, 40, 90))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


PNG = image_bytes("PNG")


# ---------------------------------------------------------------- with_retries


async def test_success_on_the_first_try_does_not_sleep() -> None:
    sleeps = Sleeps()
    attempt, calls = script("image")
    assert await with_retries("fal", image_request(), options(sleeps), attempt) == "image"
    assert len(calls) == 1
    assert sleeps.delays == []


@pytest.mark.parametrize(
    ("jitter", "base", "expected"),
    [
        (0.0, 1.0, [0.5, 1.0]),
        (1.0, 1.0, [1.0, 2.0]),
        (0.0, 3.0, [1.5, 3.0]),
        (1.0, 3.0, [3.0, 6.0]),
        (0.5, 2.0, [1.5, 3.0]),
    ],
)
async def test_retryable_twice_then_success_backs_off_with_jitter(
    jitter: float, base: float, expected: list[float]
) -> None:
    sleeps = Sleeps()
    attempt, calls = script(
        Retryable(ProviderFailed("HTTP 500")), Retryable(ProviderFailed("HTTP 502")), "image"
    )
    opts = options(sleeps, jitter=lambda: jitter, backoff_base=base)
    assert await with_retries("fal", image_request(), opts, attempt) == "image"
    assert len(calls) == 3
    assert sleeps.delays == pytest.approx(expected)


def test_backoff_is_capped_by_backoff_max() -> None:
    opts = options(jitter=lambda: 1.0, backoff_base=8.0, backoff_max=10.0)
    assert [backoff_delay(retry, opts) for retry in range(4)] == pytest.approx([8.0, 10.0, 10.0, 10.0])
    opts = options(jitter=lambda: 0.0, backoff_base=8.0, backoff_max=10.0)
    assert [backoff_delay(retry, opts) for retry in range(3)] == pytest.approx([4.0, 5.0, 5.0])


async def test_gives_up_after_max_retries_and_raises_the_last_inner_error() -> None:
    sleeps = Sleeps()
    last = ProviderOverloaded("over capacity", retry_after=17)
    attempt, calls = script(
        Retryable(ProviderFailed("first")), Retryable(ProviderFailed("second")), Retryable(last), "never"
    )
    with pytest.raises(ProviderOverloaded) as info:
        await with_retries("gemini", image_request(), options(sleeps, max_retries=2), attempt)
    assert info.value is last
    assert info.value.retry_after == 17
    assert len(calls) == 3
    assert len(sleeps.delays) == 2


async def test_max_retries_zero_never_retries() -> None:
    sleeps = Sleeps()
    attempt, calls = script(Retryable(ProviderFailed("HTTP 500")), "never")
    with pytest.raises(ProviderFailed, match="HTTP 500"):
        await with_retries("fal", image_request(), options(sleeps, max_retries=0), attempt)
    assert len(calls) == 1
    assert sleeps.delays == []


async def test_the_provider_hint_raises_the_delay() -> None:
    sleeps = Sleeps()
    attempt, _ = script(Retryable(ProviderOverloaded("429"), hint=12), "image")
    assert await with_retries("gemini", image_request(), options(sleeps), attempt) == "image"
    assert sleeps.delays == [12]


async def test_a_hint_shorter_than_the_backoff_does_not_lower_it() -> None:
    sleeps = Sleeps()
    attempt, _ = script(Retryable(ProviderOverloaded("429"), hint=0.1), "image")
    assert (
        await with_retries("gemini", image_request(), options(sleeps, backoff_base=4.0), attempt) == "image"
    )
    assert sleeps.delays == [2.0]


async def test_a_hint_past_the_deadline_gives_up_at_once_without_sleeping() -> None:
    sleeps = Sleeps()
    overloaded = ProviderOverloaded("rate limited", retry_after=12)
    attempt, calls = script(Retryable(overloaded, hint=12), "never")
    with pytest.raises(ProviderOverloaded) as info:
        await with_retries("gemini", image_request(deadline=NOW + 5), options(sleeps), attempt)
    assert info.value is overloaded
    assert len(calls) == 1
    assert sleeps.delays == []


async def test_a_backoff_that_leaves_too_little_time_for_a_try_gives_up() -> None:
    # delay 4 (base 8, no jitter) + min_attempt_seconds 2 > 5 s left
    sleeps = Sleeps()
    attempt, calls = script(Retryable(ProviderFailed("HTTP 502")), "never")
    with pytest.raises(ProviderFailed, match="502"):
        await with_retries("fal", image_request(deadline=NOW + 5), options(sleeps, backoff_base=8.0), attempt)
    assert len(calls) == 1
    assert sleeps.delays == []


async def test_a_retry_that_fits_before_the_deadline_happens() -> None:
    sleeps = Sleeps()
    attempt, calls = script(Retryable(ProviderFailed("HTTP 502")), "image")
    assert await with_retries("fal", image_request(deadline=NOW + 5), options(sleeps), attempt) == "image"
    assert sleeps.delays == [0.5]
    assert len(calls) == 2


async def test_a_deadline_already_passed_gives_up() -> None:
    sleeps = Sleeps()
    attempt, _ = script(Retryable(ProviderFailed("HTTP 500")), "never")
    with pytest.raises(ProviderFailed):
        await with_retries("fal", image_request(deadline=NOW - 1), options(sleeps), attempt)
    assert sleeps.delays == []


@pytest.mark.parametrize(
    "error",
    [
        ProviderBlocked("unsafe prompt"),
        ProviderMisconfigured(f"check {SETTING}"),
        ProviderFailed("HTTP 400"),
        ProviderOverloaded("raised directly, not as Retryable"),
        ValueError("a bug"),
    ],
)
async def test_non_retryable_errors_propagate_at_once(error: Exception) -> None:
    sleeps = Sleeps()
    attempt, calls = script(error, "never")
    with pytest.raises(type(error)) as info:
        await with_retries("fal", image_request(), options(sleeps), attempt)
    assert info.value is error
    assert len(calls) == 1
    assert sleeps.delays == []


async def test_provider_blocked_after_a_retry_is_not_retried() -> None:
    sleeps = Sleeps()
    blocked = ProviderBlocked("output blocked")
    attempt, calls = script(Retryable(ProviderFailed("no image")), blocked, "never")
    with pytest.raises(ProviderBlocked) as info:
        await with_retries("gemini", image_request(), options(sleeps, max_retries=5), attempt)
    assert info.value is blocked
    assert len(calls) == 2
    assert len(sleeps.delays) == 1


def test_retryable_carries_its_error_and_hint() -> None:
    inner = ProviderFailed("HTTP 500")
    signal = Retryable(inner, 3.5)
    assert signal.error is inner
    assert signal.hint == 3.5
    assert str(signal) == "HTTP 500"


def test_attempt_timeout_uses_the_time_left() -> None:
    timeout = attempt_timeout(image_request(deadline=NOW + 30), options())
    assert timeout.read == pytest.approx(30)
    assert timeout.connect == pytest.approx(10)
    timeout = attempt_timeout(image_request(deadline=NOW + 3), options())
    assert timeout.connect == pytest.approx(3)
    assert attempt_timeout(image_request(), options()).read == pytest.approx(600)
    assert attempt_timeout(image_request(deadline=NOW - 10), options()).read == pytest.approx(0.1)


# ---------------------------------------------------------------- status_error


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_credentials_are_misconfigured_naming_the_setting_not_the_key(status: int) -> None:
    body = {"error": {"code": status, "message": f"API key not valid: {KEY}", "status": "PERMISSION_DENIED"}}
    error = status_error(response(status, body), "gemini", setting=SETTING)
    assert isinstance(error, ProviderMisconfigured)
    assert SETTING in str(error)
    assert KEY not in str(error)
    assert str(status) in str(error)


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_credentials_log_an_error_naming_the_setting(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    body = {"error": {"message": "Permission denied", "status": "PERMISSION_DENIED"}}
    with caplog.at_level(logging.ERROR, logger="postengine.providers"):
        status_error(response(status, body), "gemini", setting=SETTING)
    records = [r for r in caplog.records if r.name == "postengine.providers" and r.levelno == logging.ERROR]
    assert len(records) == 1
    message = records[0].getMessage()
    assert SETTING in message
    assert "gemini" in message
    assert "Permission denied" in message
    assert KEY not in message


def test_404_is_misconfigured_about_the_model_id(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="postengine.providers"):
        error = status_error(
            response(404, {"error": {"message": "model not found"}}), "gemini", setting=SETTING
        )
    assert isinstance(error, ProviderMisconfigured)
    assert "model" in str(error)
    assert KEY not in str(error)
    assert any("404" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


def test_429_with_retry_after_seconds() -> None:
    error = status_error(
        response(429, {"error": {"message": "Resource exhausted"}}, {"Retry-After": "12"}),
        "gemini",
        setting=SETTING,
    )
    assert isinstance(error, Retryable)
    assert isinstance(error.error, ProviderOverloaded)
    assert error.error.retry_after == 12
    assert error.hint == 12
    assert "429" in str(error.error)
    assert "Resource exhausted" in str(error.error)


def test_429_with_fractional_retry_after_rounds_up() -> None:
    error = status_error(response(429, headers={"Retry-After": "0.2"}), "fal", setting="PE_FAL_KEY")
    assert isinstance(error, Retryable)
    assert isinstance(error.error, ProviderOverloaded)
    assert error.error.retry_after == 1
    assert error.hint == pytest.approx(0.2)


def test_429_with_retry_after_zero_tells_the_client_at_least_one_second() -> None:
    error = status_error(response(429, headers={"Retry-After": "0"}), "fal", setting="PE_FAL_KEY")
    assert isinstance(error, Retryable)
    assert isinstance(error.error, ProviderOverloaded)
    assert error.error.retry_after == 1


def test_429_with_retry_after_http_date() -> None:
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    error = status_error(
        response(429, headers={"Retry-After": when}), "replicate", setting="PE_REPLICATE_TOKEN"
    )
    assert isinstance(error, Retryable)
    assert isinstance(error.error, ProviderOverloaded)
    assert 100 <= error.error.retry_after <= 121
    assert error.hint is not None
    assert 100 <= error.hint <= 121


def test_429_without_retry_after_uses_the_default() -> None:
    error = status_error(response(429), "ideogram", setting="PE_IDEOGRAM_API_KEY")
    assert isinstance(error, Retryable)
    assert isinstance(error.error, ProviderOverloaded)
    assert error.error.retry_after == 30
    assert error.hint is None
    error = status_error(
        response(429), "ideogram", setting="PE_IDEOGRAM_API_KEY", options=options(default_retry_after=7)
    )
    assert isinstance(error, Retryable)
    assert isinstance(error.error, ProviderOverloaded)
    assert error.error.retry_after == 7


def test_an_explicit_hint_wins_over_the_header() -> None:
    error = status_error(response(429, headers={"Retry-After": "90"}), "gemini", setting=SETTING, hint=4.2)
    assert isinstance(error, Retryable)
    assert isinstance(error.error, ProviderOverloaded)
    assert error.hint == 4.2
    assert error.error.retry_after == 5


@pytest.mark.parametrize(("headers", "retry_after"), [({}, 30), ({"Retry-After": "45"}, 45)])
def test_503_is_retryable_overloaded(headers: dict[str, str], retry_after: int) -> None:
    error = status_error(
        response(503, {"error": {"message": "The model is overloaded"}}, headers), "gemini", setting=SETTING
    )
    assert isinstance(error, Retryable)
    assert isinstance(error.error, ProviderOverloaded)
    assert error.error.retry_after == retry_after
    assert "overloaded" in str(error.error)


@pytest.mark.parametrize("status", [500, 502, 504])
def test_server_errors_are_retryable_failures(status: int) -> None:
    error = status_error(
        response(status, {"error": {"message": "Internal error"}}), "gemini", setting=SETTING
    )
    assert isinstance(error, Retryable)
    assert type(error.error) is ProviderFailed
    assert f"HTTP {status}" in str(error.error)
    assert "Internal error" in str(error.error)


@pytest.mark.parametrize("status", [400, 405, 409, 418, 422, 501])
def test_other_statuses_are_plain_failures(status: int) -> None:
    error = status_error(response(status, {"detail": "bad input"}), "fal", setting="PE_FAL_KEY")
    assert type(error) is ProviderFailed
    assert f"HTTP {status}" in str(error)
    assert "bad input" in str(error)


def test_status_error_with_a_body_that_is_not_json() -> None:
    error = status_error(response(500, content=b"<html>Bad gateway</html>"), "fal", setting="PE_FAL_KEY")
    assert isinstance(error, Retryable)
    assert str(error.error) == "fal: HTTP 500"
    error = status_error(response(400), "fal", setting="PE_FAL_KEY")
    assert str(error) == "fal: HTTP 400"


def test_429_with_an_infinite_retry_after_does_not_crash() -> None:
    error = status_error(response(429, headers={"Retry-After": "inf"}), "fal", setting="PE_FAL_KEY")
    assert isinstance(error, Retryable)
    assert isinstance(error.error, ProviderOverloaded)


# ---------------------------------------------------------------- retry_after_header


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-5", 0.0),
        ("garbage", None),
        ("", None),
        ("soon, maybe", None),
    ],
)
def test_retry_after_header_values(value: str, expected: float | None) -> None:
    assert retry_after_header(response(429, headers={"Retry-After": value}), now=lambda: NOW) == expected


def test_retry_after_header_absent() -> None:
    assert retry_after_header(response(429)) is None


def test_retry_after_header_http_date() -> None:
    base = 1_700_000_000.0
    future = email.utils.formatdate(base + 60, usegmt=True)
    past = email.utils.formatdate(base - 60, usegmt=True)
    assert retry_after_header(
        response(429, headers={"Retry-After": future}), now=lambda: base
    ) == pytest.approx(60)
    assert retry_after_header(response(429, headers={"Retry-After": past}), now=lambda: base) == 0.0
    rfc_example = "Fri, 31 Dec 1999 23:59:59 GMT"
    at = 946684799.0
    assert retry_after_header(response(503, headers={"Retry-After": rfc_example}), now=lambda: at - 30) == 30


@pytest.mark.parametrize("value", ["inf", "Infinity", "1e999"])
def test_retry_after_header_non_finite_is_ignored(value: str) -> None:
    seconds = retry_after_header(response(429, headers={"Retry-After": value}))
    assert seconds is None or math.isfinite(seconds)


# ---------------------------------------------------------------- upstream_message and json_body


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"error": {"code": 400, "message": "Invalid argument", "status": "INVALID_ARGUMENT"}},
            "Invalid argument",
        ),
        ({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}, "RESOURCE_EXHAUSTED"),
        (
            {"error": "Prompt or provided image failed the safety checks"},
            "Prompt or provided image failed the safety checks",
        ),
        ({"detail": "Not enough credits"}, "Not enough credits"),
        (
            {
                "detail": [
                    {"loc": ["body", "prompt"], "msg": "field required", "type": "missing"},
                    {"msg": "too long"},
                ]
            },
            "field required; too long",
        ),
        ({"detail": ["plain", {"no_msg": 1}]}, "plain; {'no_msg': 1}"),
        (
            {
                "type": "https://replicate.com/docs/errors",
                "title": "Invalid input",
                "status": 422,
                "detail": "- input.prompt: required",
            },
            "- input.prompt: required",
        ),
        ({"title": "Unauthenticated", "status": 401}, "Unauthenticated"),
        ({"message": "Too many requests"}, "Too many requests"),
        ({"error": {"message": "  spread \n over\tlines  "}}, "spread over lines"),
        ({}, ""),
        ({"error": None}, ""),
        ([], ""),
        ("just a string", ""),
        (None, ""),
    ],
)
def test_upstream_message_shapes(body: Any, expected: str) -> None:
    assert upstream_message(body) == expected


def test_upstream_message_truncates_long_messages() -> None:
    text = upstream_message({"error": {"message": "x" * 1000}})
    assert len(text) == 200
    assert text.endswith("…")
    assert text.startswith("x" * 199)
    short = upstream_message({"detail": "y" * 50}, limit=20)
    assert short == "y" * 19 + "…"
    exact = upstream_message({"detail": "z" * 200})
    assert exact == "z" * 200


def test_json_body() -> None:
    assert json_body(response(200, {"images": [1]}), "fal") == {"images": [1]}


@pytest.mark.parametrize("content", [b"", b"<html>502 Bad Gateway</html>", b'{"truncated": ', b"\xff\xfe"])
def test_json_body_malformed_is_provider_failed(content: bytes) -> None:
    with pytest.raises(ProviderFailed, match="not JSON"):
        json_body(response(200, content=content), "fal")


# ---------------------------------------------------------------- send


async def test_send_posts_the_body_as_json_with_the_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    payload = {"prompt": "a café ☕", "image_size": {"width": 1024, "height": 576}, "sync_mode": True}
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        result = await send(
            client,
            "fal",
            "POST",
            API,
            request=image_request(deadline=NOW + 30),
            options=options(),
            headers={"Authorization": f"Key {KEY}"},
            json=payload,
        )
    assert result.status_code == 200
    [request] = seen
    assert request.method == "POST"
    assert str(request.url) == API
    assert orjson.loads(request.content) == payload
    assert request.headers["authorization"] == f"Key {KEY}"
    assert request.extensions["timeout"]["read"] == pytest.approx(30)
    assert request.extensions["timeout"]["connect"] == pytest.approx(10)


async def test_send_without_json_sends_no_body_and_does_not_follow_redirects() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(302, headers={"location": "https://elsewhere.example.com/"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        result = await send(client, "fal", "GET", API, request=image_request(), options=options(), headers={})
    assert result.status_code == 302
    assert len(seen) == 1
    assert seen[0].content == b""


async def test_send_marks_the_json_body_as_json() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        await send(
            client, "fal", "POST", API, request=image_request(), options=options(), headers={}, json={"a": 1}
        )
    assert seen[0].headers.get("content-type", "").startswith("application/json")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (httpx.ReadTimeout, "timed out"),
        (httpx.ConnectTimeout, "timed out"),
        (httpx.WriteTimeout, "timed out"),
        (httpx.PoolTimeout, "timed out"),
        (httpx.ConnectError, "ConnectError"),
        (httpx.ReadError, "ReadError"),
        (httpx.RemoteProtocolError, "RemoteProtocolError"),
    ],
)
async def test_send_turns_transport_failures_into_retryable_failures(
    error: type[httpx.TransportError], expected: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error(
            f"failed talking to {request.url} with {request.headers.get('authorization')}", request=request
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(Retryable) as info:
            await send(
                client,
                "fal",
                "POST",
                API,
                request=image_request(),
                options=options(),
                headers={"Authorization": f"Key {KEY}"},
                json={"prompt": "x"},
            )
    assert type(info.value.error) is ProviderFailed
    assert expected in str(info.value.error)
    assert info.value.hint is None
    assert KEY not in str(info.value.error)
    assert info.value.__cause__ is None


async def test_send_returns_error_statuses_for_the_adapter_to_map() -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(503))) as client:
        result = await send(
            client, "fal", "POST", API, request=image_request(), options=options(), headers={}
        )
    assert result.status_code == 503


# ---------------------------------------------------------------- decode_image


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_decode_image_accepts_png_jpeg_webp(fmt: str) -> None:
    image = decode_image(image_bytes(fmt, (32, 24)), "fal")
    assert image.format == fmt
    assert image.size == (32, 24)
    image.getpixel((0, 0))  # loaded; no file handle needed


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF", "ICO"])
def test_decode_image_refuses_other_formats(fmt: str) -> None:
    with pytest.raises(ProviderFailed, match=f"returned a {fmt} file"):
        decode_image(image_bytes(fmt), "fal")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not an image at all",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 20,
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
    ],
)
def test_decode_image_refuses_garbage(data: bytes) -> None:
    with pytest.raises(ProviderFailed, match="not a valid image"):
        decode_image(data, "fal")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_decode_image_refuses_a_truncated_file(fmt: str) -> None:
    data = image_bytes(fmt, (128, 128), noise=True)
    with pytest.raises(ProviderFailed):
        decode_image(data[: len(data) // 2], "fal")


def test_decode_image_refuses_an_image_over_max_pixels() -> None:
    with pytest.raises(ProviderFailed, match="20x20"):
        decode_image(image_bytes("PNG", (20, 20)), "fal", options(max_pixels=100))
    assert decode_image(image_bytes("PNG", (10, 10)), "fal", options(max_pixels=100)).size == (10, 10)


def test_decode_image_refuses_a_decompression_bomb_header_by_default() -> None:
    # A 1x1 PNG whose header claims 50000x50000 (2.5 GP): refused before decoding.
    data = bytearray(image_bytes("PNG", (1, 1)))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = (50_000).to_bytes(4, "big") * 2
    with pytest.raises(ProviderFailed):
        decode_image(bytes(data), "fal")


# ---------------------------------------------------------------- base64 and data URIs


def test_decode_base64_standard_and_url_safe() -> None:
    raw = bytes([0xFB, 0xFF, 0xBF, 0x00, 0x10, 0x83])
    standard = base64.b64encode(raw).decode()
    url_safe = base64.urlsafe_b64encode(raw).decode()
    assert "+" in standard or "/" in standard
    assert standard != url_safe
    assert decode_base64(standard, "gemini") == raw
    assert decode_base64(url_safe, "gemini") == raw
    assert decode_base64(base64.urlsafe_b64encode(b"ab").decode().rstrip("="), "gemini") == b"ab"  # unpadded
    assert decode_base64(base64.b64encode(PNG).decode(), "gemini") == PNG


@pytest.mark.parametrize("data", ["a", "abcde", "=abc", "hello world", "not base64!!"])
def test_decode_base64_invalid_is_provider_failed(data: str) -> None:
    with pytest.raises(ProviderFailed, match="not valid base64"):
        decode_base64(data, "gemini")


@pytest.mark.parametrize("data", ["@@@@", "%%%%", "<html>", "ab=c=d"])
def test_decode_base64_refuses_characters_outside_both_alphabets(data: str) -> None:
    with pytest.raises(ProviderFailed):
        decode_base64(data, "gemini")


def test_decode_data_uri() -> None:
    uri = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert decode_data_uri(uri, "fal") == PNG
    jpeg = image_bytes("JPEG")
    assert decode_data_uri("data:image/jpeg;base64," + base64.b64encode(jpeg).decode(), "fal") == jpeg


@pytest.mark.parametrize(
    "uri",
    [
        "data:image/png," + base64.b64encode(PNG).decode(),  # not base64-encoded
        "data:image/png;base64",  # no comma
        "image/png;base64," + base64.b64encode(PNG).decode(),  # no data: prefix
        "https://cdn.example.com/a.png",
        "data:image/png;base64,a",  # bad payload
        "",
    ],
)
def test_decode_data_uri_malformed(uri: str) -> None:
    with pytest.raises(ProviderFailed):
        decode_data_uri(uri, "fal")


# ---------------------------------------------------------------- download_image


class Transport:
    def __init__(self, handler: Callable[[httpx.Request], httpx.Response]) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)


def resolver(table: dict[str, list[str]]) -> Callable[[str, int], Awaitable[list[str]]]:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    return resolve


CDN = resolver({"cdn.example.com": [PUBLIC], "internal.example.com": ["10.0.0.7"]})


async def download(
    url: str, handler: Callable[[httpx.Request], httpx.Response], **overrides: Any
) -> tuple[Image.Image, Transport]:
    transport = Transport(handler)
    async with httpx.AsyncClient(transport=httpx.MockTransport(transport)) as client:
        image = await download_image(
            client,
            "ideogram",
            url,
            request=image_request(deadline=NOW + 60),
            options=options(**{"resolver": CDN, **overrides}),
        )
    return image, transport


async def download_error(
    url: str, handler: Callable[[httpx.Request], httpx.Response], **overrides: Any
) -> tuple[BaseException, Transport]:
    transport = Transport(handler)
    async with httpx.AsyncClient(transport=httpx.MockTransport(transport)) as client:
        with pytest.raises((ProviderFailed, Retryable)) as info:
            await download_image(
                client,
                "ideogram",
                url,
                request=image_request(deadline=NOW + 60),
                options=options(**{"resolver": CDN, **overrides}),
            )
    return info.value, transport


def serve(content: bytes = PNG, status: int = 200) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, content=content, headers={"content-type": "image/png"})


async def test_download_decodes_a_data_uri_in_place() -> None:
    webp = image_bytes("WEBP", (12, 8))
    image, transport = await download("data:image/webp;base64," + base64.b64encode(webp).decode(), serve())
    assert image.format == "WEBP"
    assert image.size == (12, 8)
    assert transport.requests == []


async def test_download_a_malformed_data_uri_is_provider_failed() -> None:
    error, transport = await download_error("data:image/png,xyz", serve())
    assert type(error) is ProviderFailed
    assert transport.requests == []


async def test_download_fetches_an_https_url_from_the_checked_address() -> None:
    image, transport = await download(f"https://cdn.example.com/r/abc.png?signature={SECRET}", serve(PNG))
    assert image.format == "PNG"
    assert image.size == (16, 16)
    [request] = transport.requests
    assert request.url.host == PUBLIC
    assert request.headers["host"] == "cdn.example.com"
    assert request.extensions["sni_hostname"] == "cdn.example.com"


async def test_download_refuses_http_without_connecting() -> None:
    error, transport = await download_error(f"http://cdn.example.com/r/abc.png?signature={SECRET}", serve())
    assert type(error) is ProviderFailed
    assert "refused" in str(error)
    assert SECRET not in str(error)
    assert transport.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "https://internal.example.com/r/abc.png",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/a.png",
    ],
)
async def test_download_refuses_private_addresses(url: str) -> None:
    error, transport = await download_error(url, serve())
    assert type(error) is ProviderFailed
    assert transport.requests == []


async def test_download_refuses_a_redirect_to_a_private_address() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": "https://internal.example.com/x.png"})

    error, transport = await download_error("https://cdn.example.com/a.png", handler)
    assert type(error) is ProviderFailed
    assert len(transport.requests) == 1


async def test_download_refuses_an_oversized_result() -> None:
    error, _ = await download_error(
        f"https://cdn.example.com/a.png?signature={SECRET}", serve(b"x" * 5000), max_download_bytes=1000
    )
    assert type(error) is ProviderFailed
    assert "too large" in str(error)
    assert SECRET not in str(error)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
async def test_download_server_errors_are_retryable(status: int) -> None:
    error, _ = await download_error(
        f"https://cdn.example.com/a.png?signature={SECRET}", serve(b"busy", status)
    )
    assert isinstance(error, Retryable)
    assert type(error.error) is ProviderFailed
    assert f"HTTP {status}" in str(error.error)
    assert SECRET not in str(error.error)


@pytest.mark.parametrize("status", [400, 403, 404, 410])
async def test_download_client_errors_are_not_retryable(status: int) -> None:
    error, _ = await download_error(
        f"https://cdn.example.com/a.png?signature={SECRET}", serve(b"gone", status)
    )
    assert type(error) is ProviderFailed
    assert f"HTTP {status}" in str(error)
    assert SECRET not in str(error)


async def test_download_connection_errors_are_retryable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    error, _ = await download_error("https://cdn.example.com/a.png", handler)
    assert isinstance(error, Retryable)
    assert type(error.error) is ProviderFailed


async def test_download_unresolvable_host_is_retryable() -> None:
    error, transport = await download_error("https://gone.example.com/a.png", serve())
    assert isinstance(error, Retryable)
    assert transport.requests == []


@pytest.mark.parametrize("content", [b"<html>expired</html>", image_bytes("GIF")])
async def test_download_of_something_that_is_not_an_accepted_image_is_provider_failed(content: bytes) -> None:
    error, _ = await download_error("https://cdn.example.com/a.png", serve(content))
    assert type(error) is ProviderFailed


async def test_download_honours_max_pixels() -> None:
    error, _ = await download_error(
        "https://cdn.example.com/a.png", serve(image_bytes("PNG", (20, 20))), max_pixels=100
    )
    assert type(error) is ProviderFailed
    assert "too large" in str(error)
