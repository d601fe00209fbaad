"""The `MediaStorage` contract, run against the local folder and a real S3-protocol server (moto)."""

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import httpx
import pytest

from postengine.config import Settings
from postengine.media.storage import LocalStorage, MediaStorage, StorageError, storage_from_settings
from postengine.media.storage.s3 import S3Storage
from tests.media.s3server import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, S3Server, head_object, list_keys


def s3_settings(server: S3Server, prefix: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "storage_url": f"s3://{server.bucket}/{prefix}",
        "s3_endpoint_url": server.endpoint,
        "s3_region": REGION,
        "s3_access_key_id": ACCESS_KEY_ID,
        "s3_secret_access_key": SECRET_ACCESS_KEY,
        "s3_path_style": True,
        "public_media_url": "https://cdn.example.test",
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> MediaStorage:
    if request.param == "local":
        return LocalStorage(tmp_path / "media")
    server: S3Server = request.getfixturevalue("s3_server")
    return storage_from_settings(s3_settings(server, f"contract-{secrets.token_hex(4)}"))


def a_key(storage: MediaStorage, name: str = "original.png", *, org: str | None = None) -> str:
    media_id = f"med_{secrets.token_hex(12)}"
    return f"{storage.folder(org or f'org_{secrets.token_hex(12)}', media_id)}/{name}"


async def test_put_get_size_exists_delete(storage: MediaStorage) -> None:
    key = a_key(storage)
    assert await storage.size(key) is None and not await storage.exists(key)
    stored = await storage.put(key, b"\x89PNG\r\n\x1a\nbytes", "image/png")
    assert (stored.key, stored.size) == (key, 13)
    assert await storage.get(key) == b"\x89PNG\r\n\x1a\nbytes"
    assert await storage.size(key) == 13 and await storage.exists(key)
    await storage.delete(key)
    assert await storage.size(key) is None and not await storage.exists(key)
    await storage.delete(key)  # deleting nothing is not an error


async def test_read_range(storage: MediaStorage) -> None:
    key = a_key(storage)
    await storage.put(key, b"0123456789", "image/png")
    assert await storage.read_range(key, 0, 4) == b"0123"
    assert await storage.read_range(key, 6, 100) == b"6789"  # fewer at the end
    assert await storage.read_range(key, 10, 5) == b""  # none past it
    assert await storage.read_range(key, 3, 0) == b""


async def test_missing_keys(storage: MediaStorage) -> None:
    key = a_key(storage)
    with pytest.raises(FileNotFoundError):
        await storage.get(key)
    with pytest.raises(FileNotFoundError):
        await storage.read_range(key, 0, 10)
    with pytest.raises(FileNotFoundError):
        await storage.promote(key.replace("media/", "uploads/", 1), key, "image/png")


async def test_put_stream_and_a_failing_stream_stores_nothing(storage: MediaStorage) -> None:
    key = a_key(storage, "original.mp4")
    parts = [secrets.token_bytes(700_000) for _ in range(9)]  # > one 5 MiB part on S3

    async def chunks() -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    stored = await storage.put_stream(key, chunks(), "video/mp4")
    assert stored.size == sum(map(len, parts))
    assert await storage.get(key) == b"".join(parts)

    failing = a_key(storage, "original.mp4")

    async def broken() -> AsyncIterator[bytes]:
        yield parts[0]
        raise RuntimeError("client went away")

    with pytest.raises(RuntimeError, match="client went away"):
        await storage.put_stream(failing, broken(), "video/mp4")
    assert not await storage.exists(failing)


async def test_promote_moves_and_never_overwrites(storage: MediaStorage) -> None:
    dest = a_key(storage)
    source = dest.replace("media/", "uploads/", 1)
    await storage.put(source, b"first", "image/png")
    assert await storage.promote(source, dest, "image/png") is True
    assert await storage.get(dest) == b"first" and not await storage.exists(source)

    await storage.put(source, b"second, written late", "image/png")
    assert await storage.promote(source, dest, "image/png") is False
    assert await storage.get(dest) == b"first"  # promoted bytes never change


async def test_keys_are_checked(storage: MediaStorage) -> None:
    for bad in ("media/../secret", "/etc/passwd", "media/med_x/original.exe", "other/file.png"):
        with pytest.raises(ValueError):
            await storage.put(bad, b"x", "image/png")


async def test_s3_keys_are_per_organisation_under_the_prefix(s3_server: S3Server) -> None:
    prefix = f"deploy-{secrets.token_hex(4)}"
    storage = storage_from_settings(s3_settings(s3_server, prefix))
    org = f"org_{secrets.token_hex(12)}"
    key = a_key(storage, org=org)
    assert key.startswith(f"media/{org}/med_")
    await storage.put(key, b"\x89PNG\r\n\x1a\n", "image/png")
    assert list_keys(s3_server, prefix) == [f"{prefix}/{key}"]
    head = head_object(s3_server, f"{prefix}/{key}")
    assert head["ContentType"] == "image/png"
    assert head["CacheControl"] == "public, max-age=31536000, immutable"


async def test_promote_sets_the_checked_type_not_the_uploaders(s3_server: S3Server) -> None:
    prefix = f"types-{secrets.token_hex(4)}"
    storage = storage_from_settings(s3_settings(s3_server, prefix))
    dest = a_key(storage)
    source = dest.replace("media/", "uploads/", 1)
    url = await storage.upload_url(source, "image/png", 8, datetime.now(UTC) + timedelta(seconds=900))
    assert url is not None
    # The presigned URL cannot bind the type: an uploader may claim text/html.
    async with httpx.AsyncClient() as plain:
        response = await plain.put(url, content=b"\x89PNG\r\n\x1a\n", headers={"content-type": "text/html"})
    assert response.status_code == 200
    assert head_object(s3_server, f"{prefix}/{source}")["ContentType"] == "text/html"
    assert await storage.promote(source, dest, "image/png")
    assert head_object(s3_server, f"{prefix}/{dest}")["ContentType"] == "image/png"


def _sigv4_presigned_signature(url: str) -> str:
    """The signature an independent SigV4 implementation (botocore) computes for this URL's request."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    signed_at = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    request = botocore.awsrequest.AWSRequest(method="PUT", url=f"{parts.scheme}://{parts.netloc}{parts.path}")
    credentials = botocore.credentials.Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY)
    signer = botocore.auth.S3SigV4QueryAuth(credentials, "s3", REGION, expires=int(query["X-Amz-Expires"][0]))
    signer._get_date = lambda: signed_at.strftime("%Y%m%dT%H%M%SZ")  # type: ignore[method-assign]
    signer.add_auth(request)
    return parse_qs(urlsplit(request.url).query)["X-Amz-Signature"][0]


async def test_presigned_put(s3_server: S3Server) -> None:
    prefix = f"presign-{secrets.token_hex(4)}"
    storage = storage_from_settings(s3_settings(s3_server, prefix))
    key = a_key(storage).replace("media/", "uploads/", 1)
    data = b"\x89PNG\r\n\x1a\n" + secrets.token_bytes(1000)
    url = await storage.upload_url(key, "image/png", len(data), datetime.now(UTC) + timedelta(seconds=900))
    assert url is not None
    query = parse_qs(urlsplit(url).query)
    assert urlsplit(url).path == f"/{s3_server.bucket}/{prefix}/{key}"
    assert query["X-Amz-Expires"] == ["900"] and query["X-Amz-SignedHeaders"] == ["host"]
    assert query["X-Amz-Credential"][0].startswith(f"{ACCESS_KEY_ID}/")
    assert SECRET_ACCESS_KEY not in url
    # A correct SigV4 query signature (so S3, R2 and MinIO accept it), and one bound to the key:
    # another path would need another signature, which needs the secret.
    assert query["X-Amz-Signature"][0] == _sigv4_presigned_signature(url)
    other = url.replace(f"/{key}", f"/{key.replace('original', 'other')}")
    assert _sigv4_presigned_signature(other) != query["X-Amz-Signature"][0]

    async with httpx.AsyncClient() as plain:  # plain HTTP, no SDK
        response = await plain.put(url, content=data, headers={"content-type": "image/png"})
    assert response.status_code == 200
    assert await storage.get(key) == data


async def test_unreachable_bucket_is_a_storage_error(tmp_path: Path) -> None:
    settings = Settings(
        storage_url="s3://nowhere",
        s3_endpoint_url="http://127.0.0.1:9",  # discard port: nothing listens
        s3_access_key_id="k",
        s3_secret_access_key="s3cr3t-value-never-shown",  # type: ignore[arg-type]
        s3_path_style=True,
        public_media_url="https://cdn.example.test",
    )
    storage = storage_from_settings(settings)
    assert isinstance(storage, S3Storage)
    with pytest.raises(StorageError) as caught:
        await storage.exists(a_key(storage))
    assert "s3cr3t" not in str(caught.value)


def test_configuration_errors() -> None:
    with pytest.raises(ValueError, match="PE_PUBLIC_MEDIA_URL"):
        storage_from_settings(Settings(storage_url="s3://bucket"))
    with pytest.raises(ValueError, match="file:// or s3://"):
        storage_from_settings(Settings(storage_url="gs://bucket", public_media_url="https://cdn.test"))
    with pytest.raises(ValueError, match="both"):
        storage_from_settings(
            Settings(storage_url="s3://b", s3_access_key_id="k", public_media_url="https://cdn.test")
        )
    with pytest.raises(ValueError, match="file://"):
        _ = Settings(storage_url="s3://bucket").media_root
    assert "s3cr3t" not in repr(Settings(s3_secret_access_key="s3cr3t"))  # type: ignore[arg-type]
