"""Promotion of objects too large for one conditional PUT (videos): streamed in parts, still never
over an existing object, with the checked type."""

import secrets

import pytest

from postengine.media.storage import s3 as s3_module
from postengine.media.storage import storage_from_settings
from tests.media.s3server import S3Server, head_object
from tests.media.test_storage_contract import a_key, s3_settings


async def test_a_large_object_is_promoted_in_parts(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_module, "SINGLE_PUT_MAX", 1024)  # everything above 1 KiB takes the streamed path
    prefix = f"large-{secrets.token_hex(4)}"
    storage = storage_from_settings(s3_settings(s3_server, prefix))
    dest = a_key(storage, "original.mp4")
    source = dest.replace("media/", "uploads/", 1)
    data = secrets.token_bytes(6 * 1024 * 1024 + 123)  # more than one 5 MiB part
    await storage.put(source, data, "application/octet-stream")
    assert await storage.promote(source, dest, "video/mp4") is True
    assert await storage.get(dest) == data and not await storage.exists(source)
    assert head_object(s3_server, f"{prefix}/{dest}")["ContentType"] == "video/mp4"

    await storage.put(source, secrets.token_bytes(4096), "video/mp4")  # a late PUT
    assert await storage.promote(source, dest, "video/mp4") is False
    assert await storage.get(dest) == data
