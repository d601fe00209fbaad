from collections.abc import AsyncIterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int


class MediaStorage(Protocol):
    """Object storage for media. Keys are `media/{media_id}/{name}`; a key maps one-to-one to the
    public URL path under the media base URL (a CDN in production, `/cdn` in the embedded mode).

    The operations are those an S3-compatible bucket offers (PUT, GET with a byte range, HEAD,
    DELETE, presigned PUT URLs), so a bucket-backed implementation maps each to one request."""

    name: str  # reported to clients as the upload `provider` ("local", "s3")

    async def put(self, key: str, data: bytes, content_type: str) -> StoredObject: ...

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes], content_type: str) -> StoredObject:
        """Store the bytes `chunks` yields, without holding them all in memory. If iterating `chunks`
        raises, nothing is stored under `key` and the exception propagates."""
        ...

    async def get(self, key: str) -> bytes: ...

    async def read_range(self, key: str, start: int, length: int) -> bytes:
        """At most `length` bytes from offset `start` (fewer at the end of the object)."""
        ...

    async def size(self, key: str) -> int | None:
        """The object's size in bytes, or None when there is no such object."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None: ...

    async def upload_url(self, key: str, content_type: str, size: int, expires_at: datetime) -> str | None:
        """A URL that takes the object's bytes with a plain `PUT` and no other credential until
        `expires_at` (an S3 presigned PUT, bound to the content type and length), or None when the
        bytes must go through this server's own signed `/uploads/{media_id}` URL instead
        (`media.uploads`), as with local storage."""
        ...
