"""The Ideogram adapter against a fake Ideogram (API and CDN) behind `httpx.MockTransport`."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from PIL import Image

from postengine.generation.models import AspectRatio, ImageModel, output_size
from postengine.generation.providers.base import (
    ImageRequest,
    ProviderBlocked,
    ProviderFailed,
    ProviderMisconfigured,
    ProviderOverloaded,
)
from postengine.generation.providers.ideogram import IdeogramConfig, IdeogramProvider
from postengine.generation.providers.upstream import UpstreamOptions
from tests.generation.providers.fake_ideogram import (
    API_KEY,
    CDN_HOST,
    RESOLUTION_FOR_RATIO,
    FakeIdeogram,
    bad_input,
    forbidden,
    not_json,
    safety_refused,
    server_error,
    size_of,
    too_many_requests,
    unknown_model,
)
from tests.generation.providers.fakes import (
    answer,
    json_response,
    private_resolver,
    public_resolver_for,
    raises,
)

PROMPT = 'a poster that says "LISBON", warm evening light'


class Sleeps(list[float]):
    async def __call__(self, delay: float) -> None:
        self.append(delay)


public_resolver = public_resolver_for(CDN_HOST)


@pytest.fixture
def fake() -> FakeIdeogram:
    return FakeIdeogram()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def http(fake: FakeIdeogram) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=fake.transport()) as client:
        yield client


def provider(
    http: httpx.AsyncClient, sleeps: Sleeps, config: IdeogramConfig | None = None, **options: Any
) -> IdeogramProvider:
    options.setdefault("resolver", public_resolver)
    return IdeogramProvider(
        config or IdeogramConfig(api_key=API_KEY),
        http,
        UpstreamOptions(sleep=sleeps, jitter=lambda: 0.0, **options),
    )


def image_request(ratio: AspectRatio = AspectRatio.WIDE, deadline: float | None = None) -> ImageRequest:
    width, height = output_size(ImageModel.IDEOGRAM_V2, ratio)
    return ImageRequest(ImageModel.IDEOGRAM_V2, PROMPT, ratio, width, height, deadline)


# --- success and the request we send --------------------------------------------------------------------


@pytest.mark.parametrize("ratio", list(AspectRatio))
async def test_generates_at_the_ideogram_resolution_for_each_ratio(
    ratio: AspectRatio, fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    image = await provider(http, sleeps).generate(image_request(ratio))

    resolution = RESOLUTION_FOR_RATIO[ratio.value]
    assert fake.generate_requests == [
        {
            "image_request": {
                "prompt": PROMPT,
                "model": "V_2",
                "resolution": resolution,
                "magic_prompt_option": "OFF",
                "num_images": 1,
            }
        }
    ]
    assert isinstance(image, Image.Image)
    assert image.size == size_of(resolution)
    # Never smaller than what the caller downscales to.
    width, height = output_size(ImageModel.IDEOGRAM_V2, ratio)
    assert image.width >= width and image.height >= height
    assert len(fake.cdn_requests) == 1
    assert sleeps == []


async def test_sends_the_configured_model_options_and_base_url(
    fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    config = IdeogramConfig(
        api_key=API_KEY, base_url="https://api.ideogram.ai/", model="V_2_TURBO", magic_prompt_option="AUTO"
    )
    await provider(http, sleeps, config).generate(image_request(AspectRatio.SQUARE))

    sent = fake.generate_requests[0]["image_request"]
    assert sent["model"] == "V_2_TURBO"
    assert sent["magic_prompt_option"] == "AUTO"
    assert sent["resolution"] == "RESOLUTION_1024_1024"


async def test_a_fake_that_expects_another_key_answers_401(http: httpx.AsyncClient, sleeps: Sleeps) -> None:
    # The fake really checks the Api-Key header: the same adapter with another key is refused.
    config = IdeogramConfig(api_key="ik_live_someone_elses_key")
    with pytest.raises(ProviderMisconfigured):
        await provider(http, sleeps, config).generate(image_request())


# --- safety blocks: never retried ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "drop_url"),
    [
        pytest.param({"is_image_safe": False, "url": ""}, False, id="unsafe-empty-url"),
        pytest.param({"is_image_safe": False, "url": None}, False, id="unsafe-null-url"),
        pytest.param({"is_image_safe": False}, True, id="unsafe-no-url"),
        pytest.param({"is_image_safe": False}, False, id="unsafe-with-url"),
        pytest.param({"url": ""}, False, id="safe-but-empty-url"),
        pytest.param({}, True, id="no-url-at-all"),
    ],
)
async def test_image_safety_signals_block(
    overrides: dict[str, Any],
    drop_url: bool,
    fake: FakeIdeogram,
    http: httpx.AsyncClient,
    sleeps: Sleeps,
) -> None:
    fake.item_overrides = overrides
    fake.drop_url = drop_url

    with pytest.raises(ProviderBlocked) as caught:
        await provider(http, sleeps).generate(image_request())

    assert caught.value.reason
    assert len(fake.generate_requests) == 1
    assert fake.cdn_requests == []  # an unsafe image is never fetched, even when a URL came with it
    assert sleeps == []


async def test_422_safety_check_blocks_the_prompt(
    fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    fake.generate_script = [answer(safety_refused)] * 3

    with pytest.raises(ProviderBlocked) as caught:
        await provider(http, sleeps).generate(image_request())

    assert "safety checks" in caught.value.reason
    assert len(fake.generate_requests) == 1
    assert sleeps == []


# --- rate limits and server errors ------------------------------------------------------------------------


async def test_429_honours_retry_after_then_overloaded(
    fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    fake.generate_script = [answer(lambda: too_many_requests("7"))] * 3

    with pytest.raises(ProviderOverloaded) as caught:
        await provider(http, sleeps).generate(image_request())

    # Backoff alone would wait 0.5 s then 1 s; Ideogram asked for 7.
    assert sleeps == [7.0, 7.0]
    assert caught.value.retry_after == 7
    assert len(fake.generate_requests) == 3


async def test_429_without_a_hint_backs_off_and_suggests_the_default(
    fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    fake.generate_script = [answer(too_many_requests)] * 3

    with pytest.raises(ProviderOverloaded) as caught:
        await provider(http, sleeps).generate(image_request())

    assert sleeps == [0.5, 1.0]
    assert caught.value.retry_after == UpstreamOptions().default_retry_after
    assert len(fake.generate_requests) == 3


async def test_429_then_success(fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps) -> None:
    fake.generate_script = [answer(lambda: too_many_requests("3"))]

    image = await provider(http, sleeps).generate(image_request())

    assert image.size == (1280, 720)
    assert sleeps == [3.0]
    assert len(fake.generate_requests) == 2


async def test_429_is_not_retried_past_the_deadline(
    fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    fake.generate_script = [answer(lambda: too_many_requests("30"))] * 3

    with pytest.raises(ProviderOverloaded):
        await provider(http, sleeps, now=lambda: 100.0).generate(image_request(deadline=110.0))

    assert sleeps == []
    assert len(fake.generate_requests) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_then_success(
    status: int, fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    fake.generate_script = [answer(lambda: server_error(status))]

    image = await provider(http, sleeps).generate(image_request(AspectRatio.TALL))

    assert image.size == (720, 1280)
    assert len(fake.generate_requests) == 2
    assert sleeps == [0.5]


@pytest.mark.parametrize(
    ("status", "error"),
    [(500, ProviderFailed), (502, ProviderFailed), (504, ProviderFailed), (503, ProviderOverloaded)],
)
async def test_5xx_every_time_gives_up_after_the_retries(
    status: int, error: type[Exception], fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    fake.generate_script = [answer(lambda: server_error(status))] * 10

    with pytest.raises(error) as caught:
        await provider(http, sleeps).generate(image_request())

    assert f"HTTP {status}" in str(caught.value)
    assert len(fake.generate_requests) == 1 + 2
    assert sleeps == [0.5, 1.0]


async def test_max_retries_is_configurable(
    fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    fake.generate_script = [answer(lambda: server_error(500))] * 10

    with pytest.raises(ProviderFailed):
        await provider(http, sleeps, max_retries=0).generate(image_request())

    assert len(fake.generate_requests) == 1


# --- transport failures and bad answers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "said"),
    [
        (httpx.ReadTimeout("timed out"), "timed out"),
        (httpx.ConnectError("[Errno 111] Connection refused"), "connection failed"),
    ],
)
async def test_transport_failures_are_retried_then_fail(
    exc: Exception, said: str, fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    fake.generate_script = [raises(exc)] * 10

    with pytest.raises(ProviderFailed) as caught:
        await provider(http, sleeps).generate(image_request())

    assert said in str(caught.value)
    assert len(fake.generate_requests) == 3
    assert sleeps == [0.5, 1.0]


@pytest.mark.parametrize(
    "exc", [httpx.ReadTimeout("timed out"), httpx.ConnectError("[Errno 111] Connection refused")]
)
async def test_a_transport_failure_then_success(
    exc: Exception, fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    fake.generate_script = [raises(exc)]

    image = await provider(http, sleeps).generate(image_request())

    assert image.size == (1280, 720)
    assert len(fake.generate_requests) == 2


async def test_malformed_json_fails_without_retry(
    fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    fake.generate_script = [answer(not_json)] * 3

    with pytest.raises(ProviderFailed, match="not JSON"):
        await provider(http, sleeps).generate(image_request())

    assert len(fake.generate_requests) == 1


@pytest.mark.parametrize(
    "body",
    [{"created": "2025-01-14T09:31:07+00:00", "data": []}, {"created": "2025-01-14T09:31:07+00:00"}, []],
)
async def test_200_without_data_fails(
    body: Any, fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    fake.generate_script = [answer(json_response(200, body))]

    with pytest.raises(ProviderFailed):
        await provider(http, sleeps).generate(image_request())

    assert len(fake.generate_requests) == 1


async def test_400_is_our_bug_and_not_retried(
    fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    fake.generate_script = [answer(lambda: bad_input("Invalid resolution"))] * 3

    with pytest.raises(ProviderFailed) as caught:
        await provider(http, sleeps).generate(image_request())

    assert "HTTP 400" in str(caught.value)
    assert not isinstance(caught.value, ProviderBlocked)
    assert len(fake.generate_requests) == 1


async def test_a_422_validation_error_is_not_a_safety_block(
    fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    body = {
        "detail": [{"type": "string_too_long", "loc": ["body", "image_request", "prompt"], "msg": "too long"}]
    }
    fake.generate_script = [answer(json_response(422, body))]

    with pytest.raises(ProviderFailed):
        await provider(http, sleeps).generate(image_request())


# --- configuration: key and model -------------------------------------------------------------------------


@pytest.mark.parametrize("response", [pytest.param(None, id="401"), pytest.param(forbidden, id="403")])
async def test_bad_key_is_misconfigured_and_never_leaks(
    response: Any,
    fake: FakeIdeogram,
    http: httpx.AsyncClient,
    sleeps: Sleeps,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake.api_key = "ik_live_the_key_ideogram_expects"  # ours (API_KEY) is then wrong: 401
    if response is not None:
        fake.api_key = API_KEY
        fake.generate_script = [answer(response)]
    caplog.set_level(logging.DEBUG)

    with pytest.raises(ProviderMisconfigured) as caught:
        await provider(http, sleeps).generate(image_request())

    assert "PE_IDEOGRAM_API_KEY" in str(caught.value)
    assert API_KEY not in str(caught.value)
    assert API_KEY not in caplog.text
    assert "PE_IDEOGRAM_API_KEY" in caplog.text  # the operator's log line says what to fix
    assert len(fake.generate_requests) == 1
    assert sleeps == []


@pytest.mark.parametrize("key", [None, "", "   "])
async def test_missing_key_fails_at_once(
    key: str | None, fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    adapter = provider(http, sleeps, IdeogramConfig(api_key=key))

    assert adapter.problem() == "PE_IDEOGRAM_API_KEY is not set"
    with pytest.raises(ProviderMisconfigured, match="PE_IDEOGRAM_API_KEY is not set"):
        await adapter.generate(image_request())
    assert fake.generate_requests == []


async def test_a_key_with_a_newline_is_a_problem_that_does_not_show_the_key(
    http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    problem = provider(http, sleeps, IdeogramConfig(api_key=API_KEY + "\n")).problem()

    assert problem is not None and "whitespace" in problem
    assert API_KEY not in problem


async def test_unknown_model_is_misconfigured_without_a_call(
    fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    adapter = provider(http, sleeps, IdeogramConfig(api_key=API_KEY, model="V_3"))

    problem = adapter.problem()
    assert problem is not None and "PE_IDEOGRAM_MODEL" in problem and "V_3" in problem
    with pytest.raises(ProviderMisconfigured, match="PE_IDEOGRAM_MODEL"):
        await adapter.generate(image_request())
    assert fake.generate_requests == []


async def test_a_model_ideogram_no_longer_accepts_is_misconfigured(
    fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    # A retired id that our list still knows: Ideogram's own validation error names the field.
    fake.generate_script = [answer(unknown_model("V_1"))] * 3
    adapter = provider(http, sleeps, IdeogramConfig(api_key=API_KEY, model="V_1"))

    with pytest.raises(ProviderMisconfigured, match="PE_IDEOGRAM_MODEL"):
        await adapter.generate(image_request())
    assert len(fake.generate_requests) == 1


async def test_404_is_misconfigured(fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps) -> None:
    fake.generate_script = [answer(json_response(404, {"detail": "Not Found"}))]

    with pytest.raises(ProviderMisconfigured):
        await provider(http, sleeps).generate(image_request())
    assert len(fake.generate_requests) == 1


@pytest.mark.parametrize(
    ("config", "said"),
    [
        (IdeogramConfig(api_key=API_KEY, magic_prompt_option="MAYBE"), "magic_prompt_option"),
        (IdeogramConfig(api_key=API_KEY, base_url="http://api.ideogram.ai"), "PE_IDEOGRAM_BASE_URL"),
    ],
)
async def test_other_config_problems(
    config: IdeogramConfig, said: str, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    problem = provider(http, sleeps, config).problem()
    assert problem is not None and said in problem


async def test_a_local_plain_http_proxy_is_allowed(http: httpx.AsyncClient, sleeps: Sleeps) -> None:
    config = IdeogramConfig(api_key=API_KEY, base_url="http://127.0.0.1:8089")
    assert provider(http, sleeps, config).problem() is None


# --- the result download ----------------------------------------------------------------------------------


async def test_result_url_at_a_private_address_is_refused(
    fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    with pytest.raises(ProviderFailed) as caught:
        await provider(http, sleeps, resolver=private_resolver).generate(image_request())

    message = str(caught.value)
    assert "refused" in message
    assert "signature=" not in message and "exp=" not in message
    assert fake.cdn_requests == []
    assert len(fake.generate_requests) == 1  # not retried: the same URL would be refused again
    assert sleeps == []


async def test_http_result_url_is_refused(
    fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    fake.cdn_scheme = "http"

    with pytest.raises(ProviderFailed, match="refused"):
        await provider(http, sleeps).generate(image_request())

    assert fake.cdn_requests == []
    assert len(fake.generate_requests) == 1


async def test_oversized_result_is_refused(
    fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    with pytest.raises(ProviderFailed, match="too large") as caught:
        await provider(http, sleeps, max_download_bytes=512).generate(image_request())

    assert "signature=" not in str(caught.value)
    assert len(fake.cdn_requests) == 1
    assert len(fake.generate_requests) == 1


async def test_expired_result_url_fails_without_leaking_the_signature(
    fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    fake.cdn_script = [answer(httpx.Response(403, content=b"<Error><Code>AccessDenied</Code></Error>"))]

    with pytest.raises(ProviderFailed, match="HTTP 403") as caught:
        await provider(http, sleeps).generate(image_request())

    assert "signature" not in str(caught.value)
    assert "/api/images/ephemeral/" in str(caught.value)  # the redacted URL is still useful
    assert len(fake.generate_requests) == 1


async def test_a_failed_download_is_retried_without_paying_for_a_new_image(
    fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    fake.cdn_script = [answer(httpx.Response(503)), raises(httpx.ReadError("connection reset"))]

    image = await provider(http, sleeps).generate(image_request(AspectRatio.PORTRAIT_4_5))

    assert image.size == (896, 1120)
    assert fake.generated == 1
    assert len(fake.generate_requests) == 1
    assert len(fake.cdn_requests) == 3
    assert len({request.url.path for request in fake.cdn_requests}) == 1
    assert sleeps == [0.5, 1.0]


async def test_a_result_that_is_not_an_image_fails(
    fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    fake.cdn_script = [answer(httpx.Response(200, content=b"<html>not an image</html>"))]

    with pytest.raises(ProviderFailed, match="not a valid image"):
        await provider(http, sleeps).generate(image_request())


async def test_a_gif_result_is_refused(fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 200, 30)).save(buffer, format="GIF")
    fake.cdn_script = [answer(httpx.Response(200, content=buffer.getvalue()))]

    with pytest.raises(ProviderFailed, match="GIF"):
        await provider(http, sleeps).generate(image_request())


# --- check() ----------------------------------------------------------------------------------------------


async def test_check_ok_without_generating(
    fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    result = await provider(http, sleeps).check()

    assert result.ok, result.detail
    assert "V_2" in result.detail
    assert fake.generated == 0
    assert len(fake.generate_requests) == 1
    assert "prompt" not in fake.generate_requests[0]["image_request"]


async def test_check_bad_key(fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps) -> None:
    fake.api_key = "ik_live_the_key_ideogram_expects"

    result = await provider(http, sleeps).check()

    assert not result.ok
    assert "PE_IDEOGRAM_API_KEY" in result.detail
    assert API_KEY not in result.detail
    assert fake.generated == 0


async def test_check_unknown_model_needs_no_call(
    fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    result = await provider(http, sleeps, IdeogramConfig(api_key=API_KEY, model="V_9_ULTRA")).check()

    assert not result.ok
    assert "V_9_ULTRA" in result.detail
    assert fake.generate_requests == []


async def test_check_model_rejected_upstream(
    fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    fake.generate_script = [answer(unknown_model("V_1"))]

    result = await provider(http, sleeps, IdeogramConfig(api_key=API_KEY, model="V_1")).check()

    assert not result.ok
    assert "PE_IDEOGRAM_MODEL" in result.detail


async def test_check_missing_key(fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps) -> None:
    result = await provider(http, sleeps, IdeogramConfig(api_key=None)).check()

    assert result == type(result)(False, "PE_IDEOGRAM_API_KEY is not set")
    assert fake.generate_requests == []


@pytest.mark.parametrize(
    "exc", [httpx.ConnectError("[Errno -3] Temporary failure in name resolution"), httpx.ReadTimeout("slow")]
)
async def test_check_network_down_does_not_raise(
    exc: Exception, fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    fake.generate_script = [raises(exc)]

    result = await provider(http, sleeps).check()

    assert not result.ok
    assert type(exc).__name__ in result.detail


async def test_check_server_error(fake: FakeIdeogram, http: httpx.AsyncClient, sleeps: Sleeps) -> None:
    fake.generate_script = [answer(lambda: server_error(502))]

    result = await provider(http, sleeps).check()

    assert not result.ok
    assert "502" in result.detail
