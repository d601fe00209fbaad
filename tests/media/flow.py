"""The upload flow as a client runs it, over the ASGI client."""

from typing import Any

import httpx

from tests.api.test_conventions import assert_envelope

BASE = "http://testserver"


async def start_upload(
    client: httpx.AsyncClient, headers: dict[str, str], data: bytes | None = None, **fields: Any
) -> dict[str, Any]:
    body = {"filename": "launch.png", "content_type": "image/png", **fields}
    if "size" not in body and "file_size" not in body:
        assert data is not None
        body["size"] = len(data)
    response = await client.post("/api/v1/media/upload", headers=headers, json=body)
    data_out: dict[str, Any] = assert_envelope(response, 201)["data"]
    return data_out


async def put_bytes(client: httpx.AsyncClient, upload_url: str, data: bytes, **kwargs: Any) -> httpx.Response:
    assert upload_url.startswith(BASE)
    return await client.put(upload_url.removeprefix(BASE), content=data, **kwargs)


async def complete(client: httpx.AsyncClient, headers: dict[str, str], media_id: str) -> httpx.Response:
    return await client.post(f"/api/v1/media/{media_id}/complete", headers=headers)


async def upload(
    client: httpx.AsyncClient, headers: dict[str, str], data: bytes, **fields: Any
) -> dict[str, Any]:
    """start → PUT → complete; returns the ready media object."""
    ticket = await start_upload(client, headers, data, **fields)
    assert_envelope(await put_bytes(client, ticket["upload_url"], data), 200)
    media: dict[str, Any] = assert_envelope(await complete(client, headers, ticket["media_id"]), 200)["data"]
    assert media["status"] == "ready"
    return media


async def storage_used(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    me = assert_envelope(await client.get("/api/v1/me", headers=headers), 200)["data"]
    used: int = me["quota"]["storage_bytes"]["used"]
    return used
