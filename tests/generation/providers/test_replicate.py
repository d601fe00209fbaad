"""The Replicate adapter against a fake Replicate (API and delivery CDN) behind `httpx.MockTransport`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from postengine.generation.models import AspectRatio, ImageModel, output_size
from postengine.generation.providers.base import (
    ImageRequest,
    ProviderBlocked,
    ProviderFailed,
    ProviderMisconfigured,
    ProviderOverloaded,
)
from postengine.generation.providers.replicate import ReplicateConfig, ReplicateProvider
from tests.generation.providers.fake_replicate import (
    API_HOST,
    CDN_HOST,
    MODEL,
    NSFW_ERROR,
    SIZE_FOR_RATIO,
    TOKEN,
    FakeReplicate,
    insufficient_credit,
    invalid_input,
    not_found,
    not_json,
    server_error,
    throttled,
)
from tests.generation.providers.fakes import (
    Clock,
    answer,
    private_resolver,
    public_resolver_for,
    raises,
)

PROMPT = "a bowl of ramen on a wooden table, steam, soft window light"
WRONG_TOKEN = "r8_WrongWrongWrongWrongWrongWrongWrong0"


public_resolver = public_resolver_for(CDN_HOST)


@pytest.fixture
def fake() -> FakeReplicate:
    return FakeReplicate()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def http(fake: FakeReplicate) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=fake.transport()) as client:
        yield client


def provider(
    http: httpx.AsyncClient,
    clock: Clock,
    *,
    token: str | None = TOKEN,
    model: str = MODEL,
    **options: Any,
) -> ReplicateProvider:
    options.setdefault("resolver", public_resolver)
    return ReplicateProvider(ReplicateConfig(api_token=token, model=model), http, clock.options(**options))


def image_request(
    clock: Clock, ratio: AspectRatio = AspectRatio.WIDE, seconds: float = 120.0
) -> ImageRequest:
    width, height = output_size(ImageModel.FLUX_SCHNELL, ratio)
    return ImageRequest(ImageModel.FLUX_SCHNELL, PROMPT, ratio, width, height, deadline=clock.now() + seconds)


# --- success ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("ratio", list(AspectRatio))
async def test_sends_the_aspect_ratio_and_downloads_the_output(
    fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock, ratio: AspectRatio
) -> None:
    image = await provider(http, clock).generate(image_request(clock, ratio))

    assert fake.inputs == [
        {
            "prompt": PROMPT,
            "aspect_ratio": ratio.value,
            "num_outputs": 1,
            "output_format": "webp",
            "megapixels": "1",
        }
    ]
    assert fake.prefer == ["wait=60"]
    create = fake.all_requests[0]
    assert create.method == "POST" and create.url.path == f"/v1/models/{MODEL}/predictions"
    assert create.headers["authorization"] == f"Bearer {TOKEN}"
    assert image.format == "WEBP" and image.size == SIZE_FOR_RATIO[ratio.value]
    # At least the output size in both directions: the caller only ever downscales.
    width, height = output_size(ImageModel.FLUX_SCHNELL, ratio)
    assert image.width >= width and image.height >= height
    [download] = fake.cdn_requests
    assert download.headers["host"] == CDN_HOST and download.url.path.endswith("/out-0.webp")
    assert fake.polls == 0 and clock.sleeps == []


async def test_a_plain_string_output_is_accepted(
    fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.output_as_string = True

    image = await provider(http, clock).generate(image_request(clock, AspectRatio.SQUARE))

    assert image.size == (1024, 1024)


async def test_the_wait_is_shortened_to_fit_the_deadline(
    fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock
) -> None:
    await provider(http, clock).generate(image_request(clock, seconds=30.0))

    assert fake.prefer == ["wait=25"]


async def test_an_unfinished_prediction_is_polled_on_its_get_url(
    fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.statuses = ["starting", "processing", "succeeded"]

    image = await provider(http, clock).generate(image_request(clock, AspectRatio.PORTRAIT_4_5))

    assert image.size == (896, 1088)
    assert fake.creates == 1 and fake.polls == 2 and clock.sleeps == [1.0, 1.0]
    [prediction_id] = fake.predictions
    polls = [r for r in fake.all_requests if r.method == "GET" and r.headers["host"] == API_HOST]
    assert {r.url.path for r in polls} == {f"/v1/predictions/{prediction_id}"}
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in polls)
    assert fake.cancels == []


async def test_a_failed_poll_is_retried_without_a_new_prediction(
    fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.statuses = ["processing", "succeeded"]
    fake.poll_script = [answer(server_error(500))]

    image = await provider(http, clock).generate(image_request(clock))

    assert image.size == (1344, 768)
    assert fake.creates == 1 and fake.polls == 2


async def test_polling_stops_at_the_deadline_and_cancels(
    fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.statuses = ["processing"]  # forever

    with pytest.raises(ProviderFailed, match="deadline"):
        await provider(http, clock).generate(image_request(clock, seconds=12.0))

    assert sum(clock.sleeps) < 12.0 and fake.polls == len(clock.sleeps)
    assert fake.cancels == list(fake.predictions)
    assert fake.cdn_requests == []


async def test_a_get_url_off_the_api_host_is_refused(
    fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.statuses = ["processing", "succeeded"]
    fake.urls_override = {"get": "https://api.replicate.com.evil.example/v1/predictions/x"}

    with pytest.raises(ProviderFailed, match="API host"):
        await provider(http, clock).generate(image_request(clock))

    # The fake raises for any other host, so reaching here means the token went nowhere else.
    assert fake.polls == 0
    assert fake.cancels == list(fake.predictions)


async def test_a_vanished_prediction_is_a_failure_not_misconfiguration(
    fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.statuses = ["processing", "succeeded"]
    fake.poll_script = [answer(not_found())]

    with pytest.raises(ProviderFailed, match="gone") as caught:
        await provider(http, clock).generate(image_request(clock))

    assert not isinstance(caught.value, ProviderMisconfigured)
    assert fake.polls == 1 and fake.cancels == list(fake.predictions)


# --- safety blocks and failed predictions ---------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        NSFW_ERROR,
        "All generated images contained NSFW content. Try running it again with a different prompt.",
        "Prediction failed: potential nsfw content detected",
    ],
)
@pytest.mark.parametrize("statuses", [["failed"], ["starting", "failed"]])
async def test_an_nsfw_failure_is_a_block_and_not_retried(
    fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock, error: str, statuses: list[str]
) -> None:
    fake.statuses, fake.error = statuses, error

    with pytest.raises(ProviderBlocked, match="NSFW"):
        await provider(http, clock).generate(image_request(clock))

    assert fake.creates == 1 and fake.cdn_requests == [] and fake.cancels == []


@pytest.mark.parametrize(
    ("status", "error"),
    [("failed", "CUDA error: out of memory"), ("failed", None), ("canceled", None)],
)
async def test_other_failed_or_canceled_predictions_fail(
    fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock, status: str, error: str | None
) -> None:
    fake.statuses, fake.error = [status], error

    with pytest.raises(ProviderFailed) as caught:
        await provider(http, clock).generate(image_request(clock))

    assert not isinstance(caught.value, ProviderBlocked)
    assert fake.creates == 1


# --- rate limits, server errors, the network ------------------------------------------------------


async def test_429_honours_retry_after_then_reports_overloaded(
    fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.create_script = [answer(throttled("5"))] * 3

    with pytest.raises(ProviderOverloaded, match="429") as caught:
        await provider(http, clock).generate(image_request(clock))

    assert clock.sleeps == [5.0, 5.0]
    assert caught.value.retry_after == 5
    assert fake.creates == 3


async def test_429_then_success(fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock) -> None:
    fake.create_script = [answer(throttled("2"))]

    image = await provider(http, clock).generate(image_request(clock))

    assert image.size == (1344, 768) and clock.sleeps == [2.0] and fake.creates == 2


async def test_5xx_then_success(fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock) -> None:
    fake.create_script = [answer(server_error(502))]

    image = await provider(http, clock).generate(image_request(clock))

    assert image.size == (1344, 768) and fake.creates == 2 and clock.sleeps == [0.5]


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_5xx_every_time_fails_after_the_retries(
    fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock, status: int
) -> None:
    fake.create_script = [answer(server_error(status))] * 5

    with pytest.raises(ProviderFailed, match=str(status)):
        await provider(http, clock).generate(image_request(clock))

    assert fake.creates == 3 and clock.sleeps == [0.5, 1.0]


async def test_503_every_time_is_overloaded(
    fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.create_script = [answer(server_error(503))] * 3

    with pytest.raises(ProviderOverloaded):
        await provider(http, clock).generate(image_request(clock))

    assert fake.creates == 3


async def test_timeouts_are_retried_then_fail(
    fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.create_script = [raises(httpx.ReadTimeout("read timed out"))] * 3

    with pytest.raises(ProviderFailed, match="timed out"):
        await provider(http, clock).generate(image_request(clock))

    assert fake.creates == 3


async def test_connection_errors_are_retried_then_fail(
    fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.create_script = [raises(httpx.ConnectError("connection refused"))] * 3

    with pytest.raises(ProviderFailed, match="connection failed"):
        await provider(http, clock).generate(image_request(clock))

    assert fake.creates == 3


async def test_a_connection_error_then_success(
    fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.create_script = [raises(httpx.ConnectError("connection reset"))]

    image = await provider(http, clock).generate(image_request(clock))

    assert image.size == (1344, 768) and fake.creates == 2


async def test_malformed_json_fails_without_retrying(
    fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.create_script = [answer(not_json())]

    with pytest.raises(ProviderFailed, match="not JSON"):
        await provider(http, clock).generate(image_request(clock))

    assert fake.creates == 1


async def test_invalid_input_422_is_a_failure(
    fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.create_script = [answer(invalid_input())]

    with pytest.raises(ProviderFailed, match="422") as caught:
        await provider(http, clock).generate(image_request(clock))

    assert not isinstance(caught.value, ProviderBlocked) and fake.creates == 1


# --- configuration: tokens and model ids ----------------------------------------------------------


async def test_a_rejected_token_is_misconfiguration_and_never_leaks(
    fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    with pytest.raises(ProviderMisconfigured) as caught:
        await provider(http, clock, token=WRONG_TOKEN).generate(image_request(clock))

    assert "PE_REPLICATE_API_TOKEN" in str(caught.value) and "401" in str(caught.value)
    assert WRONG_TOKEN not in str(caught.value) and WRONG_TOKEN not in caplog.text
    assert TOKEN not in caplog.text
    assert clock.sleeps == [] and len(fake.all_requests) == 1


async def test_out_of_credit_is_misconfiguration(
    fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.create_script = [answer(insufficient_credit())]

    with pytest.raises(ProviderMisconfigured, match="credit"):
        await provider(http, clock).generate(image_request(clock))

    assert fake.creates == 1


async def test_an_unknown_model_is_misconfiguration(
    fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock
) -> None:
    with pytest.raises(ProviderMisconfigured, match="PE_REPLICATE_MODEL"):
        await provider(http, clock, model="black-forest-labs/flux-schnel").generate(image_request(clock))

    assert fake.creates == 1 and clock.sleeps == []


async def test_no_token_fails_at_once_without_a_call(
    fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock
) -> None:
    adapter = provider(http, clock, token=None)

    assert adapter.problem() == "PE_REPLICATE_API_TOKEN is not set"
    with pytest.raises(ProviderMisconfigured, match="PE_REPLICATE_API_TOKEN is not set"):
        await adapter.generate(image_request(clock))
    assert fake.all_requests == []


@pytest.mark.parametrize(
    ("config", "complaint"),
    [
        (ReplicateConfig(api_token=" " + TOKEN), "whitespace"),
        (
            ReplicateConfig(api_token=TOKEN, model="black-forest-labs/flux-schnell:c846a699"),
            "PE_REPLICATE_MODEL",
        ),
        (ReplicateConfig(api_token=TOKEN, model="flux-schnell"), "PE_REPLICATE_MODEL"),
        (ReplicateConfig(api_token=TOKEN, base_url="http://api.replicate.com"), "PE_REPLICATE_BASE_URL"),
        (ReplicateConfig(api_token=TOKEN, wait_seconds=90), "wait"),
    ],
)
def test_problem_names_the_setting(http: httpx.AsyncClient, config: ReplicateConfig, complaint: str) -> None:
    problem = ReplicateProvider(config, http).problem()
    assert problem is not None and complaint in problem
    assert TOKEN not in problem


# --- result URLs -----------------------------------------------------------------------------------


async def test_a_result_url_at_a_private_address_is_refused(
    fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock
) -> None:
    with pytest.raises(ProviderFailed, match="refused"):
        await provider(http, clock, resolver=private_resolver).generate(image_request(clock))

    assert fake.cdn_requests == [] and fake.creates == 1


async def test_a_plain_http_result_url_is_refused(
    fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.cdn_scheme = "http"

    with pytest.raises(ProviderFailed, match="refused"):
        await provider(http, clock).generate(image_request(clock))

    assert fake.cdn_requests == []


async def test_an_oversized_result_is_refused(
    fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock
) -> None:
    with pytest.raises(ProviderFailed, match="too large"):
        await provider(http, clock, max_download_bytes=500).generate(image_request(clock))

    assert len(fake.cdn_requests) == 1 and fake.creates == 1


async def test_a_failed_download_is_fetched_again_not_generated_again(
    fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.cdn_script = [raises(httpx.ReadTimeout("read timed out"))]

    image = await provider(http, clock).generate(image_request(clock))

    assert image.size == (1344, 768)
    assert fake.creates == 1 and len(fake.cdn_requests) == 2


async def test_bytes_that_are_not_an_image_fail(
    fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.image_bytes = b"<html><body>Access denied</body></html>"

    with pytest.raises(ProviderFailed, match="not a valid image"):
        await provider(http, clock).generate(image_request(clock))


# --- check() ---------------------------------------------------------------------------------------


async def test_check_ok(fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock) -> None:
    result = await provider(http, clock).check()

    assert result.ok, result.detail
    assert MODEL in result.detail and "acme-studio" in result.detail
    assert [(r.method, r.url.path) for r in fake.all_requests] == [
        ("GET", "/v1/account"),
        ("GET", f"/v1/models/{MODEL}"),
    ]
    assert fake.creates == 0  # nothing generated, nothing charged


async def test_check_bad_token(
    fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    result = await provider(http, clock, token=WRONG_TOKEN).check()

    assert not result.ok and "PE_REPLICATE_API_TOKEN" in result.detail and "401" in result.detail
    assert WRONG_TOKEN not in result.detail and WRONG_TOKEN not in caplog.text


async def test_check_unknown_model(fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock) -> None:
    result = await provider(http, clock, model="black-forest-labs/flux-schnel").check()

    assert not result.ok
    assert "black-forest-labs/flux-schnel" in result.detail and "PE_REPLICATE_MODEL" in result.detail


async def test_check_upstream_error(fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock) -> None:
    fake.account_script = [answer(server_error(503))]

    result = await provider(http, clock).check()

    assert not result.ok and "503" in result.detail


async def test_check_network_down(clock: Clock) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("network unreachable")

    async with httpx.AsyncClient(transport=httpx.MockTransport(down)) as http:
        result = await provider(http, clock).check()

    assert not result.ok and "cannot reach" in result.detail and "ConnectError" in result.detail


async def test_check_without_a_token_makes_no_call(
    fake: FakeReplicate, http: httpx.AsyncClient, clock: Clock
) -> None:
    result = await provider(http, clock, token="").check()

    assert not result.ok and result.detail == "PE_REPLICATE_API_TOKEN is not set"
    assert fake.all_requests == []
