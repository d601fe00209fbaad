"""The Gemini adapter against a fake Gemini API (fake_gemini.py) served through httpx.MockTransport."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio
from PIL import Image

from postengine.generation.models import AspectRatio, ImageModel, output_size
from postengine.generation.providers.base import (
    ImageRequest,
    ProviderBlocked,
    ProviderError,
    ProviderFailed,
    ProviderMisconfigured,
    ProviderOverloaded,
)
from postengine.generation.providers.gemini import (
    BLOCK_FINISH_REASONS,
    GeminiConfig,
    GeminiProvider,
    retry_delay,
    takes_image_size,
)
from postengine.generation.providers.upstream import UpstreamOptions
from tests.generation.providers import fake_gemini as fake
from tests.generation.providers.fake_gemini import FLASH, KEY, PRO, FakeGemini
from tests.generation.providers.fakes import CDN_IP

SETTING = "PE_GEMINI_API_KEY"


@dataclass
class Sleeps:
    """The injected `sleep`: records how long the adapter asked to wait, never waits."""

    calls: list[float]

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


async def public_resolver(host: str, port: int) -> list[str]:
    return [CDN_IP]


@pytest.fixture(autouse=True)
def no_key_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Whatever a test does, the key never reaches a log line."""
    caplog.set_level(logging.DEBUG)
    yield
    assert KEY not in caplog.text


@pytest.fixture
def upstream() -> FakeGemini:
    return FakeGemini()


@pytest_asyncio.fixture
async def http(upstream: FakeGemini) -> AsyncIterator[httpx.AsyncClient]:
    async with upstream.client() as client:
        yield client


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps([])


@pytest.fixture
def options(sleeps: Sleeps) -> UpstreamOptions:
    return UpstreamOptions(sleep=sleeps, jitter=lambda: 0.0, now=lambda: 0.0, resolver=public_resolver)


@pytest.fixture
def provider(http: httpx.AsyncClient, options: UpstreamOptions) -> GeminiProvider:
    return GeminiProvider(GeminiConfig(api_key=KEY), http, options)


def make_request(
    model: ImageModel = ImageModel.NANO_BANANA_PRO,
    ratio: AspectRatio = AspectRatio.WIDE,
    prompt: str = 'a lighthouse at dusk, a poster that says "LISBON"',
    deadline: float | None = 120.0,
) -> ImageRequest:
    width, height = output_size(model, ratio)
    return ImageRequest(model, prompt, ratio, width, height, deadline)


def assert_clean(error: BaseException) -> None:
    assert KEY not in str(error)
    assert KEY not in repr(error)


def pixel(image: Image.Image) -> object:
    return image.convert("RGB").getpixel((image.width // 2, image.height // 2))


# ------------------------------------------------------------------------------------------ request


@pytest.mark.parametrize("model", [ImageModel.NANO_BANANA_PRO, ImageModel.GEMINI_3_PRO])
@pytest.mark.parametrize("ratio", list(AspectRatio))
async def test_generate_sends_the_documented_request_and_returns_the_final_image(
    provider: GeminiProvider, upstream: FakeGemini, model: ImageModel, ratio: AspectRatio
) -> None:
    request = make_request(model, ratio, prompt="a red fox in snow")
    image = await provider.generate(request)

    [call] = upstream.calls
    assert call.request.method == "POST"
    assert call.request.url == httpx.URL(f"{fake.BASE_URL}/v1beta/models/{PRO}:generateContent")
    assert call.request.headers["x-goog-api-key"] == KEY
    assert "authorization" not in call.request.headers
    assert call.body == {
        "contents": [{"role": "user", "parts": [{"text": "a red fox in snow"}]}],
        "generationConfig": {
            "responseModalities": ["IMAGE"],
            "imageConfig": {"aspectRatio": ratio.value, "imageSize": "2K"},
            "candidateCount": 1,
        },
    }
    assert image.size == fake.PRO_2K[ratio.value]
    assert pixel(image) == fake.FINAL_COLOUR  # not the draft marked "thought"
    assert image.width >= request.width and image.height >= request.height


@pytest.mark.parametrize("ratio", list(AspectRatio))
async def test_a_gemini_2_image_model_gets_no_image_size(
    http: httpx.AsyncClient, options: UpstreamOptions, upstream: FakeGemini, ratio: AspectRatio
) -> None:
    config = GeminiConfig(api_key=KEY, models={ImageModel.GEMINI_3_PRO: FLASH})
    image = await GeminiProvider(config, http, options).generate(make_request(ImageModel.GEMINI_3_PRO, ratio))

    [call] = upstream.calls
    assert call.request.url.path == f"/v1beta/models/{FLASH}:generateContent"
    assert call.image_config == {"aspectRatio": ratio.value}
    assert image.size == fake.FLASH_1K[ratio.value]


def test_the_image_size_rule() -> None:
    assert takes_image_size("gemini-3-pro-image-preview")
    assert takes_image_size("gemini-3.1-flash-image-preview")
    assert not takes_image_size("gemini-2.5-flash-image")
    assert not takes_image_size("gemini-2.5-flash-image-preview")
    assert not takes_image_size("gemini-2.0-flash-preview-image-generation")


async def test_no_image_size_is_sent_for_a_model_without_one_and_a_small_answer_is_logged(
    http: httpx.AsyncClient,
    options: UpstreamOptions,
    upstream: FakeGemini,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = GeminiConfig(api_key=KEY, image_sizes={ImageModel.NANO_BANANA_PRO: "2K"})
    request = make_request(ImageModel.GEMINI_3_PRO, AspectRatio.WIDE)
    image = await GeminiProvider(config, http, options).generate(request)

    assert upstream.calls[0].image_config == {"aspectRatio": "16:9"}
    assert image.size == (1376, 768)  # the upstream's 1K default, smaller than the 1536x864 output
    assert "check the configured image size" in caplog.text


async def test_image_sizes_are_sent_in_upper_case(
    http: httpx.AsyncClient, options: UpstreamOptions, upstream: FakeGemini
) -> None:
    config = GeminiConfig(api_key=KEY, image_sizes={ImageModel.NANO_BANANA_PRO: "4k"})
    image = await GeminiProvider(config, http, options).generate(make_request(ratio=AspectRatio.SQUARE))

    assert upstream.calls[0].image_size == "4K"
    assert image.size == (4096, 4096)


async def test_a_models_prefix_and_a_trailing_slash_in_the_configuration_are_tolerated(
    http: httpx.AsyncClient, options: UpstreamOptions, upstream: FakeGemini
) -> None:
    config = GeminiConfig(
        api_key=KEY,
        base_url=fake.BASE_URL + "/",
        models={ImageModel.NANO_BANANA_PRO: f"models/{PRO}"},
    )
    await GeminiProvider(config, http, options).generate(make_request())
    assert upstream.calls[0].request.url.path == f"/v1beta/models/{PRO}:generateContent"


# ----------------------------------------------------------------------------------------- response


@pytest.mark.parametrize("reply", [fake.snake_case_image, fake.image_then_text])
async def test_the_last_non_thought_inline_image_is_the_answer(
    provider: GeminiProvider, upstream: FakeGemini, reply: fake.Reply
) -> None:
    upstream.replies.append(reply)
    image = await provider.generate(make_request(ratio=AspectRatio.PORTRAIT_4_5))
    assert image.size == fake.PRO_2K["4:5"]
    assert pixel(image) == fake.FINAL_COLOUR
    assert len(upstream.calls) == 1  # not rescued by a retry


async def test_of_two_final_images_the_last_one_wins(provider: GeminiProvider, upstream: FakeGemini) -> None:
    upstream.replies.append(
        fake.generated(
            [
                {"inlineData": {"mimeType": "image/png", "data": fake.b64png(32, 32, fake.DRAFT_COLOUR)}},
                {"inlineData": {"mimeType": "image/png", "data": fake.b64png(2752, 1536)}},
                {"inlineData": {"mimeType": "image/png", "data": fake.b64png(48, 48)}, "thought": True},
            ]
        )
    )
    image = await provider.generate(make_request())
    assert image.size == (2752, 1536)
    assert len(upstream.calls) == 1


@pytest.mark.parametrize("reason", ["SAFETY", "OTHER", "BLOCKLIST", "PROHIBITED_CONTENT", "IMAGE_SAFETY"])
async def test_a_blocked_prompt_is_blocked_and_never_retried(
    provider: GeminiProvider, upstream: FakeGemini, sleeps: Sleeps, reason: str
) -> None:
    upstream.replies.append(fake.prompt_blocked(reason))
    with pytest.raises(ProviderBlocked) as caught:
        await provider.generate(make_request())
    assert reason in caught.value.reason
    assert len(upstream.calls) == 1
    assert sleeps.calls == []


@pytest.mark.parametrize("with_thought", [False, True])
@pytest.mark.parametrize("finish_reason", sorted(BLOCK_FINISH_REASONS))
async def test_a_refused_image_is_blocked_and_never_retried(
    provider: GeminiProvider, upstream: FakeGemini, sleeps: Sleeps, finish_reason: str, with_thought: bool
) -> None:
    upstream.replies.append(fake.output_blocked(finish_reason, with_thought=with_thought))
    with pytest.raises(ProviderBlocked) as caught:
        await provider.generate(make_request())
    assert finish_reason in caught.value.reason
    assert len(upstream.calls) == 1
    assert sleeps.calls == []


def test_every_documented_output_block_reason_is_known() -> None:
    assert {
        "SAFETY",
        "PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "RECITATION",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    } == BLOCK_FINISH_REASONS


NO_IMAGE_REPLIES: dict[str, Callable[[], httpx.Response]] = {
    "STOP with only text": fake.text_only,
    "NO_IMAGE": lambda: fake.no_image("NO_IMAGE"),
    "IMAGE_OTHER": lambda: fake.no_image("IMAGE_OTHER"),
    "OTHER": lambda: fake.no_image("OTHER"),
    "MAX_TOKENS": lambda: fake.no_image("MAX_TOKENS"),
    "no candidates": lambda: fake._json(200, {"usageMetadata": {}, "modelVersion": PRO}),
}


@pytest.mark.parametrize("case", list(NO_IMAGE_REPLIES))
async def test_an_answer_without_an_image_is_retried_once(
    provider: GeminiProvider, upstream: FakeGemini, sleeps: Sleeps, case: str
) -> None:
    upstream.replies.append(NO_IMAGE_REPLIES[case]())
    image = await provider.generate(make_request())
    assert image.size == fake.PRO_2K["16:9"]
    assert len(upstream.calls) == 2
    assert sleeps.calls == [0.5]


@pytest.mark.parametrize("case", list(NO_IMAGE_REPLIES))
async def test_a_second_answer_without_an_image_fails_although_retries_are_left(
    provider: GeminiProvider, upstream: FakeGemini, case: str
) -> None:
    assert provider.options.max_retries == 2
    upstream.replies += [NO_IMAGE_REPLIES[case](), NO_IMAGE_REPLIES[case]()]
    with pytest.raises(ProviderFailed) as caught:
        await provider.generate(make_request())
    assert "no image" in str(caught.value)
    assert len(upstream.calls) == 2


async def test_a_server_error_between_two_answers_without_an_image_does_not_buy_a_third(
    provider: GeminiProvider, upstream: FakeGemini
) -> None:
    upstream.replies += [fake.no_image("NO_IMAGE"), fake.server_error(500), fake.no_image("IMAGE_OTHER")]
    with pytest.raises(ProviderFailed):
        await provider.generate(make_request())
    assert len(upstream.calls) == 3


@pytest.mark.parametrize(
    "reply",
    [
        fake.not_json(),
        httpx.Response(200, content=b"[]"),
        fake.generated([{"inlineData": {"mimeType": "image/png", "data": "%%% not base64 %%%"}}]),
        fake.generated([{"inlineData": {"mimeType": "image/png", "data": "aGVsbG8gd29ybGQ="}}]),
        fake.generated([{"inlineData": {"mimeType": "image/gif", "data": "R0lGODlhAQABAAAAACw="}}]),
    ],
    ids=["truncated-json", "json-array", "bad-base64", "not-an-image", "gif"],
)
async def test_a_malformed_answer_fails_without_retrying(
    provider: GeminiProvider, upstream: FakeGemini, reply: httpx.Response
) -> None:
    upstream.replies.append(reply)
    with pytest.raises(ProviderFailed):
        await provider.generate(make_request())
    assert len(upstream.calls) == 1


# ------------------------------------------------------------------------------------------ retries


@pytest.mark.parametrize(
    ("delay", "seconds"),
    [("12s", 12.0), ("0.6s", 0.6), ("600ms", 0.6), ("12.718546209s", 12.718546209), ("3.000s", 3.0)],
)
async def test_rate_limits_honour_the_retry_info_then_give_up_overloaded(
    provider: GeminiProvider, upstream: FakeGemini, sleeps: Sleeps, delay: str, seconds: float
) -> None:
    upstream.replies += [fake.resource_exhausted(delay) for _ in range(3)]
    with pytest.raises(ProviderOverloaded) as caught:
        await provider.generate(make_request())
    assert len(upstream.calls) == 3
    # Backoff with no jitter is 0.5 s then 1 s; the provider's hint is a floor.
    assert sleeps.calls == pytest.approx([max(0.5, seconds), max(1.0, seconds)])
    assert caught.value.retry_after == max(1, math.ceil(seconds))
    assert_clean(caught.value)


async def test_a_retry_after_header_is_the_fallback_hint(
    provider: GeminiProvider, upstream: FakeGemini, sleeps: Sleeps
) -> None:
    upstream.replies += [fake.resource_exhausted(None, headers={"Retry-After": "7"}) for _ in range(3)]
    with pytest.raises(ProviderOverloaded) as caught:
        await provider.generate(make_request())
    assert sleeps.calls == [7.0, 7.0]
    assert caught.value.retry_after == 7


async def test_a_rate_limit_without_a_hint_backs_off_and_tells_the_default(
    provider: GeminiProvider, upstream: FakeGemini, sleeps: Sleeps
) -> None:
    upstream.replies += [fake.resource_exhausted(None) for _ in range(3)]
    with pytest.raises(ProviderOverloaded) as caught:
        await provider.generate(make_request())
    assert sleeps.calls == [0.5, 1.0]
    assert caught.value.retry_after == provider.options.default_retry_after


async def test_a_rate_limit_then_success(
    provider: GeminiProvider, upstream: FakeGemini, sleeps: Sleeps
) -> None:
    upstream.replies.append(fake.resource_exhausted("2s"))
    image = await provider.generate(make_request())
    assert image.size == fake.PRO_2K["16:9"]
    assert sleeps.calls == [2.0]
    assert len(upstream.calls) == 2


async def test_a_hint_past_the_deadline_is_not_waited_for(
    provider: GeminiProvider, upstream: FakeGemini, sleeps: Sleeps
) -> None:
    upstream.replies.append(fake.resource_exhausted("60s"))
    with pytest.raises(ProviderOverloaded) as caught:
        await provider.generate(make_request(deadline=30.0))
    assert len(upstream.calls) == 1
    assert sleeps.calls == []
    assert caught.value.retry_after == 60


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_a_server_error_then_success(
    provider: GeminiProvider, upstream: FakeGemini, sleeps: Sleeps, status: int
) -> None:
    upstream.replies.append(fake.server_error(status))
    image = await provider.generate(make_request())
    assert image.size == fake.PRO_2K["16:9"]
    assert len(upstream.calls) == 2
    assert sleeps.calls == [0.5]


@pytest.mark.parametrize(
    ("status", "error"),
    [(500, ProviderFailed), (502, ProviderFailed), (504, ProviderFailed), (503, ProviderOverloaded)],
)
async def test_a_server_error_every_time_gives_up_after_the_retries(
    provider: GeminiProvider, upstream: FakeGemini, sleeps: Sleeps, status: int, error: type[ProviderError]
) -> None:
    upstream.replies += [fake.server_error(status) for _ in range(5)]
    with pytest.raises(error) as caught:
        await provider.generate(make_request())
    assert type(caught.value) is error
    assert len(upstream.calls) == 1 + provider.options.max_retries
    assert sleeps.calls == [0.5, 1.0]
    assert f"HTTP {status}" in str(caught.value)


async def test_max_retries_is_the_options(
    http: httpx.AsyncClient, upstream: FakeGemini, sleeps: Sleeps
) -> None:
    options = UpstreamOptions(max_retries=1, sleep=sleeps, jitter=lambda: 0.0, now=lambda: 0.0)
    upstream.replies += [fake.server_error(500) for _ in range(5)]
    with pytest.raises(ProviderFailed):
        await GeminiProvider(GeminiConfig(api_key=KEY), http, options).generate(make_request())
    assert len(upstream.calls) == 2


@pytest.mark.parametrize(
    "exception",
    [httpx.ReadTimeout("read timed out"), httpx.ConnectTimeout("connect timed out")],
    ids=["read", "connect"],
)
async def test_timeouts_are_retried_then_fail(
    provider: GeminiProvider, upstream: FakeGemini, sleeps: Sleeps, exception: Exception
) -> None:
    upstream.replies += [exception] * 3
    with pytest.raises(ProviderFailed) as caught:
        await provider.generate(make_request())
    assert "timed out" in str(caught.value)
    assert len(upstream.calls) == 3
    assert sleeps.calls == [0.5, 1.0]


async def test_a_timeout_then_success(provider: GeminiProvider, upstream: FakeGemini) -> None:
    upstream.replies.append(httpx.ReadTimeout("read timed out"))
    image = await provider.generate(make_request())
    assert image.size == fake.PRO_2K["16:9"]
    assert len(upstream.calls) == 2


@pytest.mark.parametrize(
    "exception",
    [
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.RemoteProtocolError("peer closed connection"),
    ],
    ids=["refused", "dropped"],
)
async def test_connection_errors_are_retried_then_fail(
    provider: GeminiProvider, upstream: FakeGemini, exception: Exception
) -> None:
    upstream.replies += [exception] * 3
    with pytest.raises(ProviderFailed) as caught:
        await provider.generate(make_request())
    assert "connection failed" in str(caught.value)
    assert len(upstream.calls) == 3


# ---------------------------------------------------------------------------------- configuration


async def test_a_wrong_key_is_a_misconfiguration_that_names_the_setting_not_the_key(
    http: httpx.AsyncClient, options: UpstreamOptions, upstream: FakeGemini, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.key = "AIzaSyD-the-right-key-is-another-one-000"
    with pytest.raises(ProviderMisconfigured) as caught:
        await GeminiProvider(GeminiConfig(api_key=KEY), http, options).generate(make_request())
    assert SETTING in str(caught.value)
    assert "API_KEY_INVALID" in str(caught.value)
    assert_clean(caught.value)
    assert len(upstream.calls) == 1
    assert SETTING in caplog.text  # the operator's log line
    assert KEY not in caplog.text


@pytest.mark.parametrize("reply", [fake.permission_denied(), fake.unauthenticated()], ids=["403", "401"])
async def test_a_rejected_key_is_a_misconfiguration(
    provider: GeminiProvider, upstream: FakeGemini, caplog: pytest.LogCaptureFixture, reply: httpx.Response
) -> None:
    upstream.replies.append(reply)
    with pytest.raises(ProviderMisconfigured) as caught:
        await provider.generate(make_request())
    assert SETTING in str(caught.value)
    assert_clean(caught.value)
    assert len(upstream.calls) == 1
    assert SETTING in caplog.text


async def test_a_key_sent_in_the_wrong_header_is_refused_upstream(
    http: httpx.AsyncClient, options: UpstreamOptions, upstream: FakeGemini
) -> None:
    """The fake is strict enough to catch an adapter that authenticates the wrong way."""
    response = await http.get(
        f"{fake.BASE_URL}/v1beta/models/{PRO}", headers={"Authorization": f"Bearer {KEY}"}
    )
    assert response.status_code == 403
    assert response.json()["error"]["status"] == "PERMISSION_DENIED"


async def test_a_missing_key_fails_at_once(
    http: httpx.AsyncClient, options: UpstreamOptions, upstream: FakeGemini
) -> None:
    provider = GeminiProvider(GeminiConfig(api_key=None), http, options)
    with pytest.raises(ProviderMisconfigured, match=f"{SETTING} is not set"):
        await provider.generate(make_request())
    assert upstream.calls == []


async def test_an_unknown_model_id_is_a_misconfiguration_that_names_it(
    http: httpx.AsyncClient, options: UpstreamOptions, upstream: FakeGemini
) -> None:
    config = GeminiConfig(api_key=KEY, models={ImageModel.NANO_BANANA_PRO: "gemini-3-pro-image-retired"})
    with pytest.raises(ProviderMisconfigured) as caught:
        await GeminiProvider(config, http, options).generate(make_request())
    assert "gemini-3-pro-image-retired" in str(caught.value)
    assert "HTTP 404" in str(caught.value)
    assert len(upstream.calls) == 1


async def test_a_public_model_without_an_upstream_id_is_a_misconfiguration(
    provider: GeminiProvider, upstream: FakeGemini
) -> None:
    with pytest.raises(
        ProviderMisconfigured, match="gemini has no upstream model configured for ideogram-v2"
    ):
        await provider.generate(make_request(ImageModel.IDEOGRAM_V2))
    assert upstream.calls == []


async def test_failed_precondition_is_a_misconfiguration(
    provider: GeminiProvider, upstream: FakeGemini
) -> None:
    upstream.replies.append(fake.failed_precondition())
    with pytest.raises(ProviderMisconfigured, match="FAILED_PRECONDITION"):
        await provider.generate(make_request())
    assert len(upstream.calls) == 1


async def test_another_invalid_argument_is_a_failure_not_retried(
    provider: GeminiProvider, upstream: FakeGemini
) -> None:
    upstream.replies.append(fake.invalid_argument())
    with pytest.raises(ProviderFailed) as caught:
        await provider.generate(make_request())
    assert type(caught.value) is ProviderFailed
    assert "HTTP 400" in str(caught.value)
    assert len(upstream.calls) == 1


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        (GeminiConfig(api_key=None), f"{SETTING} is not set"),
        (GeminiConfig(api_key="  "), f"{SETTING} is not set"),
        (GeminiConfig(api_key="AIza\u00e9"), f"{SETTING} has characters"),
        (
            GeminiConfig(api_key=KEY, base_url="http://generativelanguage.googleapis.com"),
            "must be an https URL",
        ),
        (GeminiConfig(api_key=KEY, base_url="https://example.com/?key=1"), "query"),
        (GeminiConfig(api_key=KEY, models={}), "no upstream model configured"),
        (GeminiConfig(api_key=KEY, models={ImageModel.NANO_BANANA_PRO: "../admin"}), "not a valid model id"),
        (GeminiConfig(api_key=KEY, image_sizes={ImageModel.NANO_BANANA_PRO: "3K"}), "'3K'"),
        (GeminiConfig(api_key=KEY), None),
        (GeminiConfig(api_key=KEY, base_url="http://127.0.0.1:8080"), None),
        (GeminiConfig(api_key=KEY, image_sizes={}), None),
    ],
)
def test_problem(http: httpx.AsyncClient, config: GeminiConfig, problem: str | None) -> None:
    found = GeminiProvider(config, http).problem()
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found
        assert KEY not in found


def test_the_defaults_are_those_of_providers_md() -> None:
    config = GeminiConfig(api_key=None)
    assert config.base_url == "https://generativelanguage.googleapis.com"
    assert dict(config.models) == {ImageModel.NANO_BANANA_PRO: PRO, ImageModel.GEMINI_3_PRO: PRO}
    assert dict(config.image_sizes) == {ImageModel.NANO_BANANA_PRO: "2K", ImageModel.GEMINI_3_PRO: "2K"}


@pytest.mark.parametrize(
    ("details", "seconds"),
    [
        ([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}], 12.0),
        ([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "600ms"}], 0.6),
        (
            [
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": {"seconds": 3, "nanos": 5e8},
                }
            ],
            3.5,
        ),
        ([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "soon"}], None),
        ([{"@type": "type.googleapis.com/google.rpc.Help", "retryDelay": "12s"}], None),
        ("not a list", None),
    ],
)
def test_retry_delay(details: object, seconds: float | None) -> None:
    assert retry_delay({"error": {"code": 429, "details": details}}) == seconds


# -------------------------------------------------------------------------------------------- check


async def test_check_ok(provider: GeminiProvider, upstream: FakeGemini) -> None:
    result = await provider.check()
    assert result.ok
    assert result.detail == "gemini-3-pro-image-preview reachable"
    [call] = upstream.calls  # both public models share one upstream id: one call
    assert call.request.method == "GET"
    assert call.request.url == httpx.URL(f"{fake.BASE_URL}/v1beta/models/{PRO}")
    assert call.request.headers["x-goog-api-key"] == KEY


async def test_check_asks_about_every_configured_model(
    http: httpx.AsyncClient, options: UpstreamOptions, upstream: FakeGemini
) -> None:
    config = GeminiConfig(
        api_key=KEY, models={ImageModel.NANO_BANANA_PRO: PRO, ImageModel.GEMINI_3_PRO: FLASH}
    )
    result = await GeminiProvider(config, http, options).check()
    assert result.ok
    assert result.detail == f"{PRO} reachable; {FLASH} reachable"
    assert [call.model_id for call in upstream.calls] == [PRO, FLASH]


async def test_check_a_wrong_key(
    http: httpx.AsyncClient, options: UpstreamOptions, upstream: FakeGemini
) -> None:
    upstream.key = "AIzaSyD-the-right-key-is-another-one-000"
    result = await GeminiProvider(GeminiConfig(api_key=KEY), http, options).check()
    assert not result.ok
    assert SETTING in result.detail
    assert KEY not in result.detail


@pytest.mark.parametrize("reply", [fake.permission_denied(), fake.unauthenticated()], ids=["403", "401"])
async def test_check_a_rejected_key(
    provider: GeminiProvider, upstream: FakeGemini, reply: httpx.Response
) -> None:
    upstream.replies.append(reply)
    result = await provider.check()
    assert not result.ok
    assert SETTING in result.detail


async def test_check_an_unknown_model(
    http: httpx.AsyncClient, options: UpstreamOptions, upstream: FakeGemini
) -> None:
    config = GeminiConfig(api_key=KEY, models={ImageModel.NANO_BANANA_PRO: "gemini-9-image"})
    result = await GeminiProvider(config, http, options).check()
    assert not result.ok
    assert "gemini-9-image" in result.detail and "404" in result.detail


async def test_check_a_model_that_cannot_generate(provider: GeminiProvider, upstream: FakeGemini) -> None:
    upstream.replies.append(
        fake._json(200, {"name": f"models/{PRO}", "supportedGenerationMethods": ["embedContent"]})
    )
    result = await provider.check()
    assert not result.ok
    assert "generateContent" in result.detail


@pytest.mark.parametrize(
    "exception",
    [
        httpx.ConnectError("[Errno -3] Temporary failure in name resolution"),
        httpx.ConnectTimeout("timed out"),
    ],
    ids=["dns", "timeout"],
)
async def test_check_with_the_network_down(
    provider: GeminiProvider, upstream: FakeGemini, exception: Exception
) -> None:
    upstream.replies.append(exception)
    result = await provider.check()
    assert not result.ok
    assert "cannot reach generativelanguage.googleapis.com" in result.detail


async def test_check_without_a_key_calls_nothing(
    http: httpx.AsyncClient, options: UpstreamOptions, upstream: FakeGemini
) -> None:
    result = await GeminiProvider(GeminiConfig(api_key=None), http, options).check()
    assert not result.ok
    assert result.detail == f"{SETTING} is not set"
    assert upstream.calls == []
