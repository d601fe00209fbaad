"""Checking a file before it joins the library: the type sniffed from its bytes against the declared
one, the size limit of its type, and its dimensions, duration and thumbnail (`inspect`).

The same checks serve the signed-URL upload (`complete`) and `upload-from-url`. Pillow runs in a
worker thread under the app's CPU limiter; file bytes are read from storage by range, so a 500 MiB
video is never held in memory.
"""

import hashlib
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio.to_thread

from postengine.context import AppContext
from postengine.errors import PayloadTooLarge, UnsupportedMediaType
from postengine.media import inspect
from postengine.media.errors import InvalidMedia
from postengine.media.kinds import FORMATS, MAX_SIZE, SUPPORTED, MediaType, human_size

Reader = Callable[[int, int], Awaitable[bytes]]  # (offset, length) → at most length bytes
MAX_MOOV_BYTES = 64 * 1024 * 1024  # a movie header beyond this is not one we can use
_MAX_TOP_LEVEL_BOXES = 10_000


@dataclass(frozen=True, slots=True)
class Facts:
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    thumbnail: bytes | None = None  # WebP
    sha256: str | None = None


def check_size(content_type: str, size: int) -> None:
    media_type = FORMATS[content_type].type
    limit = MAX_SIZE[media_type]
    if size > limit:
        shown, limit_shown = human_size(size), human_size(limit)
        if shown == limit_shown:  # just over the limit: rounding would show the same size twice
            shown, limit_shown = f"{size:,} bytes", f"{limit:,} bytes"
        raise PayloadTooLarge(
            f"{media_type.capitalize()} files are limited to {limit_shown} (this one is {shown}).",
            details={"max_size": limit, "size": size, "type": str(media_type)},
        )


def check_type(declared: str, head: bytes) -> str:
    """The sniffed type, if it is the declared one; else 415 naming what the bytes really are."""
    sniffed = inspect.sniff(head)
    if sniffed is None:
        raise UnsupportedMediaType(
            f"The file's bytes are not a supported type (declared {declared}). Supported types: {SUPPORTED}.",
            details={"declared_content_type": declared, "detected_content_type": None},
        )
    if not inspect.same_format(declared, sniffed):
        raise UnsupportedMediaType(
            f"The file's bytes are {sniffed}, not {declared} as declared. Start a new upload with "
            f"content_type {sniffed}.",
            details={"declared_content_type": declared, "detected_content_type": sniffed},
        )
    return sniffed


def detect_type(head: bytes) -> str:
    sniffed = inspect.sniff(head)
    if sniffed is None:
        raise UnsupportedMediaType(
            f"The file is not of a supported type. Supported types: {SUPPORTED}.",
            details={"detected_content_type": None},
        )
    return sniffed


async def examine_bytes(ctx: AppContext, data: bytes, content_type: str) -> Facts:
    media_type = FORMATS[content_type].type
    if media_type is MediaType.IMAGE:
        return await anyio.to_thread.run_sync(_examine_image, data, content_type, limiter=ctx.cpu)
    if media_type is MediaType.VIDEO:

        async def read(offset: int, length: int) -> bytes:
            return data[offset : offset + length]

        return await _examine_video(read, len(data))
    return Facts()


async def examine_stored(ctx: AppContext, key: str, content_type: str, size: int) -> Facts:
    """`key` holds `size` bytes declared as `content_type`: check and measure them."""
    check_type(content_type, await ctx.storage.read_range(key, 0, inspect.SNIFF_BYTES))
    media_type = FORMATS[content_type].type
    if media_type is MediaType.IMAGE:
        return await examine_bytes(ctx, await ctx.storage.get(key), content_type)  # ≤ 20 MiB

    async def read(offset: int, length: int) -> bytes:
        return await ctx.storage.read_range(key, offset, length)

    if media_type is MediaType.VIDEO:
        return await _examine_video(read, size)
    return Facts()


def _examine_image(data: bytes, content_type: str) -> Facts:
    try:
        facts = inspect.inspect_image(data, content_type)
    except inspect.InvalidFile as exc:
        raise InvalidMedia(str(exc)) from None
    return Facts(facts.width, facts.height, None, facts.thumbnail, hashlib.sha256(data).hexdigest())


async def _examine_video(read: Reader, size: int) -> Facts:
    """Walk the top-level boxes to `moov` (at the start of a "fast start" file, else at the end)."""
    offset = 0
    for _ in range(_MAX_TOP_LEVEL_BOXES):
        if offset + 8 > size:
            break
        header = await read(offset, 16)
        box_size, kind = struct.unpack_from(">I4s", header)
        header_size = 8
        if box_size == 1 and len(header) >= 16:
            box_size, header_size = struct.unpack_from(">Q", header, 8)[0], 16
        elif box_size == 0:
            box_size = size - offset
        if box_size < header_size or offset + box_size > size:
            break
        if kind == b"moov":
            if box_size > MAX_MOOV_BYTES:
                return Facts()
            moov = await read(offset + header_size, box_size - header_size)
            video = inspect.movie_facts(moov)
            return Facts(video.width, video.height, video.duration)
        offset += box_size
    raise InvalidMedia("The file is not a readable MP4 video (it has no movie header).")
