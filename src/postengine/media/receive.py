"""`PUT {upload_url}`: the bytes of an upload, through the server's own signed URL (embedded mode).

Checks, before any byte is stored: the signature (403 `invalid_signature`), the expiry (403
`upload_expired`), that the upload is still open (409), the declared `Content-Length` (400). While
streaming: the type sniffed from the first bytes against the declared one (415) and the byte count
against the declared size (400), never holding more than one write batch in memory. Bytes that fail
a check are never stored.

The bytes go to the upload's staging key, never to the media key: `complete` promotes them. A PUT
that was still streaming when `complete` ran finds the upload closed when it ends, deletes what it
wrote and answers 409 (`service` explains the design).
"""

import re
from collections.abc import AsyncIterable, AsyncIterator

from postengine.context import AppContext
from postengine.media import ingest, repository, uploads
from postengine.media.errors import InvalidSignature, UploadClosed, UploadExpired, UploadSizeMismatch
from postengine.media.inspect import SNIFF_BYTES
from postengine.media.kinds import MediaStatus
from postengine.media.schemas import UploadReceived
from postengine.media.storage import staging_key

MEDIA_ID = re.compile(r"med_[0-9a-f]{24}")


async def receive_upload(
    ctx: AppContext,
    media_id: str,
    *,
    expires: str | None,
    signature: str | None,
    content_length: str | None,
    body: AsyncIterable[bytes],
) -> UploadReceived:
    expires_at = uploads.parse_expires(expires)
    if expires_at is None or signature is None or not uploads.well_formed(signature):
        raise InvalidSignature()
    if not MEDIA_ID.fullmatch(media_id):
        raise InvalidSignature()
    row = await ctx.db.run_read(lambda conn: repository.get_upload(conn, media_id))
    if row is None or not uploads.verify(
        ctx.settings.secret,
        signature,
        media_id=media_id,
        key=row.storage_key,
        content_type=row.content_type,
        size=row.size,
        expires=expires_at,
    ):
        raise InvalidSignature()
    if ctx.clock.time() > expires_at:
        raise UploadExpired()
    if row.status != MediaStatus.UPLOADING:
        raise _closed()
    declared: int = row.size
    numeric = content_length is not None and content_length.isascii() and content_length.isdigit()
    if content_length is not None and (not numeric or int(content_length) != declared):
        received = int(content_length) if numeric else None
        raise UploadSizeMismatch(declared=declared, received=received)
    staged = staging_key(row.storage_key)
    stored = await ctx.storage.put_stream(
        staged, _checked(body, row.content_type, declared), row.content_type
    )
    now = await ctx.db.run_read(lambda conn: repository.get_upload(conn, media_id))
    if now is None or now.status != MediaStatus.UPLOADING:
        # Completed, discarded or deleted while we streamed: these bytes will never be used.
        await ctx.storage.delete(staged)
        raise _closed()
    return UploadReceived(
        media_id=media_id,
        status=str(MediaStatus.UPLOADING),
        size=stored.size,
        content_type=row.content_type,
        message=f"Upload received. Call POST /api/v1/media/{media_id}/complete to finish it.",
    )


def _closed() -> UploadClosed:
    return UploadClosed(
        "This upload is already complete (or was discarded): its bytes can no longer be replaced. "
        "Start a new upload to send another file."
    )


async def _checked(
    body: AsyncIterable[bytes], declared_type: str, declared_size: int
) -> AsyncIterator[bytes]:
    """The body's chunks, after the sniffed type is checked; raises (so nothing is stored) on a
    wrong type or a byte count other than the declared size."""
    head = b""
    received = 0
    sniffed = False
    async for chunk in body:
        if not chunk:
            continue
        received += len(chunk)
        if received > declared_size:
            raise UploadSizeMismatch(declared=declared_size, received=None)
        if sniffed:
            yield chunk
            continue
        head += chunk
        if len(head) >= SNIFF_BYTES:
            ingest.check_type(declared_type, head)
            sniffed = True
            yield head
    if received != declared_size:
        raise UploadSizeMismatch(declared=declared_size, received=received)
    if not sniffed:  # a file shorter than the sniffing window
        ingest.check_type(declared_type, head)
        yield head
