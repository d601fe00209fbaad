"""Media bytes in a local folder (the embedded mode). Writes are atomic (temp file + rename) and
run in a worker thread, never on the event loop."""

import os
import re
import secrets
from collections.abc import AsyncIterable
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import anyio.to_thread

from postengine.media.storage.base import StoredObject

# The only keys we ever create (`media/` served under /cdn, `uploads/` the staging copies of
# uploads, never served); anything else (.., absolute paths, odd characters) is refused.
KEY_PATTERN = re.compile(
    r"(media|uploads)/med_[0-9a-f]{24}/[a-z0-9_]{1,32}\.(webp|jpg|png|gif|mp4|pdf|heic|heif)"
)
# Streamed writes are handed to the worker thread in batches of about this size: one thread hop
# per batch instead of one per (often 64 KiB) chunk, and never more than this in memory.
_WRITE_BATCH = 1024 * 1024


class InvalidKey(ValueError):
    pass


class LocalStorage:
    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, org_id: str, media_id: str) -> str:
        # Not per organisation: the embedded mode's URLs (`/cdn/media/{media_id}/…`) stay as they are.
        return f"media/{media_id}"

    def path_for(self, key: str) -> Path:
        if not KEY_PATTERN.fullmatch(key):
            raise InvalidKey(key)
        return self.root / key

    async def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        path = self.path_for(key)
        await anyio.to_thread.run_sync(_write_atomic, path, data)
        return StoredObject(key, len(data))

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes], content_type: str) -> StoredObject:
        path = self.path_for(key)
        tmp = await anyio.to_thread.run_sync(_temp_path, path)
        handle: BinaryIO = await anyio.to_thread.run_sync(open, tmp, "wb")
        size = 0
        try:
            batch: list[bytes] = []
            pending = 0
            async for chunk in chunks:
                batch.append(chunk)
                pending += len(chunk)
                if pending >= _WRITE_BATCH:
                    await anyio.to_thread.run_sync(handle.writelines, batch)
                    size, batch, pending = size + pending, [], 0
            await anyio.to_thread.run_sync(_finish, handle, batch, tmp, path)
            size += pending
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_discard, handle, tmp)
            raise
        return StoredObject(key, size)

    async def get(self, key: str) -> bytes:
        return await anyio.to_thread.run_sync(self.path_for(key).read_bytes)

    async def read_range(self, key: str, start: int, length: int) -> bytes:
        return await anyio.to_thread.run_sync(_read_range, self.path_for(key), start, length)

    async def size(self, key: str) -> int | None:
        return await anyio.to_thread.run_sync(_size, self.path_for(key))

    async def exists(self, key: str) -> bool:
        return await anyio.to_thread.run_sync(self.path_for(key).is_file)

    async def delete(self, key: str) -> None:
        path = self.path_for(key)
        await anyio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))

    async def promote(self, source: str, dest: str, content_type: str) -> bool:
        return await anyio.to_thread.run_sync(_promote, self.path_for(source), self.path_for(dest))

    async def upload_url(self, key: str, content_type: str, size: int, expires_at: datetime) -> str | None:
        return None  # the app's own `/uploads/{media_id}` takes the bytes (media.uploads)


def _temp_path(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = _temp_path(path)
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _finish(handle: BinaryIO, batch: list[bytes], tmp: Path, path: Path) -> None:
    with handle:
        handle.writelines(batch)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _discard(handle: BinaryIO, tmp: Path) -> None:
    handle.close()
    tmp.unlink(missing_ok=True)


def _promote(source: Path, dest: Path) -> bool:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, dest)  # atomic, and never replaces an existing file (unlike a rename)
    except FileExistsError:
        return False
    source.unlink(missing_ok=True)
    return True


def _read_range(path: Path, start: int, length: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(start)
        return handle.read(length)


def _size(path: Path) -> int | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_size
