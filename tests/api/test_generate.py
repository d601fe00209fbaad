"""API.md §4: POST /ai/generate-image, end to end through the real database and storage."""

import asyncio
import io

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, select

from postengine.credits import repository as credit_repo
from postengine.credits.plans import Plan
from postengine.generation.models import AspectRatio, ImageModel, output_size
from postengine.generation.providers import ProviderBlocked, ProviderFailed, ProviderOverloaded
from postengine.models import CreditAccount, Generation, Media
from tests.api.helpers import ScriptedProvider, client_with
from tests.api.test_conventions import assert_envelope

GEN = "/api/v1/ai/generate-image"
SEED_PROMPT = (
    "A flat-lay photo of a coffee cup, notebook, and succulent on a marble desk, warm morning light, minimal aesthetic"
)


async def balance(db, org_id: str) -> int:
    async with db.read() as session:
        account = await session.get(CreditAccount, org_id)
        assert account is not None
        return account.allowance - account.allowance_used + account.bonus


async def media_count(db, org_id: str) -> int:
    async with db.read() as session:
        return (await session.execute(select(func.count()).select_from(Media).where(Media.org_id == org_id))).scalar_one()


async def generation_count(db, org_id: str) -> int:
    async with db.read() as session:
        return (
            await session.execute(select(func.count()).select_from(Generation).where(Generation.org_id == org_id))
        ).scalar_one()


async def assert_ledger_consistent(db, org_id: str) -> None:
    total = await db.run_read(lambda conn: credit_repo.ledger_sum(conn, org_id))
    assert total == await balance(db, org_id)


async def test_seed_example(client: httpx.AsyncClient, make_tenant, db) -> None:
    tenant = await make_tenant()
    response = await client.post(
        GEN, headers=tenant.headers, json={"prompt": SEED_PROMPT, "model": "gemini-3-pro", "aspect_ratio": "1:1"}
    )
    body = assert_envelope(response, 200)
    data = body["data"]
    assert data["model"] == "gemini-3-pro"
    assert data["aspect_ratio"] == "1:1"
    assert (data["width"], data["height"]) == (1536, 1536)
    assert data["credits_used"] == 5
    assert data["credits_remaining"] == 495
    assert data["status"] == "completed"
    assert data["media_ids"] == [data["media_id"]]
    assert data["media_id"].startswith("med_") and len(data["media_id"]) == 28
    assert data["image_url"] == f"http://testserver/cdn/media/{data['media_id']}/original.webp"
    assert "media_ids" in data["message"]
    assert response.headers["x-ratelimit-limit"] == "50"  # the ai 5-minute window is the tightest
    timings = dict(part.strip().split(";dur=") for part in response.headers["server-timing"].split(","))
    assert {"db", "provider", "draw", "encode", "store"} <= set(timings)
    assert all(float(ms) > 0 for ms in timings.values())

    async with db.read() as session:
        media = await session.get(Media, data["media_id"])
    assert media is not None and media.org_id == tenant.org_id
    assert (media.source, media.type, media.status, media.content_type) == ("ai", "image", "ready", "image/webp")
    assert (media.ai_model, media.ai_prompt, media.ai_aspect_ratio) == ("gemini-3-pro", SEED_PROMPT, "1:1")
    assert await balance(db, tenant.org_id) == 495
    await assert_ledger_consistent(db, tenant.org_id)

    cdn = await client.get(data["image_url"].removeprefix("http://testserver"))  # no API key, like a CDN
    assert cdn.status_code == 200
    assert cdn.headers["content-type"] == "image/webp"
    assert cdn.headers["cache-control"] == "public, max-age=31536000, immutable"
    etag = cdn.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    image = Image.open(io.BytesIO(cdn.content))
    assert image.format == "WEBP" and image.size == (1536, 1536)
    assert media.size == len(cdn.content)
    again = await client.get(data["image_url"].removeprefix("http://testserver"), headers={"If-None-Match": etag})
    assert again.status_code == 304

    me = (await client.get("/api/v1/me", headers=tenant.headers)).json()["data"]
    assert me["quota"]["storage_bytes"]["used"] == media.size
    assert me["quota"]["ai_credits"]["used"] == 5


@pytest.mark.parametrize("model", list(ImageModel))
async def test_every_model_at_square(client: httpx.AsyncClient, make_tenant, model: ImageModel) -> None:
    tenant = await make_tenant()
    data = (await client.post(GEN, headers=tenant.headers, json={"prompt": "a red kite", "model": model})).json()["data"]
    assert data["aspect_ratio"] == "1:1"  # the default
    url = data["image_url"].removeprefix("http://testserver")
    image = Image.open(io.BytesIO((await client.get(url)).content))
    long_side = {"nano-banana-pro": 2048, "ideogram-v2": 1024, "gemini-3-pro": 1536, "flux-schnell": 1024}[model]
    assert image.size == (long_side, long_side)
    assert data["credits_used"] == {"nano-banana-pro": 15, "ideogram-v2": 8, "gemini-3-pro": 5, "flux-schnell": 1}[model]


@pytest.mark.parametrize("ratio", [r for r in AspectRatio if r is not AspectRatio.SQUARE])
async def test_every_ratio(client: httpx.AsyncClient, make_tenant, ratio: AspectRatio) -> None:
    tenant = await make_tenant()
    response = await client.post(
        GEN, headers=tenant.headers, json={"prompt": 'a poster that says "SALE"', "model": "flux-schnell", "aspect_ratio": ratio}
    )
    data = assert_envelope(response, 200)["data"]
    image = Image.open(io.BytesIO((await client.get(data["image_url"].removeprefix("http://testserver"))).content))
    assert image.size == (data["width"], data["height"]) == output_size(ImageModel.FLUX_SCHNELL, ratio)


def test_output_sizes_match_the_spec() -> None:
    assert output_size(ImageModel.NANO_BANANA_PRO, AspectRatio.WIDE) == (2048, 1152)
    assert output_size(ImageModel.FLUX_SCHNELL, AspectRatio.PORTRAIT_4_5) == (816, 1024)
    for model in ImageModel:
        for ratio in AspectRatio:
            w, h = output_size(model, ratio)
            assert w % 8 == 0 and h % 8 == 0 and max(w, h) in (2048, 1536, 1024)
            a, b = (int(x) for x in ratio.value.split(":"))
            assert abs(w / h - a / b) < 0.02


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"model": "flux-schnell"}, "prompt", "prompt is required"),
        ({"prompt": "", "model": "flux-schnell"}, "prompt", "prompt must not be empty"),
        ({"prompt": "   \n\t", "model": "flux-schnell"}, "prompt", "prompt must not be empty"),
        ({"prompt": "x" * 2001, "model": "flux-schnell"}, "prompt", "prompt must be at most 2,000 characters"),
        ({"prompt": 42, "model": "flux-schnell"}, "prompt", "prompt must be a string"),
        ({"prompt": "a cat\u0000", "model": "flux-schnell"}, "prompt", "prompt must not contain NUL characters"),
        ({"prompt": None, "model": "flux-schnell"}, "prompt", "prompt must be a string"),
        ({"prompt": ["a cat"], "model": "flux-schnell"}, "prompt", "prompt must be a string"),
        ({"prompt": "a cat"}, "model", "model is required"),
        ({"prompt": "a cat", "model": "dall-e-3"}, "model", "Invalid model. Must be one of: nano-banana-pro, ideogram-v2, gemini-3-pro, flux-schnell"),
        ({"prompt": "a cat", "model": "flux-schnell", "aspect_ratio": "2:1"}, "aspect_ratio", "Invalid aspect ratio. Must be one of: 1:1, 16:9, 9:16, 4:3, 3:4, 4:5, 5:4"),
        ({"prompt": "a cat", "model": "flux-schnell", "aspect_ratio": 1}, "aspect_ratio", "Invalid aspect ratio"),
    ],
)
async def test_bad_bodies_change_nothing(client: httpx.AsyncClient, make_tenant, db, payload, field, message) -> None:
    tenant = await make_tenant()
    response = await client.post(GEN, headers=tenant.headers, json=payload)
    body = assert_envelope(response, 400, "validation_error")
    errors = body["error"]["details"]["errors"]
    assert any(e["field"] == field and e["message"].startswith(message) for e in errors), errors
    assert await balance(db, tenant.org_id) == 500
    assert await media_count(db, tenant.org_id) == 0
    assert await generation_count(db, tenant.org_id) == 0


async def test_several_problems_are_reported_at_once(client: httpx.AsyncClient, make_tenant) -> None:
    tenant = await make_tenant()
    response = await client.post(GEN, headers=tenant.headers, json={"prompt": "", "model": "x", "aspect_ratio": "0:0"})
    fields = {e["field"] for e in assert_envelope(response, 400, "validation_error")["error"]["details"]["errors"]}
    assert fields == {"prompt", "model", "aspect_ratio"}


async def test_unknown_fields_are_ignored(client: httpx.AsyncClient, make_tenant) -> None:
    tenant = await make_tenant()
    response = await client.post(GEN, headers=tenant.headers, json={"prompt": "a cat", "model": "flux-schnell", "style": "x"})
    assert_envelope(response, 200)


async def test_blocked_prompt_costs_nothing(client: httpx.AsyncClient, make_tenant, db) -> None:
    tenant = await make_tenant()
    response = await client.post(
        GEN, headers=tenant.headers, json={"prompt": "step by step instructions to build a pipe bomb", "model": "flux-schnell"}
    )
    body = assert_envelope(response, 400, "prompt_blocked")
    assert body["error"]["details"]["category"] == "weapons_instructions"
    assert body["error"]["message"].startswith("This prompt was blocked by the safety filter:")
    assert await balance(db, tenant.org_id) == 500
    assert await media_count(db, tenant.org_id) == 0
    assert await generation_count(db, tenant.org_id) == 0


async def test_insufficient_credits_is_402_as_in_the_seed(client: httpx.AsyncClient, make_tenant, db) -> None:
    tenant = await make_tenant(plan=Plan.NONE, bonus=2)
    response = await client.post(GEN, headers=tenant.headers, json={"prompt": "a cat", "model": "gemini-3-pro"})
    error = assert_envelope(response, 402, "insufficient_credits")["error"]
    assert error["message"] == "You need 5 AI credits for this generation but only have 2 remaining."
    assert (error["credits_remaining"], error["credits_required"]) == (2, 5)
    assert error["details"] == {"credits_remaining": 2, "credits_required": 5}
    assert await balance(db, tenant.org_id) == 2
    assert await media_count(db, tenant.org_id) == 0
    assert await generation_count(db, tenant.org_id) == 0


async def test_allowance_is_spent_before_bonus(client: httpx.AsyncClient, make_tenant, db) -> None:
    tenant = await make_tenant(plan=Plan.STARTER, bonus=20)  # 50 monthly + 20 bonus
    for _ in range(3):  # 24 from the allowance
        assert (await client.post(GEN, headers=tenant.headers, json={"prompt": "a cat", "model": "ideogram-v2"})).status_code == 200
    data = (await client.post(GEN, headers=tenant.headers, json={"prompt": "a cat", "model": "gemini-3-pro"})).json()["data"]
    assert data["credits_remaining"] == 41  # 50 - 29 monthly + 20 bonus
    async with db.read() as session:
        account = await session.get(CreditAccount, tenant.org_id)
    assert account is not None
    assert (account.allowance_used, account.bonus) == (29, 20)
    big = (await client.post(GEN, headers=tenant.headers, json={"prompt": "a cat", "model": "nano-banana-pro"})).json()["data"]
    assert big["credits_remaining"] == 41 - 15
    async with db.read() as session:
        account = await session.get(CreditAccount, tenant.org_id, populate_existing=True)
    assert account is not None
    assert (account.allowance_used, account.bonus) == (44, 20)
    last = (await client.post(GEN, headers=tenant.headers, json={"prompt": "a cat", "model": "nano-banana-pro"})).json()["data"]
    assert last["credits_remaining"] == 11  # 6 from the allowance, 9 from the bonus
    async with db.read() as session:
        account = await session.get(CreditAccount, tenant.org_id, populate_existing=True)
    assert account is not None
    assert (account.allowance_used, account.bonus) == (50, 11)
    await assert_ledger_consistent(db, tenant.org_id)


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (ProviderFailed("upstream 502"), 500, "generation_failed"),
        (ProviderOverloaded("429 from upstream", retry_after=12), 503, "provider_unavailable"),
        (ProviderBlocked("the image was flagged"), 400, "prompt_blocked"),
    ],
)
async def test_provider_failures_refund_in_full(settings, clock, make_tenant, db, error, status, code) -> None:
    tenant = await make_tenant()
    async with client_with(settings, clock, ScriptedProvider(error)) as client:
        response = await client.post(GEN, headers=tenant.headers, json={"prompt": "a cat", "model": "nano-banana-pro"})
    body = assert_envelope(response, status, code)
    assert body["error"]["credits_refunded"] == 15
    assert body["error"]["credits_remaining"] == 500
    if status == 503:
        assert response.headers["retry-after"] == "12"
    assert await balance(db, tenant.org_id) == 500
    assert await media_count(db, tenant.org_id) == 0
    await assert_ledger_consistent(db, tenant.org_id)
    async with db.read() as session:
        gens = list((await session.execute(select(Generation).where(Generation.org_id == tenant.org_id))).scalars())
    assert [g.status for g in gens] == ["failed"]


async def test_provider_output_is_downscaled_to_the_model_size(settings, clock, make_tenant) -> None:
    tenant = await make_tenant()
    async with client_with(settings, clock, ScriptedProvider(oversize=2)) as client:
        data = (await client.post(GEN, headers=tenant.headers, json={"prompt": "a cat", "model": "flux-schnell", "aspect_ratio": "16:9"})).json()["data"]
        image = Image.open(io.BytesIO((await client.get(data["image_url"].removeprefix("http://testserver"))).content))
    assert image.size == (1024, 576)


async def test_concurrent_generations_never_overdraw(client: httpx.AsyncClient, make_tenant, db) -> None:
    """30 concurrent 1-credit generations against a balance of 7: exactly 7 succeed."""
    tenant = await make_tenant(plan=Plan.NONE, bonus=7)
    responses = await asyncio.gather(
        *(client.post(GEN, headers=tenant.headers, json={"prompt": f"a cat {i}", "model": "flux-schnell"}) for i in range(30))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 7
    assert statuses.count(402) == 23
    assert await balance(db, tenant.org_id) == 0
    assert await media_count(db, tenant.org_id) == 7
    await assert_ledger_consistent(db, tenant.org_id)


async def test_cdn_refuses_anything_but_our_own_keys(client: httpx.AsyncClient, make_tenant) -> None:
    tenant = await make_tenant()
    data = (await client.post(GEN, headers=tenant.headers, json={"prompt": "a cat", "model": "flux-schnell"})).json()["data"]
    url = data["image_url"].removeprefix("http://testserver")
    head = await client.head(url)
    assert head.status_code == 200 and head.headers["content-type"] == "image/webp"
    media_id = data["media_id"]
    for path in [
        f"/cdn/media/{media_id}/..%2F..%2Fsecret",
        f"/cdn/media/{media_id}/original.exe",
        "/cdn/media/med_000000000000000000000000/original.webp",
        "/cdn/media/..%2F..%2Fpostengine.db/original.webp",
        f"/cdn/media/{media_id.upper()}/original.webp",
    ]:
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"


async def test_cdn_does_not_follow_symlinks(client: httpx.AsyncClient, settings) -> None:
    planted = settings.media_root / "media" / "med_0123456789abcdef01234567"
    planted.mkdir(parents=True)
    (planted / "original.webp").symlink_to(settings.data_dir.parent / "outside.webp")
    (settings.data_dir.parent / "outside.webp").write_bytes(b"RIFF....WEBP not yours")
    response = await client.get("/cdn/media/med_0123456789abcdef01234567/original.webp")
    assert response.status_code == 404


@pytest.mark.parametrize("prompt", ['  Café ☕ 東京 — a sign that says “おはよう” 🌅  ', "x" * 1999 + "y"])
async def test_any_unicode_prompt_up_to_the_limit_is_stored_exactly(client: httpx.AsyncClient, make_tenant, db, prompt) -> None:
    tenant = await make_tenant()
    response = await client.post(GEN, headers=tenant.headers, json={"prompt": prompt, "model": "flux-schnell"})
    data = assert_envelope(response, 200)["data"]
    async with db.read() as session:
        media = await session.get(Media, data["media_id"])
    assert media is not None and media.ai_prompt == prompt.strip()
