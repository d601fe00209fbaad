from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int


class MediaStorage(Protocol):
    """Object storage for media. Keys are `media/{media_id}/{name}`; a key maps one-to-one to the
    public URL path under the media base URL (a CDN in production, `/cdn` in the embedded mode)."""

    async def put(self, key: str, data: bytes, content_type: str) -> StoredObject: ...

    async def get(self, key: str) -> bytes: ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None: ...
