"""Request and response bodies of `/media` (API.md §5)."""

import re
from typing import Any

import httpx
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from postengine.media.kinds import FORMATS, SUPPORTED, normalise_content_type

MAX_FILENAME = 255
MAX_URL = 2048
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")


def clean_filename(value: str) -> str:
    """The last path component, without control characters or separators, at most 255 characters."""
    name = re.split(r"[/\\]", value.strip())[-1]
    name = _UNSAFE.sub("", name).strip()
    if not name or name in {".", ".."}:
        raise ValueError("filename must be a file name, e.g. launch.jpg")
    return name[:MAX_FILENAME]


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    filename: str = Field(description="The file's name, for display.", examples=["launch.jpg"])
    content_type: str = Field(
        description=f"One of: {SUPPORTED}. The bytes are checked against it.", examples=["image/jpeg"]
    )
    size: int = Field(
        validation_alias=AliasChoices("size", "file_size"),
        description="The file's exact size in bytes (`file_size` is accepted too).",
        examples=[2048576],
    )

    @field_validator("filename", mode="after")
    @classmethod
    def _filename(cls, value: str) -> str:
        return clean_filename(value)

    @field_validator("content_type", mode="after")
    @classmethod
    def _content_type(cls, value: str) -> str:
        normalised = normalise_content_type(value)
        if normalised not in FORMATS:
            raise ValueError(f"Unsupported content_type {value[:80]!r}. Must be one of: {SUPPORTED}")
        return normalised

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        # bool is an int to Python; a size of `true` is a client bug, not 1 byte.
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("size must be an integer number of bytes")
        if value < 1:
            raise ValueError("size must be at least 1 byte")
        return value


class UploadFromUrlRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    url: str = Field(description="A public https:// URL of the file (at most 25 MiB).")
    filename: str | None = Field(default=None, description="Name to show; default: from the URL.")

    @field_validator("url", mode="after")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("url must not be empty")
        if len(value) > MAX_URL:
            raise ValueError(f"url must be at most {MAX_URL} characters")
        try:
            # The fetcher reads the host first; a label that is not valid IDNA (`https://xn--/`)
            # raises there with an error it does not expect (a 500 before this check).
            _ = httpx.URL(value).host
        except httpx.InvalidURL:
            pass  # refused by the fetcher, as `url_not_allowed`
        except UnicodeError:
            raise ValueError("url has an invalid host name") from None
        return value

    @field_validator("filename", mode="after")
    @classmethod
    def _filename(cls, value: str | None) -> str | None:
        return None if value is None else clean_filename(value)


class UploadMethod(BaseModel):
    method: str = Field(examples=["PUT"])
    content_type: str
    field_name: None = None


class UploadTicket(BaseModel):
    media_id: str
    upload_url: str
    upload_method: UploadMethod
    provider: str = Field(examples=["local"])
    expires_in: int = Field(examples=[900])
    max_size: int


class AiInfo(BaseModel):
    model: str
    prompt: str
    aspect_ratio: str | None


class MediaObject(BaseModel):
    """API.md §5.1 (`id`/`media_id`, `content_type`/`mime_type`, `size`/`file_size` are equal)."""

    id: str
    media_id: str
    type: str = Field(examples=["image"])
    status: str = Field(examples=["ready"])
    filename: str
    content_type: str
    mime_type: str
    size: int
    file_size: int
    width: int | None
    height: int | None
    duration: float | None
    url: str
    thumbnail_url: str | None
    source: str = Field(examples=["upload"])
    ai: AiInfo | None
    created_at: str


class Pagination(BaseModel):
    limit: int
    offset: int
    total: int
    has_more: bool


class MediaList(BaseModel):
    media: list[MediaObject]
    pagination: Pagination


class UploadReceived(BaseModel):
    media_id: str
    status: str = Field(examples=["uploading"])
    size: int
    content_type: str
    message: str


class DeletedMedia(BaseModel):
    id: str
    media_id: str
    deleted: bool
