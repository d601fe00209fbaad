"""Provider chains seen from the API: fallback, no fallback around a safety block, the error the client
gets when everything fails, misconfiguration → 503, circuit breaking, and never upscaling."""

import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from PIL import Image
from sqlalchemy import select

from postengine.app import create_app
from postengine.config import Settings
from postengine.generation.models import ImageModel
from postengine.generation.providers import (
    ImageProvider,
    ProviderBlocked,
    ProviderFailed,
    ProviderMisconfigured,
    ProviderOverloaded,
)
from postengine.generation.providers.circuit import CircuitBreaker, GuardedProvider
from postengine.kit.clock import Clock
from postengine.models import Generation
from tests.api.helpers import ScriptedProvider
from tests.api.test_conventions import assert_envelope
from tests.api.test_generate import assert_ledger_consistent, balance, media_count

GEN = "/api/v1/ai/generate-image"
BODY = {"prompt": "a lighthouse at dusk", "model": "flux-schnell", "aspect_ratio": "16:9"}


@asynccontextmanager
async def client_with_chain(
    settings: Settings, clock: Clock, chain: list[ImageProvider]
) -> AsyncIterator[httpx.AsyncClient]:
    providers: dict[ImageModel, list[ImageProvider]] = {model: list(chain) for model in ImageModel}
    app = create_app(settings, clock=clock, providers=providers, background=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


class Named(ScriptedProvider):
    def __init__(self, name: str, error: Exception | None = None, *, size: tuple[int, int] | None = None) -> None:
        super().__init__(error)  # type: ignore[arg-type]
        self.name = name
        self.size = size

    async def generate(self, request):  # type: ignore[no-untyped-def]
        if self.size is None:
            return await super().generate(request)
        self.calls.append(request)
        return Image.new("RGB", self.size, (10, 120, 200))


async def generation_rows(db, org_id: str) -> list[Generation]:  # type: ignore[no-untyped-def]
    async with db.read() as session:
        return list((await session.execute(select(Generation).where(Generation.org_id == org_id))).scalars())


async def test_a_failing_provider_falls_through_to_the_next(settings, clock, make_tenant, db) -> None:
    tenant = await make_tenant()
    first, second = Named("fal", ProviderFailed("HTTP 500")), Named("replicate")
    async with client_with_chain(settings, clock, [first, second]) as client:
        response = await client.post(GEN, headers=tenant.headers, json=BODY)
    assert response.status_code == 200, response.text
    assert len(first.calls) == len(second.calls) == 1
    assert first.calls[0].deadline is not None  # every provider gets the generation's deadline
    [row] = await generation_rows(db, tenant.org_id)
    assert (row.status, row.provider) == ("completed", "replicate")
    assert await balance(db, tenant.org_id) == 499


async def test_a_safety_block_is_never_routed_around(settings, clock, make_tenant, db) -> None:
    tenant = await make_tenant()
    first, second = Named("fal", ProviderBlocked("has_nsfw_concepts")), Named("offline")
    async with client_with_chain(settings, clock, [first, second]) as client:
        response = await client.post(GEN, headers=tenant.headers, json=BODY)
    body = assert_envelope(response, 400, "prompt_blocked")
    assert "has_nsfw_concepts" in body["error"]["message"]
    assert second.calls == []
    assert await balance(db, tenant.org_id) == 500
    await assert_ledger_consistent(db, tenant.org_id)


async def test_misconfigured_model_is_503_with_a_clear_message_and_a_refund(settings, clock, make_tenant, db) -> None:
    tenant = await make_tenant()
    only = Named("gemini", ProviderMisconfigured("PE_GEMINI_API_KEY is not set"))
    async with client_with_chain(settings, clock, [only]) as client:
        response = await client.post(GEN, headers=tenant.headers, json={**BODY, "model": "gemini-3-pro"})
    body = assert_envelope(response, 503, "provider_unavailable")
    assert "not configured correctly" in body["error"]["message"]
    assert "PE_GEMINI_API_KEY" not in body["error"]["message"]  # operator detail stays in the logs
    assert response.headers["retry-after"] == "60"
    assert body["error"]["credits_refunded"] == 5
    assert await balance(db, tenant.org_id) == 500
    assert await media_count(db, tenant.org_id) == 0


@pytest.mark.parametrize(
    ("chain_errors", "status", "code"),
    [
        # A misconfigured provider is skipped; the client hears about the real failure.
        ([ProviderMisconfigured("no key"), ProviderFailed("HTTP 502")], 500, "generation_failed"),
        ([ProviderFailed("HTTP 502"), ProviderMisconfigured("no key")], 500, "generation_failed"),
        ([ProviderFailed("HTTP 502"), ProviderOverloaded("429", retry_after=7)], 503, "provider_unavailable"),
        ([ProviderMisconfigured("no key"), ProviderMisconfigured("no token")], 503, "provider_unavailable"),
    ],
)
async def test_when_every_provider_fails_the_client_gets_the_last_real_failure(
    settings, clock, make_tenant, db, chain_errors, status, code
) -> None:
    tenant = await make_tenant()
    chain: list[ImageProvider] = [Named(f"p{i}", error) for i, error in enumerate(chain_errors)]
    async with client_with_chain(settings, clock, chain) as client:
        response = await client.post(GEN, headers=tenant.headers, json=BODY)
    body = assert_envelope(response, status, code)
    assert body["error"]["credits_refunded"] == 1
    assert await balance(db, tenant.org_id) == 500
    await assert_ledger_consistent(db, tenant.org_id)
    [row] = await generation_rows(db, tenant.org_id)
    assert row.status == "failed"


async def test_open_circuit_skips_the_dead_upstream_without_calling_it(settings, clock, make_tenant) -> None:
    tenant = await make_tenant(bonus=10)
    dead = Named("fal", ProviderFailed("HTTP 503"))
    backup = Named("replicate")
    guarded = GuardedProvider(dead, CircuitBreaker("fal", threshold=2, reset_after=300))
    async with client_with_chain(settings, clock, [guarded, backup]) as client:
        for _ in range(5):
            response = await client.post(GEN, headers=tenant.headers, json=BODY)
            assert response.status_code == 200
    assert len(dead.calls) == 2
    assert len(backup.calls) == 5


async def test_open_circuit_on_the_only_provider_is_503_with_retry_after(settings, clock, make_tenant) -> None:
    tenant = await make_tenant()
    dead = GuardedProvider(Named("fal", ProviderFailed("HTTP 500")), CircuitBreaker("fal", threshold=1, reset_after=45))
    async with client_with_chain(settings, clock, [dead]) as client:
        first = await client.post(GEN, headers=tenant.headers, json=BODY)
        second = await client.post(GEN, headers=tenant.headers, json=BODY)
    assert_envelope(first, 500, "generation_failed")
    assert_envelope(second, 503, "provider_unavailable")
    assert 1 <= int(second.headers["retry-after"]) <= 45


async def test_a_smaller_upstream_image_is_never_upscaled(settings, clock, make_tenant, db) -> None:
    """An operator who picks Gemini's 1K tier for nano-banana-pro gets 1K images, reported honestly."""
    tenant = await make_tenant()
    small = Named("gemini", size=(1376, 768))  # Gemini 16:9 at 1K
    async with client_with_chain(settings, clock, [small]) as client:
        response = await client.post(GEN, headers=tenant.headers, json={**BODY, "model": "nano-banana-pro"})
        data = response.json()["data"]
        served = Image.open(io.BytesIO((await client.get(data["image_url"].removeprefix("http://testserver"))).content))
    assert response.status_code == 200
    assert served.size == (data["width"], data["height"])
    assert data["width"] <= 1376 and data["height"] <= 768
    assert data["width"] % 8 == 0 and data["height"] % 8 == 0
    assert abs(data["width"] / data["height"] - 16 / 9) < 0.02


async def test_a_larger_upstream_image_is_downscaled_to_the_model_size(settings, clock, make_tenant) -> None:
    tenant = await make_tenant()
    big = Named("gemini", size=(2752, 1536))  # Gemini 16:9 at 2K
    async with client_with_chain(settings, clock, [big]) as client:
        data = (await client.post(GEN, headers=tenant.headers, json={**BODY, "model": "nano-banana-pro"})).json()["data"]
    assert (data["width"], data["height"]) == (2048, 1152)
