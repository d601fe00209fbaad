"""The interface every platform connector implements (API.md §7.4).

The publisher calls `publish` for one destination at a time, outside any database transaction.
A connector must be idempotent on `request.destination_id`: the publisher may call it again for the
same destination after a crash between the platform's answer and our record of it. Connectors that
can ask the platform ("did I already post with this key?") implement `find_published`; the
publisher calls it before every retry of a destination that was claimed before.

Errors:
    PublishError               base
    ├── TransientPublishError  worth retrying later (5xx, timeouts, rate limits); `retry_after` hint
    └── PermanentPublishError  will not work by retrying (content refused, account disconnected);
                               fails the destination with a readable `error`
"""

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class MediaRef:
    id: str
    type: str  # image | video | document
    content_type: str
    url: str  # public URL (CDN)
    storage_key: str
    size: int
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True, slots=True)
class PublishRequest:
    destination_id: str  # the idempotency key
    post_id: str
    org_id: str
    account_id: int
    platform: str
    account_name: str
    content: str
    media: tuple[MediaRef, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)  # platform_content[platform].settings


@dataclass(frozen=True, slots=True)
class PublishResult:
    platform_post_id: str
    platform_post_url: str | None = None


class PublishError(Exception):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class TransientPublishError(PublishError):
    pass


class PermanentPublishError(PublishError):
    pass


class Connector(Protocol):
    async def publish(self, request: PublishRequest) -> PublishResult:
        """Publish, or raise a PublishError. Idempotent on `request.destination_id`."""
        ...

    async def find_published(self, request: PublishRequest) -> PublishResult | None:
        """The post this destination already made, if the platform can tell; else None."""
        ...
