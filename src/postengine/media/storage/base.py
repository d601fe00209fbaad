"""The interface of media storage, and the key layout every backend shares.

Errors: a missing object is `FileNotFoundError`; any other failure of the storage itself (a
bucket that cannot be reached, a refused request) is `StorageError`, an `OSError`, so callers
that already treat I/O failures as such (refund a generation, keep an orphan) need nothing else.
"""

from collections.abc import AsyncIterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

# Uploads are written under this top-level folder, never under `media/`: no upload URL can write
# a key that the public media URL serves (see `staging_key`).
STAGING_PREFIX = "uploads/"
PUBLIC_PREFIX = "media/"


class StorageError(OSError):
    """The storage failed (unreachable, refused, misconfigured). The message names no secret."""


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int


def staging_key(key: str) -> str:
    """Where the bytes of an upload for `key` are written before `complete` checks them:
    `media/…/original.jpg` → `uploads/…/original.jpg`."""
    if not key.startswith(PUBLIC_PREFIX):
        raise ValueError(f"not a media key: {key[:80]!r}")
    return STAGING_PREFIX + key.removeprefix(PUBLIC_PREFIX)


def sibling_key(key: str, name: str) -> str:
    """Another object of the same media item (its thumbnail): `media/…/original.jpg` → `media/…/thumb.webp`."""
    return f"{key.rsplit('/', 1)[0]}/{name}"


class MediaStorage(Protocol):
    """Object storage for media. A media item's objects live in `folder(org_id, media_id)`
    (`media/…/original.jpg`, `media/…/thumb.webp`); a key maps one-to-one to the public URL path
    under the media base URL (a CDN in production, `/cdn` in the embedded mode). Uploads are
    written to `staging_key(key)` and promoted to `key` by `complete` once checked.

    The operations are those an S3-compatible bucket offers (PUT, GET with a byte range, HEAD,
    DELETE, presigned PUT URLs), so a bucket-backed implementation maps each to one request or two."""

    name: str  # reported to clients as the upload `provider` ("local", "s3")

    def folder(self, org_id: str, media_id: str) -> str:
        """The key prefix of a media item's objects, without a trailing slash."""
        ...

    async def put(self, key: str, data: bytes, content_type: str) -> StoredObject: ...

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes], content_type: str) -> StoredObject:
        """Store the bytes `chunks` yields, without holding them all in memory. If iterating `chunks`
        raises, nothing is stored under `key` and the exception propagates."""
        ...

    async def get(self, key: str) -> bytes: ...

    async def read_range(self, key: str, start: int, length: int) -> bytes:
        """At most `length` bytes from offset `start` (fewer at the end of the object, none past it)."""
        ...

    async def size(self, key: str) -> int | None:
        """The object's size in bytes, or None when there is no such object."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None:
        """Delete the object; nothing happens when there is none."""
        ...

    async def promote(self, source: str, dest: str, content_type: str) -> bool:
        """Move `source` to `dest` (served as `content_type`) unless `dest` already exists: True if
        moved, False if `dest` was there (then `dest` is left as it was, and `source` too).
        `FileNotFoundError` when there is no `source`. `dest` is never overwritten, so bytes that a
        late upload writes to `source` can never replace promoted ones."""
        ...

    async def upload_url(self, key: str, content_type: str, size: int, expires_at: datetime) -> str | None:
        """A URL that takes the object's bytes with a plain `PUT` and no other credential until
        `expires_at` (an S3 presigned PUT), or None when the bytes must go through this server's
        own signed `/uploads/{media_id}` URL instead (`media.uploads`), as with local storage.
        A presigned URL cannot bind the length or type: `complete` checks both from the bytes."""
        ...
