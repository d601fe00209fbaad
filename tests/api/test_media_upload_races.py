"""Races between `complete` and the end of a media item's life (deletion, the sweeper): whatever
`complete` wrote for an item that is gone by the time it records it is removed again."""

import httpx
import pytest

from postengine.media.storage import StorageError
from tests.api.test_conventions import assert_envelope
from tests.media import files
from tests.media.flow import complete, put_bytes, start_upload


async def test_complete_that_loses_to_a_delete_leaves_no_objects(
    client: httpx.AsyncClient, make_tenant, app, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = await make_tenant()
    data = files.png(64, 48)
    ticket = await start_upload(client, tenant.headers, data)
    media_id = ticket["media_id"]
    assert_envelope(await put_bytes(client, ticket["upload_url"], data), 200)

    storage = app.state.ctx.storage
    put = storage.put

    async def delete_first(key: str, payload: bytes, content_type: str):  # type: ignore[no-untyped-def]
        # The item is deleted after `complete` promoted its bytes, before it writes the thumbnail.
        assert_envelope(await client.delete(f"/api/v1/media/{media_id}", headers=tenant.headers), 200)
        return await put(key, payload, content_type)

    monkeypatch.setattr(storage, "put", delete_first)
    assert_envelope(await complete(client, tenant.headers, media_id), 404, "not_found")
    monkeypatch.undo()

    left = [p for p in settings.media_root.rglob("*") if p.is_file() and media_id in str(p)]
    assert left == []


async def test_a_storage_failure_while_discarding_keeps_the_clients_error(
    client: httpx.AsyncClient, make_tenant, app, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bytes that fail their checks are answered with the check's 4xx even when deleting them
    fails (they are then orphaned and logged), never with a 500."""
    tenant = await make_tenant()
    data = files.png(400, 400)[:200]  # the PNG signature, then nothing usable
    ticket = await start_upload(client, tenant.headers, data)
    assert_envelope(await put_bytes(client, ticket["upload_url"], data), 200)

    async def unreachable(key: str) -> None:
        raise StorageError(f"could not delete {key} in the media bucket: unreachable")

    monkeypatch.setattr(app.state.ctx.storage, "delete", unreachable)
    assert_envelope(await complete(client, tenant.headers, ticket["media_id"]), 400, "invalid_media")
    monkeypatch.undo()
    media = assert_envelope(
        await client.get(f"/api/v1/media/{ticket['media_id']}", headers=tenant.headers), 200
    )
    assert media["data"]["status"] == "failed"
