"""The media library's rules (API.md §5): uploads through a signed URL, completion, fetching from a
URL, listing, deletion, and the sweeper for uploads that never finish.

Transactions are short and hold no I/O: bytes are written to storage before the row that makes them
visible, and deleted after the row that pointed at them is gone. Storage use per organization is
counted in the same transaction as the row that becomes `ready` (or is deleted).

Uploads are written to a staging key (`uploads/…`, `storage.staging_key`), never to the media
object's own key. `complete` promotes the staged bytes to the media key (a move that never
overwrites) and then checks and measures the promoted object, so a `PUT` that is still running, or
an upload URL that is still valid, after `complete` can only write the staging key again: it can
never change the bytes that a `ready` item's size, dimensions, sha256 and thumbnail describe.
Staging objects are deleted on promotion, by a late `PUT` itself (local storage), and by the sweeper
once the upload URL has expired (a presigned URL may write one after `complete`).
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
from postengine.idempotency import Recorder
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
from postengine.media.storage import sibling_key, staging_key
from postengine.media.views import media_object

log = logging.getLogger("postengine.media")

# Uploads still unfinished this long after their URL expired are deleted by the sweeper (a PUT that
# started just before the expiry may still be streaming for a while).
ABANDONED_GRACE_SECONDS = 900.0


THUMBNAIL_NAME = "thumb.webp"


def original_key(ctx: AppContext, org_id: str, media_id: str, extension: str) -> str:
    """Where a new media item's file goes: in the storage's folder for it (per organisation in a bucket)."""
    return f"{ctx.storage.folder(org_id, media_id)}/original.{extension}"


def _check_id(media_id: str) -> None:
    """An id no media item can have (control characters, which PostgreSQL refuses outright, or a
    length no id has) is simply not found, without asking the database."""
    if len(media_id) > MAX_ID_LENGTH or not media_id.isprintable():
        raise _not_found(media_id)


MAX_ID_LENGTH = 64


def _not_found(media_id: str) -> NotFound:
    return NotFound(f"No media item {media_id[:40]!r} in your organization.")


async def start_upload(
    ctx: AppContext, caller: Caller, body: UploadRequest, base_url: str, record: Recorder | None = None
) -> UploadTicket:
    fmt = FORMATS[body.content_type]
    ingest.check_size(body.content_type, body.size)
    used, limit = await ctx.db.run_read(lambda conn: repository.storage_of(conn, caller.org_id))
    if used + body.size > limit:  # checked again, atomically, when the upload completes
        raise StorageLimitExceeded(used=used, limit=limit, size=body.size)
    media_id = new_id("med")
    key = original_key(ctx, caller.org_id, media_id, fmt.extension)
    now = ctx.clock.time()
    expires = int(now) + UPLOAD_URL_SECONDS
    # The URL is made before the row is written, so that the whole ticket can be committed with it.
    url = await ctx.storage.upload_url(staging_key(key), body.content_type, body.size, to_datetime(expires))
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
    ticket = UploadTicket(
        media_id=media_id,
        upload_url=url,
        upload_method=UploadMethod(method="PUT", content_type=body.content_type),
        provider=ctx.storage.name,
        expires_in=expires - int(now),
        max_size=MAX_SIZE[fmt.type],
    )

    def write(conn: Connection) -> None:
        repository.insert_media(
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
        if record is not None:  # the Idempotency-Key's response, committed with the media row
            record(conn, 201, ticket.model_dump(mode="json"))

    await ctx.db.run(write)
    changed(ctx, caller.org_id)
    return ticket


async def complete_upload(ctx: AppContext, caller: Caller, media_id: str) -> dict[str, Any]:
    _check_id(media_id)
    row = await ctx.db.run_read(lambda conn: repository.get_media(conn, caller.org_id, media_id))
    if row is None:
        raise _not_found(media_id)
    if row.status == MediaStatus.READY:
        return media_object(row, ctx.settings.media_base_url)  # completing twice is harmless
    if row.status == MediaStatus.FAILED:
        raise UploadFailed("This upload failed its checks and was discarded. Start a new upload.")
    key: str = row.storage_key
    try:
        await _promote_upload(ctx, key, row.content_type, row.size)
        # From here on the bytes under `key` cannot change: measure those, not the staged ones.
        stored = await ctx.storage.size(key)
        if stored != row.size:
            raise UploadSizeMismatch(declared=row.size, received=stored)
        facts = await ingest.examine_stored(ctx, key, row.content_type, row.size)
    except UploadIncomplete:
        raise
    except ApiError:
        # The bytes are not what was declared (possible when a bucket took them directly).
        await _discard_upload(ctx, caller.org_id, media_id, key)
        raise
    thumb = sibling_key(key, THUMBNAIL_NAME) if facts.thumbnail is not None else None
    if facts.thumbnail is not None and thumb is not None:
        await ctx.storage.put(thumb, facts.thumbnail, "image/webp")

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
    if done is None:
        # Deleted (by its owner or the sweeper) while we checked it: their deletion of the bytes may
        # have run before our promotion or thumbnail, so remove what we wrote (the key is this item's alone).
        await _delete_bytes(ctx, key)
        raise _not_found(media_id)
    await ctx.storage.delete(staging_key(key))  # a PUT that ended after the promotion
    return media_object(done, ctx.settings.media_base_url)


async def _promote_upload(ctx: AppContext, key: str, content_type: str, declared: int) -> None:
    """Move the staged upload to `key`. Nothing staged: the bytes are already at `key` (an earlier
    `complete` promoted them and then failed or lost a race), or they never arrived (409)."""
    staged = staging_key(key)
    size = await ctx.storage.size(staged)
    if size is not None and size != declared:
        raise UploadSizeMismatch(declared=declared, received=size)  # not worth moving
    if size is not None:
        try:
            # False: promoted before by a concurrent `complete`; what is at `key` stays, and the
            # staged object (a later PUT's) is deleted once the item is ready.
            await ctx.storage.promote(staged, key, content_type)
            return
        except FileNotFoundError:
            pass  # promoted by a concurrent `complete` between our look and the move
    if not await ctx.storage.exists(key):
        raise UploadIncomplete(
            "The file has not been uploaded yet: PUT its bytes to the upload_url, then call complete.",
        )


async def _discard_upload(ctx: AppContext, org_id: str, media_id: str, key: str) -> None:
    if await ctx.db.run(lambda conn: repository.mark_failed(conn, org_id, media_id)):
        changed(ctx, org_id)
        # Logged, never raised: the client's error (the check that failed) is the answer.
        await _delete_bytes(ctx, key)


async def get_media(ctx: AppContext, caller: Caller, media_id: str) -> dict[str, Any]:
    _check_id(media_id)
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
    _check_id(media_id)

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
    await _delete_bytes(ctx, key)


async def _delete_bytes(ctx: AppContext, key: str) -> None:
    """After the row is gone: a failure here leaves an orphan file, never a row without bytes.
    The thumbnail by its conventional key, not the row's: a `complete` that lost the race with the
    deletion may have written one that the row never recorded. The staging key: an upload deleted
    before it was completed has its bytes there."""
    for name in (key, sibling_key(key, THUMBNAIL_NAME), staging_key(key)):
        try:
            await ctx.storage.delete(name)
        except (OSError, ValueError):  # ValueError: a key of another storage (PE_STORAGE_URL changed)
            log.warning("could not delete %s; it is orphaned", name, exc_info=True)


async def sweep_abandoned_uploads(ctx: AppContext, grace_seconds: float = ABANDONED_GRACE_SECONDS) -> int:
    """Delete uploads left `uploading` past their URL's expiry (+ grace), rows and bytes; and the
    staging objects of finished uploads whose URL has expired (a presigned URL that was used again
    after `complete` leaves one). Returns the number of abandoned uploads deleted."""
    cutoff = to_datetime(ctx.clock.time()) - timedelta(seconds=grace_seconds)
    stale = await ctx.db.run_read(lambda conn: repository.abandoned_uploads(conn, cutoff))
    swept = 0
    for media_id, org_id, key, _thumb in stale:
        if await ctx.db.run(partial(repository.delete_abandoned, media_id=media_id, cutoff=cutoff)):
            changed(ctx, org_id)
            await _delete_bytes(ctx, key)
            swept += 1
    finished = await ctx.db.run_read(lambda conn: repository.finished_uploads(conn, cutoff))
    for media_id, key in finished:
        try:
            await ctx.storage.delete(staging_key(key))
        except ValueError:
            pass  # a key this storage never wrote (PE_STORAGE_URL changed since): nothing to delete
        except OSError:
            log.warning("could not delete the staging object of %s; retrying later", media_id, exc_info=True)
            continue
        await ctx.db.run(partial(repository.forget_upload, media_id=media_id))
    if swept:
        log.info("swept %d abandoned uploads", swept)
    return swept
