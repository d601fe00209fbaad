"""Media bytes in a local folder (the embedded mode). Writes are atomic (temp file + rename) and
run in a worker thread, never on the event loop."""

import os
import re
import secrets
from pathlib import Path

import anyio.to_thread

from postengine.media.storage.base import StoredObject

# The only keys we ever create; anything else (.., absolute paths, odd characters) is refused.
KEY_PATTERN = re.compile(r"media/med_[0-9a-f]{24}/[a-z0-9_]{1,32}\.(webp|jpg|png|gif|mp4|pdf|heic|heif)")


class InvalidKey(ValueError):
    pass


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, key: str) -> Path:
        if not KEY_PATTERN.fullmatch(key):
            raise InvalidKey(key)
        return self.root / key

    async def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        path = self.path_for(key)
        await anyio.to_thread.run_sync(_write_atomic, path, data)
        return StoredObject(key, len(data))

    async def get(self, key: str) -> bytes:
        return await anyio.to_thread.run_sync(self.path_for(key).read_bytes)

    async def exists(self, key: str) -> bool:
        return await anyio.to_thread.run_sync(self.path_for(key).is_file)

    async def delete(self, key: str) -> None:
        path = self.path_for(key)
        await anyio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
