"""Media bytes in a local folder (the embedded mode). Writes are atomic (temp file + rename) and
run in a worker thread, never on the event loop.

Only keys of the form we create are accepted (`KEY_PATTERN`: no `..`, no absolute path, no odd
character), and nothing is read or written through a symbolic link below the root (the root itself
may be one): a link planted in the folder, to a file outside it or to another organisation's media,
reads as a missing object, and no write goes through a linked folder. No client can plant a link;
this keeps a mistake on the server (a restored backup, a hand-made link) from exposing other files.
"""

import errno
import os
import re
import secrets
import stat
from collections.abc import AsyncIterable
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import anyio.to_thread

from postengine.media.storage.base import StorageError, StoredObject

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
            raise InvalidKey(key[:200])
        return self.root / key

    async def stat(self, key: str) -> os.stat_result:
        """The file's status; FileNotFoundError unless it is a regular file reached without a link."""
        return await anyio.to_thread.run_sync(_stat_regular, self.root, self.path_for(key))

    async def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        path = self.path_for(key)
        await anyio.to_thread.run_sync(_write_atomic, self.root, path, data)
        return StoredObject(key, len(data))

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes], content_type: str) -> StoredObject:
        path = self.path_for(key)
        tmp = await anyio.to_thread.run_sync(_temp_path, self.root, path)
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
        return await anyio.to_thread.run_sync(_read_range, self.root, self.path_for(key), 0, None)

    async def read_range(self, key: str, start: int, length: int) -> bytes:
        return await anyio.to_thread.run_sync(_read_range, self.root, self.path_for(key), start, length)

    async def size(self, key: str) -> int | None:
        return await anyio.to_thread.run_sync(_size, self.root, self.path_for(key))

    async def exists(self, key: str) -> bool:
        return await self.size(key) is not None

    async def delete(self, key: str) -> None:
        await anyio.to_thread.run_sync(_delete, self.root, self.path_for(key))

    async def promote(self, source: str, dest: str, content_type: str) -> bool:
        return await anyio.to_thread.run_sync(_promote, self.root, self.path_for(source), self.path_for(dest))

    async def upload_url(self, key: str, content_type: str, size: int, expires_at: datetime) -> str | None:
        self.path_for(key)  # refused like every other operation's key
        return None  # the app's own `/uploads/{media_id}` takes the bytes (media.uploads)


def _folders_are_real(root: Path, path: Path) -> bool:
    """No folder between `root` and `path` is a symbolic link or other non-folder (missing ones are
    fine: they are about to be made, or the file is simply not there)."""
    folder = root
    for part in path.relative_to(root).parts[:-1]:
        folder = folder / part
        try:
            mode = os.lstat(folder).st_mode
        except FileNotFoundError:
            return True
        if not stat.S_ISDIR(mode):
            return False
    return True


def _stat_regular(root: Path, path: Path) -> os.stat_result:
    try:
        st = os.lstat(path)  # FileNotFoundError when missing
    except NotADirectoryError:  # a file where a folder of the key should be
        raise FileNotFoundError(f"no regular file at {path.relative_to(root)}") from None
    if not stat.S_ISREG(st.st_mode) or not _folders_are_real(root, path):
        raise FileNotFoundError(f"no regular file at {path.relative_to(root)}")
    return st


def _make_folder(root: Path, path: Path) -> None:
    if _folders_are_real(root, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        if _folders_are_real(root, path):
            return
    raise StorageError(f"refusing to write {path.relative_to(root)}: a folder on its way is a symbolic link")


def _temp_path(root: Path, path: Path) -> Path:
    _make_folder(root, path)
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def _write_atomic(root: Path, path: Path, data: bytes) -> None:
    tmp = _temp_path(root, path)
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


def _promote(root: Path, source: Path, dest: Path) -> bool:
    _stat_regular(root, source)
    _make_folder(root, dest)
    try:
        os.link(source, dest)  # atomic, and never replaces an existing file (unlike a rename)
    except FileExistsError:
        return False
    source.unlink(missing_ok=True)
    return True


def _read_range(root: Path, path: Path, start: int, length: int | None) -> bytes:
    _stat_regular(root, path)
    try:  # O_NOFOLLOW: a link put in place since the check is not followed either
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise FileNotFoundError(f"no regular file at {path.relative_to(root)}") from None
    with open(fd, "rb") as handle:
        handle.seek(start)
        return handle.read(length)


def _size(root: Path, path: Path) -> int | None:
    try:
        return _stat_regular(root, path).st_size
    except FileNotFoundError:
        return None


def _delete(root: Path, path: Path) -> None:
    # A link itself is removed (never its target); nothing is removed through a linked folder.
    if _folders_are_real(root, path):
        path.unlink(missing_ok=True)
