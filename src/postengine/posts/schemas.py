"""Request bodies and response shapes of `/posts` (API.md §7).

Responses are built as plain dicts by the service (the list endpoint is a hot read path); the
models below describe them in the OpenAPI document."""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from postengine.accounts.repository import MAX_ACCOUNT_ID as MAX_ACCOUNT_ID  # ids are 32-bit integers
from postengine.accounts.schemas import Platform as Platform  # the one list of platforms
from postengine.kit.pagination import PageQuery

MAX_ACCOUNTS = 50
MAX_MEDIA = 20
MAX_CONTENT_CHARS = 10_000


class PostStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    PUBLISHING = "publishing"
    PUBLISHED = "published"
    PARTIALLY_FAILED = "partially_failed"
    FAILED = "failed"


class DestinationStatus(StrEnum):
    QUEUED = "queued"
    PUBLISHED = "published"
    FAILED = "failed"


class PostSort(StrEnum):
    CREATED_AT = "created_at"
    SCHEDULED_FOR = "scheduled_for"


class SortOrder(StrEnum):
    ASC = "asc"
    DESC = "desc"


class PostListQuery(PageQuery):
    """`GET /posts`'s query (API.md §7.2)."""

    status: str | None = Field(None, description="Comma-separated post statuses.")
    platform: str | None = Field(None, description="Comma-separated platforms.")
    account_id: int | None = Field(
        None, ge=1, le=MAX_ACCOUNT_ID, description="Posts with a destination on this account."
    )
    scheduled_after: datetime | None = Field(None, description="ISO 8601; inclusive.")
    scheduled_before: datetime | None = Field(None, description="ISO 8601; inclusive.")
    search: str | None = Field(
        None, max_length=200, pattern=r"^[^\x00]*$", description="Text in the content."
    )
    sort: PostSort = PostSort.CREATED_AT
    order: SortOrder = SortOrder.DESC


class PlatformOverride(BaseModel):
    model_config = ConfigDict(extra="ignore")

    content: str | None = Field(default=None, max_length=MAX_CONTENT_CHARS)
    settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("content")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        return _without_nul(value, "platform_content.content")


class PostFields(BaseModel):
    """What POST and PATCH share. Unknown fields are ignored (API.md §1.4); known misspellings of
    `media_ids` are refused before this model is reached (`service.reject_misspellings`)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    content: str | None = Field(default=None, max_length=MAX_CONTENT_CHARS, examples=["Launch day!"])
    account_ids: list[int] | None = Field(default=None, max_length=MAX_ACCOUNTS, examples=[[1, 2, 3]])
    media_ids: list[str] | None = Field(default=None, max_length=MAX_MEDIA, examples=[["med_3e9a0c…"]])
    scheduled_at: datetime | None = Field(
        default=None,
        validation_alias=AliasChoices("scheduled_at", "scheduled_for"),
        description="ISO 8601; omitted: publish now. `scheduled_for` is accepted as the same field.",
    )
    timezone: str | None = Field(default=None, examples=["Europe/Lisbon"])
    platform_content: dict[Platform, PlatformOverride] | None = None
    draft: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_schedule(cls, data: Any) -> Any:
        if (
            isinstance(data, dict)
            and "scheduled_at" in data
            and "scheduled_for" in data
            and data["scheduled_at"] != data["scheduled_for"]
        ):
            raise ValueError("send either scheduled_at or scheduled_for, not both with different values")
        return data

    @field_validator("content")
    @classmethod
    def _content(cls, value: str | None) -> str | None:
        return _without_nul(value, "content")

    @field_validator("account_ids")
    @classmethod
    def _accounts(cls, value: list[int] | None) -> list[int] | None:
        if value is None:
            return None
        if any(not 1 <= account_id <= MAX_ACCOUNT_ID for account_id in value):
            raise ValueError("account_ids must be positive integers (account ids from GET /accounts)")
        return list(dict.fromkeys(value))  # the same account twice is one destination

    @field_validator("media_ids")
    @classmethod
    def _media(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if any(not media_id.strip() for media_id in value):
            raise ValueError("media_ids must not contain empty ids")
        for media_id in value:
            _without_nul(media_id, "media_ids")  # looked up in PostgreSQL, whose text cannot hold NUL
        return list(dict.fromkeys(value))

    @field_validator("scheduled_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        # A time without an offset is UTC: `timezone` is display metadata and never moves it.
        return None if value is None else as_utc(value, "scheduled_at")

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"timezone must be an IANA time zone name such as UTC or Europe/Lisbon, not {value[:64]!r}"
            ) from None
        return value


class CreatePostRequest(PostFields):
    pass


class UpdatePostRequest(PostFields):
    pass


def as_utc(value: datetime, field: str) -> datetime:
    """`value` in UTC (a time without an offset is UTC). ValueError for a time whose offset moves
    it out of the years 1–9999 (`0001-01-01T00:00:00+01:00`), which `datetime` cannot hold."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{field} must be a time between the years 1 and 9999 in UTC") from None


def _without_nul(value: str | None, field: str) -> str | None:
    if value is not None and "\x00" in value:  # PostgreSQL text cannot hold NUL
        raise ValueError(f"{field} must not contain NUL characters")
    return value


# ---------------------------------------------------------------- responses (documentation)


class PostMediaItem(BaseModel):
    media_id: str
    type: str
    width: int | None
    height: int | None
    url: str


class Destination(BaseModel):
    id: str
    account_id: int
    account_name: str
    platform: Platform
    status: DestinationStatus
    platform_post_id: str | None
    platform_post_url: str | None
    published_at: str | None
    error: str | None
    attempts: int
    next_retry_at: str | None


class PostObject(BaseModel):
    id: str
    post_id: str
    status: PostStatus
    content: str | None
    account_ids: list[int]
    media_ids: list[str]
    media: list[PostMediaItem]
    scheduled_for: str | None
    timezone: str
    platform_content: dict[str, Any]
    destinations: list[Destination]
    created_at: str
    updated_at: str


class CreatedPost(PostObject):
    accounts_count: int
    message: str = Field(examples=["Post scheduled for 3 accounts"])


class Pagination(BaseModel):
    limit: int
    offset: int
    total: int
    has_more: bool


class PostList(BaseModel):
    posts: list[PostObject]
    pagination: Pagination


class DeletedPost(BaseModel):
    post_id: str
    deleted: bool


class PostResults(BaseModel):
    post_id: str
    post_status: PostStatus
    results: list[Destination]


class RetriedDestination(BaseModel):
    id: str
    platform: Platform
    new_status: DestinationStatus


class RetryResult(BaseModel):
    retried_count: int
    destinations: list[RetriedDestination]
