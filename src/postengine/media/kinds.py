"""The media types the library accepts and their limits (API.md §5)."""

from dataclasses import dataclass
from enum import StrEnum

MIB = 1024 * 1024
UPLOAD_URL_SECONDS = 900  # how long a signed upload URL works (API.md §5.2: `expires_in: 900`)
URL_FETCH_MAX_BYTES = 25 * MIB  # `upload-from-url` (API.md §5.2)
URL_FETCH_TIMEOUT_SECONDS = 30.0


class MediaType(StrEnum):
    IMAGE = "image"
    VIDEO = "video"
    DOCUMENT = "document"


class MediaSource(StrEnum):
    UPLOAD = "upload"
    AI = "ai"


class MediaStatus(StrEnum):
    UPLOADING = "uploading"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Format:
    content_type: str
    type: MediaType
    extension: str  # of the stored original: `media/{id}/original.{extension}`


FORMATS: dict[str, Format] = {
    f.content_type: f
    for f in (
        Format("image/jpeg", MediaType.IMAGE, "jpg"),
        Format("image/png", MediaType.IMAGE, "png"),
        Format("image/gif", MediaType.IMAGE, "gif"),
        Format("image/webp", MediaType.IMAGE, "webp"),
        Format("image/heic", MediaType.IMAGE, "heic"),
        Format("image/heif", MediaType.IMAGE, "heif"),
        Format("video/mp4", MediaType.VIDEO, "mp4"),
        Format("application/pdf", MediaType.DOCUMENT, "pdf"),
    )
}
# Spellings clients send for the types above.
ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png"}

MAX_SIZE: dict[MediaType, int] = {
    MediaType.IMAGE: 20 * MIB,
    MediaType.VIDEO: 500 * MIB,
    MediaType.DOCUMENT: 20 * MIB,
}

SUPPORTED = ", ".join(FORMATS)


def normalise_content_type(value: str) -> str:
    """`Image/JPEG; charset=x` → `image/jpeg`, with the aliases above."""
    base = value.split(";", 1)[0].strip().lower()
    return ALIASES.get(base, base)


def human_size(size: int) -> str:
    if size >= MIB:
        return f"{size / MIB:.1f} MiB".replace(".0 MiB", " MiB")
    if size >= 1024:
        return f"{size / 1024:.1f} KiB".replace(".0 KiB", " KiB")
    return f"{size} bytes"
