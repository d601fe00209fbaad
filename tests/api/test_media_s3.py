"""The media API (§5) with S3-compatible storage: a real S3-protocol server (moto, `tests/media/s3server`),
presigned PUT URLs used with plain httpx, public URLs on PE_PUBLIC_MEDIA_URL, objects per organisation."""

import secrets
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from postengine.app import create_app
from postengine.config import Settings
from postengine.kit.clock import FakeClock
from postengine.media import fetch, service
from tests.api.test_conventions import assert_envelope
from tests.media import files, s3server
from tests.media.flow import complete, start_upload, storage_used
from tests.media.s3server import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    S3Server,
    get_object,
    head_object,
    list_keys,
)

# The session's moto server and this run's bucket (fixtures of tests/media, used here too).
s3_endpoint = s3server.s3_endpoint
s3_server = s3server.s3_server

CDN = "https://cdn.example.test/pe"


@pytest.fixture
def s3_prefix() -> str:
    return f"api-{secrets.token_hex(4)}"


@pytest.fixture
async def s3_app(
    settings: Settings, clock: FakeClock, db, s3_server: S3Server, s3_prefix: str
) -> AsyncIterator[FastAPI]:
    s3_settings = settings.model_copy(
        update={
            "storage_url": f"s3://{s3_server.bucket}/{s3_prefix}",
            "s3_endpoint_url": s3_server.endpoint,
            "s3_region": REGION,
            "s3_access_key_id": ACCESS_KEY_ID,
            "s3_secret_access_key": SecretStr(SECRET_ACCESS_KEY),
            "s3_path_style": True,
            "public_media_url": CDN,
        }
    )
    application = create_app(s3_settings, clock=clock, background=False)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def s3_client(s3_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=s3_app), base_url="http://testserver"
    ) as http:
        yield http


async def _put(url: str, data: bytes, content_type: str) -> httpx.Response:
    """The client's PUT straight to the bucket: plain HTTP, no API key, no SDK."""
    async with httpx.AsyncClient() as plain:
        return await plain.put(url, content=data, headers={"content-type": content_type})


async def test_upload_through_a_presigned_url(
    s3_client: httpx.AsyncClient, make_tenant, s3_server: S3Server, s3_prefix: str
) -> None:
    tenant = await make_tenant()
    data = files.jpeg(1080, 720)
    ticket = await start_upload(
        s3_client, tenant.headers, data, filename="launch.jpg", content_type="image/jpeg"
    )
    media_id = ticket["media_id"]
    assert (ticket["provider"], ticket["expires_in"]) == ("s3", 900)
    assert ticket["upload_method"] == {"method": "PUT", "content_type": "image/jpeg", "field_name": None}
    staged = f"uploads/{tenant.org_id}/{media_id}/original.jpg"
    assert ticket["upload_url"].startswith(f"{s3_server.object_url(s3_prefix)}/{staged}?X-Amz-")
    assert "X-Amz-Signature=" in ticket["upload_url"] and SECRET_ACCESS_KEY not in ticket["upload_url"]

    response = await complete(s3_client, tenant.headers, media_id)
    assert_envelope(response, 409, "upload_incomplete")

    assert (await _put(ticket["upload_url"], data, "image/jpeg")).status_code == 200
    assert list_keys(s3_server, s3_prefix) == [f"{s3_prefix}/{staged}"]

    media = assert_envelope(await complete(s3_client, tenant.headers, media_id), 200)["data"]
    key = f"media/{tenant.org_id}/{media_id}/original.jpg"
    thumb = f"media/{tenant.org_id}/{media_id}/thumb.webp"
    assert media["status"] == "ready" and (media["width"], media["height"], media["size"]) == (
        1080,
        720,
        len(data),
    )
    assert media["url"] == f"{CDN}/{key}"
    assert media["thumbnail_url"] == f"{CDN}/{thumb}"
    # Promoted out of staging: per organisation, with the checked type, and nothing left in uploads/.
    assert sorted(list_keys(s3_server, s3_prefix)) == [f"{s3_prefix}/{key}", f"{s3_prefix}/{thumb}"]
    assert get_object(s3_server, f"{s3_prefix}/{key}") == data
    assert head_object(s3_server, f"{s3_prefix}/{key}")["ContentType"] == "image/jpeg"
    assert head_object(s3_server, f"{s3_prefix}/{thumb}")["ContentType"] == "image/webp"
    assert await storage_used(s3_client, tenant.headers) == len(data)

    got = assert_envelope(await s3_client.get(f"/api/v1/media/{media_id}", headers=tenant.headers), 200)[
        "data"
    ]
    assert got == media
    listed = assert_envelope(await s3_client.get("/api/v1/media", headers=tenant.headers), 200)["data"]
    assert [m["url"] for m in listed["media"]] == [f"{CDN}/{key}"]
    # /cdn is the local storage's: with a bucket it serves nothing.
    assert_envelope(await s3_client.get(f"/cdn/media/{media_id}/original.jpg"), 404, "not_found")

    deleted = await s3_client.delete(f"/api/v1/media/{media_id}", headers=tenant.headers)
    assert assert_envelope(deleted, 200)["data"]["deleted"] is True
    assert list_keys(s3_server, s3_prefix) == []
    assert await storage_used(s3_client, tenant.headers) == 0


async def test_a_put_after_complete_never_changes_a_ready_item(
    s3_client: httpx.AsyncClient,
    s3_app: FastAPI,
    make_tenant,
    clock: FakeClock,
    s3_server: S3Server,
    s3_prefix: str,
) -> None:
    """The presigned URL is still valid after `complete`: it can only write the staging key, which
    is never promoted again and is swept once the URL has expired."""
    tenant = await make_tenant()
    first, other = files.png(64, 48), files.png(300, 200, color=(200, 10, 10))
    ticket = await start_upload(s3_client, tenant.headers, first)
    assert (await _put(ticket["upload_url"], first, "image/png")).status_code == 200
    media = assert_envelope(await complete(s3_client, tenant.headers, ticket["media_id"]), 200)["data"]
    key = f"{s3_prefix}/media/{tenant.org_id}/{ticket['media_id']}/original.png"
    staged = f"{s3_prefix}/uploads/{tenant.org_id}/{ticket['media_id']}/original.png"

    assert (await _put(ticket["upload_url"], other, "image/png")).status_code == 200  # the bucket takes it
    again = assert_envelope(await complete(s3_client, tenant.headers, ticket["media_id"]), 200)["data"]
    assert again == media and (again["width"], again["height"]) == (64, 48)
    assert get_object(s3_server, key) == first  # the ready item's bytes are the ones it describes
    assert staged in list_keys(s3_server, s3_prefix)

    clock.advance(900 + service.ABANDONED_GRACE_SECONDS + 1)
    await service.sweep_abandoned_uploads(s3_app.state.ctx)
    assert staged not in list_keys(s3_server, s3_prefix)
    assert get_object(s3_server, key) == first


async def test_bytes_that_are_not_what_was_declared_are_discarded(
    s3_client: httpx.AsyncClient, make_tenant, s3_server: S3Server, s3_prefix: str
) -> None:
    """A presigned URL binds neither size nor type: `complete` checks both from the stored bytes."""
    tenant = await make_tenant()
    data = files.png()
    wrong_size = await start_upload(s3_client, tenant.headers, data)
    assert (await _put(wrong_size["upload_url"], data + b"extra", "image/png")).status_code == 200
    assert_envelope(
        await complete(s3_client, tenant.headers, wrong_size["media_id"]), 400, "upload_size_mismatch"
    )

    wrong_type = await start_upload(
        s3_client, tenant.headers, data, content_type="image/jpeg", filename="x.jpg"
    )
    assert (await _put(wrong_type["upload_url"], data, "image/jpeg")).status_code == 200
    assert_envelope(
        await complete(s3_client, tenant.headers, wrong_type["media_id"]), 415, "unsupported_media_type"
    )

    for ticket in (wrong_size, wrong_type):
        item = assert_envelope(
            await s3_client.get(f"/api/v1/media/{ticket['media_id']}", headers=tenant.headers), 200
        )["data"]
        assert item["status"] == "failed"
    assert [k for k in list_keys(s3_server, s3_prefix) if tenant.org_id in k] == []
    assert await storage_used(s3_client, tenant.headers) == 0


async def test_upload_from_url_lands_in_the_bucket(
    s3_client: httpx.AsyncClient,
    s3_app: FastAPI,
    make_tenant,
    s3_server: S3Server,
    s3_prefix: str,
    monkeypatch,
) -> None:
    png = files.png(800, 600)

    async def resolve(host: str, port: int) -> list[str]:
        if host != "images.example.com":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return ["93.184.216.34"]

    def remote(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=png) if request.url.path == "/launch.png" else httpx.Response(404)

    monkeypatch.setattr(fetch, "resolver", resolve)
    ctx = s3_app.state.ctx
    original, ctx.http = ctx.http, httpx.AsyncClient(transport=httpx.MockTransport(remote))
    try:
        tenant = await make_tenant()
        response = await s3_client.post(
            "/api/v1/media/upload-from-url",
            headers=tenant.headers,
            json={"url": "https://images.example.com/launch.png"},
        )
        media: dict[str, Any] = assert_envelope(response, 200)["data"]
    finally:
        await ctx.http.aclose()
        ctx.http = original
    key = f"media/{tenant.org_id}/{media['media_id']}/original.png"
    assert media["url"] == f"{CDN}/{key}" and (media["width"], media["height"]) == (800, 600)
    assert get_object(s3_server, f"{s3_prefix}/{key}") == png
    assert head_object(s3_server, f"{s3_prefix}/{key}")["ContentType"] == "image/png"


async def test_generated_images_land_in_the_bucket(
    s3_client: httpx.AsyncClient, make_tenant, s3_server: S3Server, s3_prefix: str
) -> None:
    tenant = await make_tenant()
    response = await s3_client.post(
        "/api/v1/ai/generate-image",
        headers=tenant.headers,
        json={"prompt": "a lighthouse at dawn", "model": "flux-schnell", "aspect_ratio": "1:1"},
    )
    data = assert_envelope(response, 200)["data"]
    media_id = data["media_id"]
    assert data["image_url"].startswith(f"{CDN}/media/") and data["image_url"].endswith(
        f"{media_id}/original.webp"
    )
    key = f"{s3_prefix}/{data['image_url'].removeprefix(CDN + '/')}"
    stored = get_object(s3_server, key)
    assert stored[:4] == b"RIFF" and stored[8:12] == b"WEBP"
    assert head_object(s3_server, key)["ContentType"] == "image/webp"
    media = assert_envelope(await s3_client.get(f"/api/v1/media/{media_id}", headers=tenant.headers), 200)[
        "data"
    ]
    assert media["size"] == len(stored) and media["url"] == data["image_url"]

    assert_envelope(await s3_client.delete(f"/api/v1/media/{media_id}", headers=tenant.headers), 200)
    assert [k for k in list_keys(s3_server, s3_prefix) if media_id in k] == []
