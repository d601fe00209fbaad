"""Media bytes in an S3-compatible bucket (AWS S3, Cloudflare R2, MinIO), through obstore.

obstore (Rust `object_store` underneath) is async without a thread pool per call, retries with
backoff, and signs presigned URLs locally. Keys are `media/{org_id}/{media_id}/{name}` (per
organisation: lifecycle rules, cost reports and an organisation's removal work on its prefix) under
the optional prefix of `PE_STORAGE_URL`; the CDN in front of the bucket serves `media/…` as
`{PE_PUBLIC_MEDIA_URL}/media/…`. Uploads go to `uploads/…` with a presigned PUT and are promoted to
`media/…` by `complete` (docs/scale-out.md).

Objects are written with the type they were checked to be and an immutable cache policy: the key of
a media object never gets other bytes (a new file is a new media id).
"""

import re
from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

import obstore

# obstore raises the builtin FileNotFoundError for a missing object (and declares NotFoundError).
from obstore.exceptions import AlreadyExistsError, BaseError, NotFoundError
from obstore.store import S3Store

from postengine.media.storage.base import StorageError, StoredObject

if TYPE_CHECKING:
    from obstore import Attributes

# The only keys we ever create: media objects (per organisation; without the organisation for
# AI images stored before keys were per organisation) and their staging copies.
KEY_PATTERN = re.compile(
    r"(media|uploads)/(org_[0-9a-f]{24}/)?med_[0-9a-f]{24}/[a-z0-9_]{1,32}\.(webp|jpg|png|gif|mp4|pdf|heic|heif)"
)
IMMUTABLE = "public, max-age=31536000, immutable"
# Promotion reads the staged object and writes it again with a conditional PUT (`If-None-Match: *`,
# never overwrites): a server-side copy cannot set the checked content type, and a conditional copy
# is not portable across S3-compatible stores. Up to this size in one request (every image and
# document, ≤ 20 MiB); videos are streamed in parts after a HEAD, see `promote`.
SINGLE_PUT_MAX = 32 * 1024 * 1024
STREAM_CHUNK = 8 * 1024 * 1024
# S3's limits for a presigned URL's lifetime (SigV4: 1 second to 7 days).
MIN_URL_SECONDS, MAX_URL_SECONDS = 1, 7 * 24 * 3600


class InvalidKey(ValueError):
    pass


class S3Storage:
    name = "s3"

    def __init__(self, store: S3Store) -> None:
        self.store = store

    def folder(self, org_id: str, media_id: str) -> str:
        return f"media/{org_id}/{media_id}"

    async def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        try:
            await obstore.put_async(
                self.store, _checked(key), data, attributes=_attributes(content_type), use_multipart=False
            )
        except BaseError as exc:
            _fail("write", key, exc)
        return StoredObject(key, len(data))

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes], content_type: str) -> StoredObject:
        size = 0

        async def counted() -> AsyncIterator[bytes]:
            nonlocal size
            async for chunk in chunks:
                size += len(chunk)
                yield chunk

        try:
            # A multipart upload that is aborted (and so stores nothing) if `chunks` raises.
            await obstore.put_async(
                self.store,
                _checked(key),
                counted(),
                attributes=_attributes(content_type),
                chunk_size=STREAM_CHUNK,
            )
        except BaseError as exc:
            _fail("write", key, exc)
        return StoredObject(key, size)

    async def get(self, key: str) -> bytes:
        try:
            result = await obstore.get_async(self.store, _checked(key))
            return bytes(await result.bytes_async())
        except (NotFoundError, FileNotFoundError):
            raise FileNotFoundError(key) from None
        except BaseError as exc:
            _fail("read", key, exc)

    async def read_range(self, key: str, start: int, length: int) -> bytes:
        if length <= 0:
            return b""
        try:
            return bytes(await obstore.get_range_async(self.store, _checked(key), start=start, length=length))
        except (NotFoundError, FileNotFoundError):
            raise FileNotFoundError(key) from None
        except BaseError as exc:
            # S3 answers 416 for a range that starts at or past the end: that is "no bytes" here.
            size = await self.size(key)
            if size is None:
                raise FileNotFoundError(key) from None
            if start >= size:
                return b""
            _fail("read", key, exc)

    async def size(self, key: str) -> int | None:
        try:
            meta = await obstore.head_async(self.store, _checked(key))
        except (NotFoundError, FileNotFoundError):
            return None
        except BaseError as exc:
            _fail("look up", key, exc)
        return int(meta["size"])

    async def exists(self, key: str) -> bool:
        return await self.size(key) is not None

    async def delete(self, key: str) -> None:
        try:
            await obstore.delete_async(self.store, _checked(key))  # S3: deleting nothing succeeds
        except (NotFoundError, FileNotFoundError):
            return
        except BaseError as exc:
            _fail("delete", key, exc)

    async def promote(self, source: str, dest: str, content_type: str) -> bool:
        size = await self.size(source)
        if size is None:
            raise FileNotFoundError(source)
        if size <= SINGLE_PUT_MAX:
            data = await self.get(source)
            try:
                await obstore.put_async(
                    self.store,
                    _checked(dest),
                    data,
                    attributes=_attributes(content_type),
                    mode="create",  # If-None-Match: * (atomic on S3, R2, MinIO)
                    use_multipart=False,
                )
            except AlreadyExistsError:
                return False
            except BaseError as exc:
                _fail("write", dest, exc)
        else:
            # Too large for one conditional PUT: a multipart upload cannot be conditional on every
            # store. Checked first instead; only two `complete` calls racing with a third `PUT`
            # of other bytes inside this window could still replace promoted bytes.
            if await self.exists(dest):
                return False
            try:
                result = await obstore.get_async(self.store, _checked(source))
            except (NotFoundError, FileNotFoundError):
                raise FileNotFoundError(source) from None
            except BaseError as exc:
                _fail("read", source, exc)
            await self.put_stream(dest, _chunks(result.stream(min_chunk_size=STREAM_CHUNK)), content_type)
        await self.delete(source)
        return True

    async def upload_url(self, key: str, content_type: str, size: int, expires_at: datetime) -> str | None:
        # SigV4 presigned URLs sign the host only (obstore signs no headers): the client may send
        # any length or type, and `complete` checks both from the stored bytes.
        seconds = round((expires_at - datetime.now(UTC)).total_seconds())
        lifetime = timedelta(seconds=min(max(seconds, MIN_URL_SECONDS), MAX_URL_SECONDS))
        try:
            return await obstore.sign_async(self.store, "PUT", _checked(key), lifetime)
        except BaseError as exc:
            _fail("sign an upload URL for", key, exc)


async def _chunks(stream: AsyncIterable[Any]) -> AsyncIterator[bytes]:
    async for chunk in stream:
        yield bytes(chunk)


def _checked(key: str) -> str:
    if not KEY_PATTERN.fullmatch(key):
        raise InvalidKey(key)
    return key


def _attributes(content_type: str) -> "Attributes":
    return {"Content-Type": content_type, "Cache-Control": IMMUTABLE}


def _fail(action: str, key: str, exc: BaseError) -> NoReturn:
    # obstore's messages name the bucket URL and the S3 error, never the credentials.
    first_line = (str(exc).splitlines() or [""])[0][:300]
    raise StorageError(
        f"could not {action} {key} in the media bucket: {type(exc).__name__}: {first_line}"
    ) from exc
