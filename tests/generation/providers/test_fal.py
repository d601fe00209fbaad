"""The fal.ai adapter against a fake fal (runner, queue, CDN, catalogue) behind `httpx.MockTransport`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from postengine.generation.models import AspectRatio, ImageModel
from postengine.generation.providers.base import (
    ImageRequest,
    ProviderBlocked,
    ProviderFailed,
    ProviderMisconfigured,
    ProviderOverloaded,
)
from postengine.generation.providers.fal import FalConfig, FalProvider
from tests.generation.providers.fake_fal import (
    APP,
    CDN_HOST,
    FAL_KEY,
    MODEL,
    QUEUE_HOST,
    SIZE_FOR_RATIO,
    FakeFal,
    account_locked,
    content_policy_violation,
    not_json,
    rate_limited,
    server_error,
    unauthorized,
    validation_error,
)
from tests.generation.providers.fakes import (
    Clock,
    answer,
    json_response,
    png,
    private_resolver,
    public_resolver_for,
    raises,
)

PROMPT = "a lighthouse on a cliff at dusk, teal and orange, minimal poster"
WRONG_KEY = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0:ffeeddccbbaa99887766554433221100"


public_resolver = public_resolver_for(CDN_HOST)


@pytest.fixture
def fake() -> FakeFal:
    return FakeFal()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def http(fake: FakeFal) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=fake.transport()) as client:
        yield client


def provider(
    http: httpx.AsyncClient, clock: Clock, *, key: str | None = FAL_KEY, mode: str = "sync", **options: Any
) -> FalProvider:
    options.setdefault("resolver", public_resolver)
    config = FalConfig(api_key=key, mode=mode)
    return FalProvider(config, http, clock.options(**options))


def image_request(
    clock: Clock, ratio: AspectRatio = AspectRatio.WIDE, seconds: float = 120.0
) -> ImageRequest:
    width, height = SIZE_FOR_RATIO[ratio.value]
    return ImageRequest(ImageModel.FLUX_SCHNELL, PROMPT, ratio, width, height, deadline=clock.now() + seconds)


# --- success ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("ratio", list(AspectRatio))
async def test_sync_sends_the_size_for_each_ratio_and_decodes_the_inline_image(
    fake: FakeFal, http: httpx.AsyncClient, clock: Clock, ratio: AspectRatio
) -> None:
    image = await provider(http, clock).generate(image_request(clock, ratio))

    width, height = SIZE_FOR_RATIO[ratio.value]
    assert fake.inputs == [
        {
            "prompt": PROMPT,
            "image_size": {"width": width, "height": height},
            "num_inference_steps": 4,
            "num_images": 1,
            "enable_safety_checker": True,
            "sync_mode": True,
        }
    ]
    assert image.size == (width, height)
    assert fake.cdn_requests == [] and clock.sleeps == []


async def test_sync_downloads_a_cdn_url_when_fal_sends_one(
    fake: FakeFal, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.delivery = "cdn"

    image = await provider(http, clock).generate(image_request(clock, AspectRatio.PORTRAIT_4_5))

    assert image.size == (816, 1024)
    [download] = fake.cdn_requests
    assert download.headers["host"] == CDN_HOST
    assert download.url.path.startswith("/files/")


@pytest.mark.parametrize("ratio", [AspectRatio.SQUARE, AspectRatio.TALL])
async def test_queue_polls_the_returned_urls_then_fetches_the_result(
    fake: FakeFal, http: httpx.AsyncClient, clock: Clock, ratio: AspectRatio
) -> None:
    image = await provider(http, clock, mode="queue").generate(image_request(clock, ratio))

    assert image.size == SIZE_FOR_RATIO[ratio.value]
    assert fake.submits == 1 and fake.polls == 3 and fake.run_calls == 1
    assert clock.sleeps == [1.0, 1.0]  # after IN_QUEUE and IN_PROGRESS, none after COMPLETED
    queue_paths = [r.url.path for r in fake.all_requests if r.headers["host"] == QUEUE_HOST]
    assert queue_paths[0] == f"/{MODEL}"
    assert all(path.startswith(f"/{APP}/requests/") for path in queue_paths[1:])
    assert fake.cancels == []


async def test_queue_refuses_status_urls_on_another_host(
    fake: FakeFal, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.submit_overrides = {"status_url": "https://collector.example.net/fal-ai/flux/requests/x/status"}

    with pytest.raises(ProviderFailed, match="another host"):
        await provider(http, clock, mode="queue").generate(image_request(clock))

    # The fake raises for any unknown host, so reaching here means the key went nowhere else.
    assert fake.polls == 0 and fake.run_calls == 0


async def test_queue_stops_at_the_deadline_and_cancels(
    fake: FakeFal, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.statuses = ["IN_QUEUE"]  # forever

    with pytest.raises(ProviderFailed, match="timed out in queue"):
        await provider(http, clock, mode="queue").generate(image_request(clock, seconds=10.0))

    assert sum(clock.sleeps) < 10.0
    assert fake.polls == len(clock.sleeps) + 1
    assert len(fake.cancels) == 1 and fake.cancels[0] in fake.queued
    assert fake.run_calls == 0


async def test_queue_retries_a_failed_poll(fake: FakeFal, http: httpx.AsyncClient, clock: Clock) -> None:
    fake.status_script = [answer(server_error(502))]

    image = await provider(http, clock, mode="queue").generate(image_request(clock))

    assert image.size == (1024, 576)
    assert fake.submits == 1  # the poll was retried, not the submission


async def test_a_vanished_queued_request_is_a_failure_not_misconfiguration(
    fake: FakeFal, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.status_script = [answer(json_response(404, {"detail": "Request not found"}))]

    with pytest.raises(ProviderFailed, match="gone") as caught:
        await provider(http, clock, mode="queue").generate(image_request(clock))

    assert not isinstance(caught.value, ProviderMisconfigured)
    assert fake.polls == 1 and len(fake.cancels) == 1


# --- safety blocks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "queue"])
async def test_nsfw_flag_blocks_and_is_not_retried(
    fake: FakeFal, http: httpx.AsyncClient, clock: Clock, mode: str
) -> None:
    fake.nsfw = True

    with pytest.raises(ProviderBlocked, match="safety checker"):
        await provider(http, clock, mode=mode).generate(image_request(clock))

    assert fake.run_calls == 1 and fake.cdn_requests == []


@pytest.mark.parametrize(("mode", "where"), [("sync", "run"), ("queue", "submit"), ("queue", "result")])
async def test_content_policy_422_blocks_and_is_not_retried(
    fake: FakeFal, http: httpx.AsyncClient, clock: Clock, mode: str, where: str
) -> None:
    script = fake.submit_script if where == "submit" else fake.run_script
    script.append(answer(content_policy_violation()))

    with pytest.raises(ProviderBlocked, match="content checker"):
        await provider(http, clock, mode=mode).generate(image_request(clock))

    assert fake.run_calls == (0 if where == "submit" else 1)
    assert fake.submits == (0 if mode == "sync" else 1)
    assert fake.cdn_requests == []


async def test_other_422_is_a_failure_not_a_block(
    fake: FakeFal, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.run_script = [answer(validation_error())]

    with pytest.raises(ProviderFailed, match="422") as caught:
        await provider(http, clock).generate(image_request(clock))

    assert not isinstance(caught.value, ProviderBlocked)
    assert fake.run_calls == 1 and clock.sleeps == []


# --- rate limits, server errors, the network ------------------------------------------------------


async def test_429_honours_retry_after_then_reports_overloaded(
    fake: FakeFal, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.run_script = [answer(rate_limited("7"))] * 3

    with pytest.raises(ProviderOverloaded) as caught:
        await provider(http, clock).generate(image_request(clock))

    assert clock.sleeps == [7.0, 7.0]  # the hint beats the 0.5 s and 1 s backoff
    assert caught.value.retry_after == 7
    assert fake.run_calls == 3


async def test_429_without_a_hint_backs_off_and_suggests_the_default(
    fake: FakeFal, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.run_script = [answer(rate_limited())] * 3

    with pytest.raises(ProviderOverloaded) as caught:
        await provider(http, clock).generate(image_request(clock))

    assert clock.sleeps == [0.5, 1.0]
    assert caught.value.retry_after == 30


async def test_5xx_then_success(fake: FakeFal, http: httpx.AsyncClient, clock: Clock) -> None:
    fake.run_script = [answer(server_error(500))]

    image = await provider(http, clock).generate(image_request(clock))

    assert image.size == (1024, 576)
    assert fake.run_calls == 2 and clock.sleeps == [0.5]


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_5xx_every_time_fails_after_the_retries(
    fake: FakeFal, http: httpx.AsyncClient, clock: Clock, status: int
) -> None:
    fake.run_script = [answer(server_error(status))] * 5

    with pytest.raises(ProviderFailed, match=str(status)):
        await provider(http, clock).generate(image_request(clock))

    assert fake.run_calls == 3


async def test_503_every_time_is_overloaded(fake: FakeFal, http: httpx.AsyncClient, clock: Clock) -> None:
    fake.run_script = [answer(server_error(503))] * 3

    with pytest.raises(ProviderOverloaded):
        await provider(http, clock).generate(image_request(clock))

    assert fake.run_calls == 3


async def test_timeouts_are_retried_then_fail(fake: FakeFal, http: httpx.AsyncClient, clock: Clock) -> None:
    fake.run_script = [raises(httpx.ReadTimeout("read timed out"))] * 3

    with pytest.raises(ProviderFailed, match="timed out"):
        await provider(http, clock).generate(image_request(clock))

    assert fake.run_calls == 3 and clock.sleeps == [0.5, 1.0]


async def test_a_timeout_then_success(fake: FakeFal, http: httpx.AsyncClient, clock: Clock) -> None:
    fake.run_script = [raises(httpx.ReadTimeout("read timed out"))]

    image = await provider(http, clock).generate(image_request(clock))

    assert image.size == (1024, 576) and fake.run_calls == 2


async def test_connection_errors_are_retried_then_fail(
    fake: FakeFal, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.run_script = [raises(httpx.ConnectError("connection refused"))] * 3

    with pytest.raises(ProviderFailed, match="connection failed"):
        await provider(http, clock).generate(image_request(clock))

    assert fake.run_calls == 3


async def test_malformed_json_fails_without_retrying(
    fake: FakeFal, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.run_script = [answer(not_json())]

    with pytest.raises(ProviderFailed, match="not JSON"):
        await provider(http, clock).generate(image_request(clock))

    assert fake.run_calls == 1


async def test_a_result_without_images_fails(fake: FakeFal, http: httpx.AsyncClient, clock: Clock) -> None:
    fake.run_script = [answer(json_response(200, {"images": [], "seed": 1, "has_nsfw_concepts": []}))]

    with pytest.raises(ProviderFailed, match="no image"):
        await provider(http, clock).generate(image_request(clock))


# --- configuration: keys and model ids ------------------------------------------------------------


@pytest.mark.parametrize("reply", [unauthorized, account_locked])
async def test_a_rejected_key_is_misconfiguration_and_never_leaks(
    fake: FakeFal, http: httpx.AsyncClient, clock: Clock, caplog: pytest.LogCaptureFixture, reply: Any
) -> None:
    if reply is unauthorized:
        fake.key = "someone-else:0000"  # the fake answers 401 to any other key
    else:
        fake.run_script = [answer(reply())]
    caplog.set_level(logging.DEBUG)

    with pytest.raises(ProviderMisconfigured) as caught:
        await provider(http, clock).generate(image_request(clock))

    assert "PE_FAL_KEY" in str(caught.value)
    assert FAL_KEY not in str(caught.value) and FAL_KEY not in caplog.text
    assert FAL_KEY.split(":")[1] not in caplog.text
    assert fake.run_calls <= 1 and clock.sleeps == []


async def test_an_unknown_model_is_misconfiguration(http: httpx.AsyncClient, clock: Clock) -> None:
    adapter = FalProvider(
        FalConfig(api_key=FAL_KEY, model="fal-ai/flux/schnel"),
        http,
        clock.options(resolver=public_resolver),
    )

    with pytest.raises(ProviderMisconfigured, match="404"):
        await adapter.generate(image_request(clock))

    assert clock.sleeps == []


async def test_no_key_fails_at_once_without_a_call(
    fake: FakeFal, http: httpx.AsyncClient, clock: Clock
) -> None:
    adapter = provider(http, clock, key=None)

    assert adapter.problem() == "PE_FAL_KEY is not set"
    with pytest.raises(ProviderMisconfigured, match="PE_FAL_KEY is not set"):
        await adapter.generate(image_request(clock))
    assert fake.all_requests == []


@pytest.mark.parametrize(
    ("config", "complaint"),
    [
        (FalConfig(api_key=FAL_KEY + "\n"), "whitespace"),
        (FalConfig(api_key=FAL_KEY, mode="stream"), "PE_FAL_MODE"),
        (FalConfig(api_key=FAL_KEY, model="/etc/passwd?x=1"), "PE_FAL_MODEL"),
        (FalConfig(api_key=FAL_KEY, base_url="http://fal.run"), "PE_FAL_BASE_URL"),
        (FalConfig(api_key=FAL_KEY, queue_url="http://queue.fal.run"), "PE_FAL_QUEUE_URL"),
    ],
)
def test_problem_names_the_setting(http: httpx.AsyncClient, config: FalConfig, complaint: str) -> None:
    problem = FalProvider(config, http).problem()
    assert problem is not None and complaint in problem
    assert FAL_KEY not in problem


def test_a_good_config_has_no_problem(http: httpx.AsyncClient) -> None:
    assert FalProvider(FalConfig(api_key=FAL_KEY), http).problem() is None
    assert (
        FalProvider(
            FalConfig(api_key=FAL_KEY, mode="queue", base_url="http://localhost:8080"), http
        ).problem()
        is None
    )


# --- result URLs -----------------------------------------------------------------------------------


async def test_a_result_url_at_a_private_address_is_refused(
    fake: FakeFal, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.delivery = "cdn"

    with pytest.raises(ProviderFailed, match="refused"):
        await provider(http, clock, resolver=private_resolver).generate(image_request(clock))

    assert fake.cdn_requests == [] and fake.run_calls == 1


async def test_a_plain_http_result_url_is_refused(
    fake: FakeFal, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.delivery, fake.cdn_scheme = "cdn", "http"

    with pytest.raises(ProviderFailed, match="refused"):
        await provider(http, clock).generate(image_request(clock))

    assert fake.cdn_requests == []


async def test_an_oversized_result_is_refused(fake: FakeFal, http: httpx.AsyncClient, clock: Clock) -> None:
    fake.delivery = "cdn"

    with pytest.raises(ProviderFailed, match="too large"):
        await provider(http, clock, max_download_bytes=1000).generate(image_request(clock))

    assert len(fake.cdn_requests) == 1 and fake.run_calls == 1


async def test_a_failed_download_is_fetched_again_not_generated_again(
    fake: FakeFal, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.delivery = "cdn"
    fake.cdn_script = [answer(httpx.Response(503, content=b"Slow Down"))]

    image = await provider(http, clock).generate(image_request(clock))

    assert image.size == (1024, 576)
    assert fake.run_calls == 1 and len(fake.cdn_requests) == 2


@pytest.mark.parametrize("data", [b"GIF89a not really", b"<html>oops</html>", png(64, 64)[:40]])
async def test_bytes_that_are_not_an_image_fail(
    fake: FakeFal, http: httpx.AsyncClient, clock: Clock, data: bytes
) -> None:
    fake.image_bytes = data

    with pytest.raises(ProviderFailed, match=r"not a valid image|not an image we accept"):
        await provider(http, clock).generate(image_request(clock))


# --- check() ---------------------------------------------------------------------------------------


async def test_check_ok(fake: FakeFal, http: httpx.AsyncClient, clock: Clock) -> None:
    result = await provider(http, clock).check()

    assert result.ok, result.detail
    assert "key accepted" in result.detail and MODEL in result.detail
    assert fake.run_calls == 0 and fake.submits == 0  # nothing generated, nothing charged
    probe = fake.all_requests[0]
    assert probe.method == "GET" and probe.url.host == QUEUE_HOST
    assert probe.url.path.startswith(f"/{APP}/requests/") and probe.url.path.endswith("/status")
    assert probe.headers["authorization"] == f"Key {FAL_KEY}"


async def test_check_bad_key(
    fake: FakeFal, http: httpx.AsyncClient, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    result = await provider(http, clock, key=WRONG_KEY).check()

    assert not result.ok and "PE_FAL_KEY" in result.detail and "401" in result.detail
    assert WRONG_KEY not in result.detail and WRONG_KEY not in caplog.text


async def test_check_unknown_model(http: httpx.AsyncClient, clock: Clock) -> None:
    adapter = FalProvider(FalConfig(api_key=FAL_KEY, model="fal-ai/flux/schnel"), http)

    result = await adapter.check()

    assert not result.ok and "fal-ai/flux/schnel" in result.detail and "PE_FAL_MODEL" in result.detail


async def test_check_when_the_catalogue_answers_oddly_still_trusts_the_key(
    fake: FakeFal, http: httpx.AsyncClient, clock: Clock
) -> None:
    fake.catalogue_reply = answer(server_error(500))

    result = await provider(http, clock).check()

    assert result.ok and "not verified" in result.detail


async def test_check_network_down(clock: Clock) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("network unreachable")

    async with httpx.AsyncClient(transport=httpx.MockTransport(down)) as http:
        result = await provider(http, clock).check()

    assert not result.ok and "cannot reach" in result.detail and "ConnectError" in result.detail


async def test_check_without_a_key_makes_no_call(
    fake: FakeFal, http: httpx.AsyncClient, clock: Clock
) -> None:
    result = await provider(http, clock, key="").check()

    assert not result.ok and result.detail == "PE_FAL_KEY is not set"
    assert fake.all_requests == []
