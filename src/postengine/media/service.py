"""The media library's rules (API.md §5): uploads through a signed URL, completion, fetching from a
URL, listing, deletion, and the sweeper for uploads that never finish.

Transactions are short and hold no I/O: bytes are written to storage before the row that makes them
visible, and deleted after the row that pointed at them is gone. Storage use per organization is
counted in the same transaction as the row that becomes `ready` (or is deleted).
"""

import logging
from datetime import timedelta
from functools import partial
from typing import Any

import orjson
from sqlalchemy import Connection

from postengine.auth.authenticator import Caller
from postengine.context import AppContext
from postengine.errors import ApiError, NotFound
from postengine.kit import listcache
from postengine.kit.clock import to_datetime
from postengine.kit.ids import new_id
from postengine.kit.pagination import pagination
from postengine.media import ingest, repository, uploads
from postengine.media.errors import (
    MediaInUse,
    StorageLimitExceeded,
    UploadFailed,
    UploadIncomplete,
    UploadSizeMismatch,
)
from postengine.media.kinds import FORMATS, MAX_SIZE, UPLOAD_URL_SECONDS, MediaSource, MediaStatus
from postengine.media.schemas import UploadMethod, UploadRequest, UploadTicket
from postengine.media.views import media_object

log = logging.getLogger("postengine.media")

# Uploads still unfinished this long after their URL expired are deleted by the sweeper (a PUT that
# started just before the expiry may still be streaming for a while).
ABANDONED_GRACE_SECONDS = 900.0


def thumbnail_key(media_id: str) -> str:
    return f"media/{media_id}/thumb.webp"


def _not_found(media_id: str) -> NotFound:
    return NotFound(f"No media item {media_id[:40]!r} in your organization.")


async def start_upload(ctx: AppContext, caller: Caller, body: UploadRequest, base_url: str) -> UploadTicket:
    fmt = FORMATS[body.content_type]
    ingest.check_size(body.content_type, body.size)
    used, limit = await ctx.db.run_read(lambda conn: repository.storage_of(conn, caller.org_id))
    if used + body.size > limit:  # checked again, atomically, when the upload completes
        raise StorageLimitExceeded(used=used, limit=limit, size=body.size)
    media_id = new_id("med")
    key = f"media/{media_id}/original.{fmt.extension}"
    now = ctx.clock.time()
    expires = int(now) + UPLOAD_URL_SECONDS
    await ctx.db.run(
        lambda conn: repository.insert_media(
            conn,
            id=media_id,
            org_id=caller.org_id,
            type=str(fmt.type),
            status=str(MediaStatus.UPLOADING),
            source=str(MediaSource.UPLOAD),
            filename=body.filename,
            content_type=body.content_type,
            size=body.size,
            storage_key=key,
            upload_expires_at=to_datetime(expires),
            created_at=to_datetime(now),
        )
    )
    changed(ctx, caller.org_id)
    url = await ctx.storage.upload_url(key, body.content_type, body.size, to_datetime(expires))
    if url is None:
        url = uploads.signed_url(
            base_url,
            ctx.settings.secret,
            media_id=media_id,
            key=key,
            content_type=body.content_type,
            size=body.size,
            expires=expires,
        )
    return UploadTicket(
        media_id=media_id,
        upload_url=url,
        upload_method=UploadMethod(method="PUT", content_type=body.content_type),
        provider=ctx.storage.name,
        expires_in=expires - int(now),
        max_size=MAX_SIZE[fmt.type],
    )


async def complete_upload(ctx: AppContext, caller: Caller, media_id: str) -> dict[str, Any]:
    row = await ctx.db.run_read(lambda conn: repository.get_media(conn, caller.org_id, media_id))
    if row is None:
        raise _not_found(media_id)
    if row.status == MediaStatus.READY:
        return media_object(row, ctx.settings.media_base_url)  # completing twice is harmless
    if row.status == MediaStatus.FAILED:
        raise UploadFailed("This upload failed its checks and was discarded. Start a new upload.")
    stored = await ctx.storage.size(row.storage_key)
    if stored is None:
        raise UploadIncomplete(
            "The file has not been uploaded yet: PUT its bytes to the upload_url, then call complete.",
        )
    try:
        if stored != row.size:
            raise UploadSizeMismatch(declared=row.size, received=stored)
        facts = await ingest.examine_stored(ctx, row.storage_key, row.content_type, row.size)
    except ApiError:
        # The bytes are not what was declared (possible when a bucket took them directly).
        await _discard_upload(ctx, caller.org_id, media_id, row.storage_key)
        raise
    thumb = thumbnail_key(media_id) if facts.thumbnail is not None else None
    if facts.thumbnail is not None:
        await ctx.storage.put(thumbnail_key(media_id), facts.thumbnail, "image/webp")

    def finish(conn: Connection) -> repository.MediaRow | None:
        if repository.mark_ready(
            conn,
            caller.org_id,
            media_id,
            width=facts.width,
            height=facts.height,
            duration=facts.duration,
            thumbnail_key=thumb,
            sha256=facts.sha256,
        ):
            added, used, limit = repository.add_storage(conn, caller.org_id, row.size)
            if not added:
                raise StorageLimitExceeded(used=used, limit=limit, size=row.size)  # rolls back
        return repository.get_media(conn, caller.org_id, media_id)

    try:
        done = await ctx.db.run(finish)
    except StorageLimitExceeded:
        if thumb is not None:
            await ctx.storage.delete(thumb)
        raise
    changed(ctx, caller.org_id)
    if done is None:  # deleted while we checked it
        raise _not_found(media_id)
    return media_object(done, ctx.settings.media_base_url)


async def _discard_upload(ctx: AppContext, org_id: str, media_id: str, key: str) -> None:
    if await ctx.db.run(lambda conn: repository.mark_failed(conn, org_id, media_id)):
        changed(ctx, org_id)
        await ctx.storage.delete(key)


async def get_media(ctx: AppContext, caller: Caller, media_id: str) -> dict[str, Any]:
    row = await ctx.db.run_read(lambda conn: repository.get_media(conn, caller.org_id, media_id))
    if row is None:
        raise _not_found(media_id)
    return media_object(row, ctx.settings.media_base_url)


async def list_media(
    ctx: AppContext,
    caller: Caller,
    *,
    media_type: str | None,
    source: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> orjson.Fragment:
    """`{media, pagination}`, already serialised; from `kit.listcache` when fresh."""

    async def compute() -> orjson.Fragment:
        rows, total = await ctx.db.run_read(
            lambda conn: repository.list_media(
                conn,
                caller.org_id,
                media_type=media_type,
                source=source,
                status=status,
                limit=limit,
                offset=offset,
            )
        )
        base = ctx.settings.media_base_url
        items = [media_object(row, base) for row in rows]
        return orjson.Fragment(orjson.dumps({"media": items, "pagination": pagination(limit, offset, total)}))

    query = (media_type, source, status, limit, offset)
    return await listcache.for_db(ctx.db, listcache.MEDIA).page(caller.org_id, query, compute)


def changed(ctx: AppContext, org_id: str) -> None:
    """After any change to an organisation's media: its `GET /me` storage figure and its
    `GET /media` pages are dropped at once (this process; others within a second)."""
    ctx.orgs.invalidate(org_id)
    listcache.invalidate(ctx.db, listcache.MEDIA, org_id)


async def delete_media(ctx: AppContext, caller: Caller, media_id: str, *, force: bool) -> None:
    def remove(conn: Connection) -> str | None:
        """The deleted item's storage key; None if there is no such item."""
        row = repository.lock_media(conn, caller.org_id, media_id)
        if row is None:
            return None
        if not force:
            users = repository.posts_using(conn, caller.org_id, media_id)
            if users:
                raise MediaInUse(users)
        repository.delete_media(conn, caller.org_id, media_id)
        if row.status == MediaStatus.READY:
            repository.release_storage(conn, caller.org_id, row.size)
        storage_key: str = row.storage_key
        return storage_key

    key = await ctx.db.run(remove)
    if key is None:
        raise _not_found(media_id)
    changed(ctx, caller.org_id)
    # Posts that had it lost it with the row (`post_media` cascades): their list pages changed too.
    listcache.invalidate(ctx.db, listcache.POSTS, caller.org_id)
    await _delete_bytes(ctx, media_id, key)


async def _delete_bytes(ctx: AppContext, media_id: str, key: str) -> None:
    """After the row is gone: a failure here leaves an orphan file, never a row without bytes.
    The thumbnail by its conventional key, not the row's: a `complete` that lost the race with the
    deletion may have written one that the row never recorded."""
    for name in (key, thumbnail_key(media_id)):
        try:
            await ctx.storage.delete(name)
        except OSError:
            log.warning("could not delete %s; it is orphaned", name, exc_info=True)


async def sweep_abandoned_uploads(ctx: AppContext, grace_seconds: float = ABANDONED_GRACE_SECONDS) -> int:
    """Delete uploads left `uploading` past their URL's expiry (+ grace), rows and bytes."""
    cutoff = to_datetime(ctx.clock.time()) - timedelta(seconds=grace_seconds)
    stale = await ctx.db.run_read(lambda conn: repository.abandoned_uploads(conn, cutoff))
    swept = 0
    for media_id, org_id, key, _thumb in stale:
        if await ctx.db.run(partial(repository.delete_abandoned, media_id=media_id, cutoff=cutoff)):
            changed(ctx, org_id)
            await _delete_bytes(ctx, media_id, key)
            swept += 1
    if swept:
        log.info("swept %d abandoned uploads", swept)
    return swept
