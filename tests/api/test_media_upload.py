"""API.md §5: the upload flow (POST /media/upload → PUT upload_url → POST /media/{id}/complete)."""

import io
import os
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from PIL import Image
from sqlalchemy import update

from postengine.auth.scopes import Scope
from postengine.credits.plans import PLANS, Plan
from postengine.media import service
from postengine.models import Media, Organization
from tests.api.test_conventions import assert_envelope
from tests.media import files
from tests.media.flow import BASE, complete, put_bytes, start_upload, storage_used, upload

MIB = 1024 * 1024


async def test_upload_flow_end_to_end(client: httpx.AsyncClient, make_tenant) -> None:
    tenant = await make_tenant()
    data = files.jpeg(1080, 720)
    assert await storage_used(client, tenant.headers) == 0

    ticket = await start_upload(
        client, tenant.headers, data, filename="launch.jpg", content_type="image/jpeg"
    )
    media_id = ticket["media_id"]
    assert media_id.startswith("med_") and len(media_id) == 28
    assert ticket["upload_method"] == {"method": "PUT", "content_type": "image/jpeg", "field_name": None}
    assert (ticket["provider"], ticket["expires_in"], ticket["max_size"]) == ("local", 900, 20 * MIB)
    assert ticket["upload_url"].startswith(f"{BASE}/uploads/{media_id}?expires=")

    pending = assert_envelope(await client.get(f"/api/v1/media/{media_id}", headers=tenant.headers), 200)[
        "data"
    ]
    assert pending["status"] == "uploading" and pending["thumbnail_url"] is None

    put = await put_bytes(client, ticket["upload_url"], data)  # no API key
    assert assert_envelope(put, 200)["data"]["size"] == len(data)

    media = assert_envelope(await complete(client, tenant.headers, media_id), 200)["data"]
    assert media == {
        "id": media_id,
        "media_id": media_id,
        "type": "image",
        "status": "ready",
        "filename": "launch.jpg",
        "content_type": "image/jpeg",
        "mime_type": "image/jpeg",
        "size": len(data),
        "file_size": len(data),
        "width": 1080,
        "height": 720,
        "duration": None,
        "url": f"{BASE}/cdn/media/{media_id}/original.jpg",
        "thumbnail_url": f"{BASE}/cdn/media/{media_id}/thumb.webp",
        "source": "upload",
        "ai": None,
        "created_at": media["created_at"],
    }
    original = await client.get(media["url"].removeprefix(BASE))
    assert original.status_code == 200 and original.content == data
    assert original.headers["content-type"] == "image/jpeg"
    assert original.headers["x-content-type-options"] == "nosniff"
    thumb = await client.get(media["thumbnail_url"].removeprefix(BASE))
    assert thumb.headers["content-type"] == "image/webp"
    with Image.open(io.BytesIO(thumb.content)) as image:
        assert image.size == (320, 213)
    assert await storage_used(client, tenant.headers) == len(data)

    again = assert_envelope(await complete(client, tenant.headers, media_id), 200)["data"]
    assert again == media
    assert await storage_used(client, tenant.headers) == len(data)  # counted once

    late = await put_bytes(client, ticket["upload_url"], data)
    assert_envelope(late, 409, "upload_not_open")


async def test_file_size_alias_and_a_jpg_name_with_png_bytes(client: httpx.AsyncClient, make_tenant) -> None:
    tenant = await make_tenant()
    data = files.png(50, 40)
    ticket = await start_upload(
        client,
        tenant.headers,
        filename="C:\\photos\\launch.jpg",
        content_type="image/png",
        file_size=len(data),
    )
    assert_envelope(await put_bytes(client, ticket["upload_url"], data), 200)
    media = assert_envelope(await complete(client, tenant.headers, ticket["media_id"]), 200)["data"]
    assert (media["filename"], media["content_type"], media["size"]) == ("launch.jpg", "image/png", len(data))
    assert media["url"].endswith("/original.png")
    assert (media["width"], media["height"]) == (50, 40)


@pytest.mark.parametrize(
    ("data", "content_type", "facts"),
    [
        (files.mp4(1920, 1080, 12.5, moov_last=True), "video/mp4", ("video", 1920, 1080, 12.5, False)),
        (files.mp4(720, 1280, 3.0), "video/mp4", ("video", 720, 1280, 3.0, False)),
        (files.pdf(), "application/pdf", ("document", None, None, None, False)),
        (files.heic(4032, 3024), "image/heif", ("image", 4032, 3024, None, False)),
        (files.gif(), "image/gif", ("image", 30, 20, None, True)),
        (files.webp(), "image/webp", ("image", 100, 50, None, True)),
    ],
)
async def test_every_type(
    client: httpx.AsyncClient, make_tenant, data: bytes, content_type: str, facts
) -> None:
    tenant = await make_tenant()
    media = await upload(client, tenant.headers, data, content_type=content_type, filename="file")
    kind, width, height, duration, has_thumb = facts
    assert (media["type"], media["width"], media["height"], media["duration"]) == (
        kind,
        width,
        height,
        duration,
    )
    assert (media["thumbnail_url"] is not None) is has_thumb
    # HEIC and HEIF are the same container: the declared label is kept.
    assert media["content_type"] == content_type


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"filename": "a.png", "content_type": "image/bmp", "size": 10}, "content_type"),
        ({"filename": "a.png", "content_type": "image/png"}, "size"),
        ({"filename": "a.png", "content_type": "image/png", "size": 0}, "size"),
        ({"filename": "a.png", "content_type": "image/png", "size": "12"}, "size"),
        ({"filename": "a.png", "content_type": "image/png", "size": True}, "size"),
        ({"filename": "   ", "content_type": "image/png", "size": 10}, "filename"),
        ({"content_type": "image/png", "size": 10}, "filename"),
    ],
)
async def test_invalid_upload_requests(client: httpx.AsyncClient, make_tenant, body, field: str) -> None:
    tenant = await make_tenant()
    response = await client.post("/api/v1/media/upload", headers=tenant.headers, json=body)
    errors = assert_envelope(response, 400, "validation_error")["error"]["details"]["errors"]
    assert errors[0]["field"] == field


@pytest.mark.parametrize(
    ("content_type", "size", "status"),
    [
        ("image/jpeg", 20 * MIB + 1, 413),
        ("application/pdf", 21 * MIB, 413),
        ("video/mp4", 501 * MIB, 413),
        ("video/mp4", 100 * MIB, 201),
        ("image/jpg", 20 * MIB, 201),  # a common spelling of image/jpeg
    ],
)
async def test_size_limits_per_type(
    client: httpx.AsyncClient, make_tenant, content_type, size, status
) -> None:
    tenant = await make_tenant()
    response = await client.post(
        "/api/v1/media/upload",
        headers=tenant.headers,
        json={"filename": "f", "content_type": content_type, "size": size},
    )
    body = assert_envelope(response, status, "payload_too_large" if status == 413 else None)
    if status == 413:
        assert body["error"]["details"]["size"] == size


async def test_scopes(client: httpx.AsyncClient, make_tenant) -> None:
    reader = await make_tenant(scopes=frozenset({Scope.READ}))
    writer = await make_tenant(scopes=frozenset({Scope.WRITE}))
    body = {"filename": "a.png", "content_type": "image/png", "size": 10}
    assert_envelope(
        await client.post("/api/v1/media/upload", headers=reader.headers, json=body),
        403,
        "insufficient_scope",
    )
    assert_envelope(await client.get("/api/v1/media", headers=writer.headers), 403, "insufficient_scope")
    assert_envelope(await client.post("/api/v1/media/upload", json=body), 401, "unauthorized")


def _tamper(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return f"{BASE}{parts.path}?{urlencode(query)}"


async def test_forged_and_expired_signatures(client: httpx.AsyncClient, make_tenant, clock) -> None:
    tenant = await make_tenant()
    data = files.png()
    ticket = await start_upload(client, tenant.headers, data)
    url = ticket["upload_url"]
    query = parse_qs(urlsplit(url).query)
    forged = [
        _tamper(url, signature="0" * 64),
        _tamper(
            url, signature=query["signature"][0][:-1] + ("0" if query["signature"][0][-1] != "0" else "1")
        ),
        _tamper(url, expires=str(int(query["expires"][0]) + 3600)),  # extending the expiry breaks it
        _tamper(url, signature="not-hex"),
        f"{BASE}{urlsplit(url).path}",  # no query at all
        url.replace(ticket["media_id"], "med_" + "0" * 24),
        url.replace(ticket["media_id"], "../../etc"),
    ]
    for bad in forged:
        response = await put_bytes(client, bad, data)
        if response.status_code == 404:  # a path the router does not route at all
            continue
        assert_envelope(response, 403, "invalid_signature")
    assert_envelope(await complete(client, tenant.headers, ticket["media_id"]), 409, "upload_incomplete")

    clock.advance(901)
    assert_envelope(await put_bytes(client, url, data), 403, "upload_expired")
    assert_envelope(await complete(client, tenant.headers, ticket["media_id"]), 409, "upload_incomplete")


async def test_wrong_size_is_refused_and_nothing_is_stored(client: httpx.AsyncClient, make_tenant) -> None:
    tenant = await make_tenant()
    data = files.png()
    ticket = await start_upload(client, tenant.headers, data)
    for body in (data[:-1], data + b"\0"):
        response = await put_bytes(client, ticket["upload_url"], body)
        assert_envelope(response, 400, "upload_size_mismatch")

    async def chunked():  # no Content-Length: counted while streaming
        yield data
        yield b"extra bytes"

    response = await put_bytes(client, ticket["upload_url"], chunked())
    assert_envelope(response, 400, "upload_size_mismatch")
    assert_envelope(await complete(client, tenant.headers, ticket["media_id"]), 409, "upload_incomplete")
    assert_envelope(await put_bytes(client, ticket["upload_url"], data), 200)  # the URL still works


async def test_bytes_that_lie_about_their_type(client: httpx.AsyncClient, make_tenant) -> None:
    tenant = await make_tenant()
    data = files.png()
    ticket = await start_upload(client, tenant.headers, data, filename="photo.jpg", content_type="image/jpeg")
    error = assert_envelope(
        await put_bytes(client, ticket["upload_url"], data), 415, "unsupported_media_type"
    )
    assert error["error"]["details"]["detected_content_type"] == "image/png"
    assert "image/png" in error["error"]["message"]
    html = b"<html><script>alert(1)</script></html>".ljust(100, b" ")
    ticket = await start_upload(client, tenant.headers, html)
    assert_envelope(await put_bytes(client, ticket["upload_url"], html), 415, "unsupported_media_type")
    assert_envelope(await complete(client, tenant.headers, ticket["media_id"]), 409, "upload_incomplete")


async def test_corrupt_image_fails_at_complete(client: httpx.AsyncClient, make_tenant) -> None:
    tenant = await make_tenant()
    data = files.png(400, 400)[:200]  # the PNG signature, then nothing usable
    ticket = await start_upload(client, tenant.headers, data)
    assert_envelope(await put_bytes(client, ticket["upload_url"], data), 200)
    assert_envelope(await complete(client, tenant.headers, ticket["media_id"]), 400, "invalid_media")
    media = assert_envelope(
        await client.get(f"/api/v1/media/{ticket['media_id']}", headers=tenant.headers), 200
    )
    assert media["data"]["status"] == "failed"
    assert_envelope(await complete(client, tenant.headers, ticket["media_id"]), 409, "upload_failed")
    assert await storage_used(client, tenant.headers) == 0


async def test_an_image_pillow_chokes_on_fails_at_complete_not_with_500(
    client: httpx.AsyncClient, make_tenant
) -> None:
    tenant = await make_tenant()
    data = files.gif_with_empty_frame()  # right signature; Pillow raises ValueError decoding it
    ticket = await start_upload(client, tenant.headers, data, filename="a.gif", content_type="image/gif")
    assert_envelope(await put_bytes(client, ticket["upload_url"], data), 200)
    assert_envelope(await complete(client, tenant.headers, ticket["media_id"]), 400, "invalid_media")
    media = assert_envelope(
        await client.get(f"/api/v1/media/{ticket['media_id']}", headers=tenant.headers), 200
    )
    assert media["data"]["status"] == "failed"


async def test_other_organizations_media_is_not_found(client: httpx.AsyncClient, make_tenant) -> None:
    owner, other = await make_tenant(), await make_tenant(name="Other")
    data = files.png()
    ticket = await start_upload(client, owner.headers, data)
    media_id = ticket["media_id"]
    assert_envelope(await put_bytes(client, ticket["upload_url"], data), 200)
    assert_envelope(await complete(client, other.headers, media_id), 404, "not_found")
    assert_envelope(await client.get(f"/api/v1/media/{media_id}", headers=other.headers), 404, "not_found")
    assert_envelope(await client.delete(f"/api/v1/media/{media_id}", headers=other.headers), 404, "not_found")
    assert_envelope(await complete(client, owner.headers, media_id), 200)


async def test_storage_limit_of_the_plan(client: httpx.AsyncClient, make_tenant, db) -> None:
    tenant = await make_tenant(plan=Plan.STARTER)
    limit = PLANS[Plan.STARTER].storage_bytes
    data = files.png()
    ticket = await start_upload(client, tenant.headers, data)  # fits now
    assert_envelope(await put_bytes(client, ticket["upload_url"], data), 200)

    async with db.write() as session:
        await session.execute(
            update(Organization).where(Organization.id == tenant.org_id).values(storage_used_bytes=limit - 10)
        )
    response = await complete(client, tenant.headers, ticket["media_id"])
    error = assert_envelope(response, 413, "storage_limit_exceeded")["error"]
    assert error["details"]["storage_limit_bytes"] == limit
    response = await client.post(
        "/api/v1/media/upload",
        headers=tenant.headers,
        json={"filename": "b.png", "content_type": "image/png", "size": 11},
    )
    assert_envelope(response, 413, "storage_limit_exceeded")

    async with db.write() as session:  # space freed: the same upload completes
        await session.execute(
            update(Organization).where(Organization.id == tenant.org_id).values(storage_used_bytes=0)
        )
    assert_envelope(await complete(client, tenant.headers, ticket["media_id"]), 200)
    assert await storage_used(client, tenant.headers) == len(data)


async def test_sweeper_removes_abandoned_uploads(
    client: httpx.AsyncClient, make_tenant, app, clock, db, settings
) -> None:
    tenant = await make_tenant()
    data = files.png()
    abandoned = await start_upload(client, tenant.headers, data)
    assert_envelope(await put_bytes(client, abandoned["upload_url"], data), 200)
    finished = (await upload(client, tenant.headers, data))["media_id"]
    # The bytes of an upload wait under `uploads/` (staging) until `complete` promotes them.
    path = settings.media_root / "uploads" / abandoned["media_id"] / "original.png"
    assert path.is_file()
    assert not (settings.media_root / "uploads" / finished).exists() or not any(
        (settings.media_root / "uploads" / finished).iterdir()
    )

    ctx = app.state.ctx
    # The database is shared by the session's tests: look at this test's rows, not at counts.
    clock.advance(900 + service.ABANDONED_GRACE_SECONDS - 5)
    await service.sweep_abandoned_uploads(ctx)
    assert path.is_file()  # not yet
    assert_envelope(await client.get(f"/api/v1/media/{abandoned['media_id']}", headers=tenant.headers), 200)
    fresh = await start_upload(client, tenant.headers, data)
    clock.advance(10)
    assert await service.sweep_abandoned_uploads(ctx) >= 1
    assert not path.exists()
    assert_envelope(
        await client.get(f"/api/v1/media/{abandoned['media_id']}", headers=tenant.headers), 404, "not_found"
    )
    for kept in (finished, fresh["media_id"]):
        assert_envelope(await client.get(f"/api/v1/media/{kept}", headers=tenant.headers), 200)
    async with db.read() as session:
        assert await session.get(Media, abandoned["media_id"]) is None


async def test_upload_larger_than_the_json_body_limit(client: httpx.AsyncClient, make_tenant) -> None:
    tenant = await make_tenant()
    noise = Image.frombytes("RGB", (1000, 800), os.urandom(1000 * 800 * 3))
    buf = io.BytesIO()
    noise.save(buf, format="PNG")
    data = buf.getvalue()
    assert len(data) > 2 * MIB
    media = await upload(client, tenant.headers, data)
    assert (media["width"], media["height"], media["size"]) == (1000, 800, len(data))


async def test_a_put_that_ends_after_complete_never_changes_a_ready_item(
    client: httpx.AsyncClient, make_tenant, settings
) -> None:
    """A second PUT that starts before `complete` and ends after it used to replace the bytes of the
    ready item (its size, dimensions, sha256 and thumbnail then described other bytes). Uploads now
    go to a staging key that `complete` promotes; the late PUT finds the upload closed."""
    import asyncio

    tenant = await make_tenant()
    first = files.png(64, 48)
    other = first[:60] + bytes(b ^ 0xFF for b in first[60:100]) + first[100:]  # same size, other bytes
    ticket = await start_upload(client, tenant.headers, first)
    assert_envelope(await put_bytes(client, ticket["upload_url"], first), 200)

    halfway, release = asyncio.Event(), asyncio.Event()

    async def slow_body():
        yield other[:40]
        halfway.set()
        await release.wait()
        yield other[40:]

    late = asyncio.create_task(
        put_bytes(client, ticket["upload_url"], slow_body(), headers={"content-length": str(len(other))})
    )
    await asyncio.wait_for(halfway.wait(), timeout=10)
    media = assert_envelope(await complete(client, tenant.headers, ticket["media_id"]), 200)["data"]
    release.set()
    assert_envelope(await late, 409, "upload_not_open")

    original = settings.media_root / "media" / ticket["media_id"] / "original.png"
    assert original.read_bytes() == first
    assert not (settings.media_root / "uploads" / ticket["media_id"] / "original.png").exists()
    again = assert_envelope(await complete(client, tenant.headers, ticket["media_id"]), 200)["data"]
    assert again == media
