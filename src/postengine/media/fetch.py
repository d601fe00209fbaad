"""`POST /media/upload-from-url`: the server fetches a public file and adds it to the library.

The fetch goes through `kit.netguard` (https only, every address of the host and of every redirect
must be public, a byte cap and one timeout), so a client cannot make the server reach loopback,
private networks or a cloud metadata endpoint.
"""

import logging
from typing import Any

import anyio
import httpx
from sqlalchemy import Connection

from postengine.auth.authenticator import Caller
from postengine.context import AppContext
from postengine.errors import PayloadTooLarge
from postengine.kit import netguard
from postengine.kit.clock import to_datetime
from postengine.kit.ids import new_id
from postengine.media import ingest, repository, service
from postengine.media.errors import FetchFailed, StorageLimitExceeded, UrlNotAllowed
from postengine.media.inspect import SNIFF_BYTES
from postengine.media.kinds import (
    FORMATS,
    URL_FETCH_MAX_BYTES,
    URL_FETCH_TIMEOUT_SECONDS,
    MediaSource,
    MediaStatus,
    human_size,
)
from postengine.media.schemas import UploadFromUrlRequest, clean_filename
from postengine.media.storage import sibling_key
from postengine.media.views import media_object

# How host names are resolved; tests replace it (module attribute) with a fixed table.
resolver: netguard.Resolver = netguard.system_resolver

log = logging.getLogger("postengine.media")


async def upload_from_url(ctx: AppContext, caller: Caller, body: UploadFromUrlRequest) -> dict[str, Any]:
    try:
        fetched = await netguard.fetch(
            ctx.http,
            body.url,
            max_bytes=URL_FETCH_MAX_BYTES,
            timeout=URL_FETCH_TIMEOUT_SECONDS,
            resolver=resolver,
        )
    except netguard.FetchRefused as exc:
        raise UrlNotAllowed(
            f"This URL cannot be fetched: {exc}. Only public https:// URLs are allowed."
        ) from None
    except netguard.FetchTooLarge:
        raise PayloadTooLarge(
            f"The file at this URL is larger than {human_size(URL_FETCH_MAX_BYTES)}, the most "
            "upload-from-url accepts. Use POST /api/v1/media/upload for larger files.",
            details={"max_size": URL_FETCH_MAX_BYTES},
        ) from None
    except netguard.FetchFailed as exc:
        raise FetchFailed(f"The URL could not be fetched: {exc}.", details={"status": exc.status}) from None

    data = fetched.data
    content_type = ingest.detect_type(data[:SNIFF_BYTES])
    ingest.check_size(content_type, len(data))
    facts = await ingest.examine_bytes(ctx, data, content_type)

    fmt = FORMATS[content_type]
    media_id = new_id("med")
    key = service.original_key(ctx, caller.org_id, media_id, fmt.extension)
    thumb = sibling_key(key, service.THUMBNAIL_NAME) if facts.thumbnail is not None else None
    filename = body.filename or _name_from(fetched.url, media_id, fmt.extension)
    now = to_datetime(ctx.clock.time())

    def record(conn: Connection) -> repository.MediaRow | None:
        repository.insert_media(
            conn,
            id=media_id,
            org_id=caller.org_id,
            type=str(fmt.type),
            status=str(MediaStatus.READY),
            source=str(MediaSource.UPLOAD),
            filename=filename,
            content_type=content_type,
            size=len(data),
            width=facts.width,
            height=facts.height,
            duration=facts.duration,
            storage_key=key,
            thumbnail_key=thumb,
            sha256=facts.sha256,
            created_at=now,
        )
        added, used, limit = repository.add_storage(conn, caller.org_id, len(data))
        if not added:
            raise StorageLimitExceeded(used=used, limit=limit, size=len(data))  # rolls back
        return repository.get_media(conn, caller.org_id, media_id)

    try:  # bytes first, then the row that makes them visible; on any failure, no bytes left behind
        await ctx.storage.put(key, data, content_type)
        if facts.thumbnail is not None and thumb is not None:
            await ctx.storage.put(thumb, facts.thumbnail, "image/webp")
        row = await ctx.db.run(record)
    except BaseException:
        with anyio.CancelScope(shield=True):
            for name in (key, thumb):
                if name is None:
                    continue
                try:
                    await ctx.storage.delete(name)
                except (OSError, ValueError):  # the original failure is the one to report
                    log.warning("could not delete %s; it is orphaned", name, exc_info=True)
        raise
    service.changed(ctx, caller.org_id)
    assert row is not None
    return media_object(row, ctx.settings.media_base_url)


def _name_from(url: str, media_id: str, extension: str) -> str:
    last = httpx.URL(url).path.rsplit("/", 1)[-1]
    try:
        return clean_filename(last) if last else f"{media_id}.{extension}"
    except ValueError:
        return f"{media_id}.{extension}"
