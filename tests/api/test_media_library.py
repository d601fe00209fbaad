"""API.md §5: GET /media (filters, pagination), GET /media/{id}, DELETE /media/{id} (media_in_use),
generated images in the library, and storage use in GET /me."""

import uuid

import httpx
import pytest

from postengine.kit.clock import to_datetime
from postengine.models import Post, PostMedia
from tests.api.test_conventions import assert_envelope
from tests.media import files
from tests.media.flow import BASE, start_upload, storage_used, upload

PROMPT = "A flat-lay photo of a coffee cup on a marble desk"


async def generate(client: httpx.AsyncClient, headers: dict[str, str]) -> dict:
    response = await client.post(
        "/api/v1/ai/generate-image",
        headers=headers,
        json={"prompt": PROMPT, "model": "flux-schnell", "aspect_ratio": "16:9"},
    )
    return assert_envelope(response, 200)["data"]


async def list_media(client: httpx.AsyncClient, headers: dict[str, str], **params) -> dict:
    return assert_envelope(await client.get("/api/v1/media", headers=headers, params=params), 200)["data"]


async def test_list_filters_and_pagination(client: httpx.AsyncClient, make_tenant, clock) -> None:
    tenant = await make_tenant()
    other = await make_tenant(name="Other")
    await upload(client, other.headers, files.png())  # never visible to `tenant`
    uploaded = []
    for data, content_type in [
        (files.png(), "image/png"),
        (files.pdf(), "application/pdf"),
        (files.mp4(), "video/mp4"),
    ]:
        uploaded.append(await upload(client, tenant.headers, data, content_type=content_type, filename="f"))
        clock.advance(1)
    generated = await generate(client, tenant.headers)
    clock.advance(1)
    pending = await start_upload(client, tenant.headers, files.png())

    everything = await list_media(client, tenant.headers)
    ids = [item["id"] for item in everything["media"]]
    assert ids == [pending["media_id"], generated["media_id"], *[m["id"] for m in reversed(uploaded)]]
    assert everything["pagination"] == {"limit": 20, "offset": 0, "total": 5, "has_more": False}

    ai = await list_media(client, tenant.headers, source="ai")
    assert [item["id"] for item in ai["media"]] == [generated["media_id"]]
    item = ai["media"][0]
    assert item["ai"] == {"model": "flux-schnell", "prompt": PROMPT, "aspect_ratio": "16:9"}
    assert (item["source"], item["type"], item["status"], item["content_type"]) == (
        "ai",
        "image",
        "ready",
        "image/webp",
    )
    assert (item["width"], item["height"]) == (generated["width"], generated["height"])
    assert item["url"] == generated["image_url"]
    assert item["thumbnail_url"] == f"{BASE}/cdn/media/{generated['media_id']}/thumb.webp"
    thumb = await client.get(item["thumbnail_url"].removeprefix(BASE))
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"

    assert [i["type"] for i in (await list_media(client, tenant.headers, type="video"))["media"]] == ["video"]
    assert len((await list_media(client, tenant.headers, type="image", source="upload"))["media"]) == 2
    assert [i["id"] for i in (await list_media(client, tenant.headers, status="uploading"))["media"]] == [
        pending["media_id"]
    ]

    page = await list_media(client, tenant.headers, limit=2, offset=2)
    assert [item["id"] for item in page["media"]] == ids[2:4]
    assert page["pagination"] == {"limit": 2, "offset": 2, "total": 5, "has_more": True}
    last = await list_media(client, tenant.headers, limit=2, offset=4)
    assert last["pagination"]["has_more"] is False and len(last["media"]) == 1
    beyond = await list_media(client, tenant.headers, offset=50)
    assert beyond["media"] == [] and beyond["pagination"]["total"] == 5


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "ten"},
        {"offset": -1},
        {"offset": 10**20},  # past every database's integers: was a 500
        {"limit": ""},
        {"type": "audio"},
        {"source": "camera"},
        {"status": "done"},
    ],
)
async def test_invalid_list_parameters(client: httpx.AsyncClient, make_tenant, params) -> None:
    tenant = await make_tenant()
    response = await client.get("/api/v1/media", headers=tenant.headers, params=params)
    errors = assert_envelope(response, 400, "validation_error")["error"]["details"]["errors"]
    assert errors[0]["field"] == next(iter(params))


async def test_get_unknown_media(client: httpx.AsyncClient, make_tenant) -> None:
    tenant = await make_tenant()
    for media_id in ("med_" + "0" * 24, "nonsense", "x" * 300):
        assert_envelope(
            await client.get(f"/api/v1/media/{media_id}", headers=tenant.headers), 404, "not_found"
        )


async def test_delete_releases_storage_and_bytes(client: httpx.AsyncClient, make_tenant) -> None:
    tenant = await make_tenant()
    kept = await upload(client, tenant.headers, files.png(20, 20))
    media = await upload(client, tenant.headers, files.jpeg(300, 200), content_type="image/jpeg")
    generated = await generate(client, tenant.headers)
    used = await storage_used(client, tenant.headers)
    assert used > kept["size"] + media["size"]  # the generated image counts too

    response = await client.delete(f"/api/v1/media/{media['id']}", headers=tenant.headers)
    assert assert_envelope(response, 200)["data"] == {
        "id": media["id"],
        "media_id": media["id"],
        "deleted": True,
    }
    assert await storage_used(client, tenant.headers) == used - media["size"]
    for url in (media["url"], media["thumbnail_url"]):
        assert (await client.get(url.removeprefix(BASE))).status_code == 404
    assert_envelope(
        await client.get(f"/api/v1/media/{media['id']}", headers=tenant.headers), 404, "not_found"
    )
    assert_envelope(
        await client.delete(f"/api/v1/media/{media['id']}", headers=tenant.headers), 404, "not_found"
    )

    ai = assert_envelope(
        await client.get(f"/api/v1/media/{generated['media_id']}", headers=tenant.headers), 200
    )["data"]
    assert_envelope(await client.delete(f"/api/v1/media/{ai['id']}", headers=tenant.headers), 200)
    assert await storage_used(client, tenant.headers) == kept["size"]

    pending = await start_upload(client, tenant.headers, files.png())  # never counted, so nothing to release
    assert_envelope(await client.delete(f"/api/v1/media/{pending['media_id']}", headers=tenant.headers), 200)
    assert await storage_used(client, tenant.headers) == kept["size"]


async def _post_using(db, org_id: str, media_id: str, status: str, clock) -> str:
    post_id = str(uuid.uuid4())
    now = to_datetime(clock.time())
    async with db.write() as session:
        session.add(
            Post(
                id=post_id,
                org_id=org_id,
                status=status,
                content="hi",
                created_at=now,
                updated_at=now,
                platform_content={},
            )
        )
        await session.flush()
        session.add(PostMedia(post_id=post_id, position=0, media_id=media_id))
    return post_id


@pytest.mark.parametrize("status", ["scheduled", "publishing"])
async def test_media_in_use(client: httpx.AsyncClient, make_tenant, db, clock, status: str) -> None:
    tenant = await make_tenant()
    media = await upload(client, tenant.headers, files.png())
    post_id = await _post_using(db, tenant.org_id, media["id"], status, clock)

    response = await client.delete(f"/api/v1/media/{media['id']}", headers=tenant.headers)
    error = assert_envelope(response, 409, "media_in_use")["error"]
    assert error["details"]["post_ids"] == [post_id]
    assert_envelope(await client.get(f"/api/v1/media/{media['id']}", headers=tenant.headers), 200)
    bad = await client.delete(
        f"/api/v1/media/{media['id']}", headers=tenant.headers, params={"force": "maybe"}
    )
    assert_envelope(bad, 400, "validation_error")

    forced = await client.delete(
        f"/api/v1/media/{media['id']}", headers=tenant.headers, params={"force": "true"}
    )
    assert assert_envelope(forced, 200)["data"]["deleted"] is True
    assert await storage_used(client, tenant.headers) == 0


@pytest.mark.parametrize("status", ["draft", "published", "failed"])
async def test_posts_that_are_done_or_drafts_do_not_block_deletion(
    client, make_tenant, db, clock, status
) -> None:
    tenant = await make_tenant()
    media = await upload(client, tenant.headers, files.png())
    await _post_using(db, tenant.org_id, media["id"], status, clock)
    assert_envelope(await client.delete(f"/api/v1/media/{media['id']}", headers=tenant.headers), 200)


async def test_deleting_media_shows_at_once_in_the_posts_that_had_it(
    client: httpx.AsyncClient, make_tenant, db, clock
) -> None:
    tenant = await make_tenant()
    media = await upload(client, tenant.headers, files.png())
    post_id = await _post_using(db, tenant.org_id, media["id"], "draft", clock)

    async def listed_media_ids() -> list[str]:
        page = assert_envelope(await client.get("/api/v1/posts", headers=tenant.headers), 200)["data"]
        (post,) = [p for p in page["posts"] if p["id"] == post_id]
        return list(post["media_ids"])

    assert await listed_media_ids() == [media["id"]]
    assert_envelope(await client.delete(f"/api/v1/media/{media['id']}", headers=tenant.headers), 200)
    # The post lost the media with its row: the list says so, as GET /posts/{id} does.
    one = assert_envelope(await client.get(f"/api/v1/posts/{post_id}", headers=tenant.headers), 200)["data"]
    assert one["media_ids"] == []
    assert await listed_media_ids() == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/media/%00"),
        ("DELETE", "/api/v1/media/med_%00abc"),
        ("POST", "/api/v1/media/%01/complete"),
        ("GET", "/api/v1/media/" + "m" * 65),
    ],
)
async def test_ids_no_media_item_can_have_are_404(client: httpx.AsyncClient, make_tenant, method: str, path: str) -> None:
    """Control characters (PostgreSQL refuses a NUL outright: this was a 500 there, found by the
    schemathesis run) and overlong ids are not found, on both databases."""
    tenant = await make_tenant()
    assert_envelope(await client.request(method, path, headers=tenant.headers), 404, "not_found")
