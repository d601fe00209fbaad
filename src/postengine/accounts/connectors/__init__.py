"""Publishing to a platform: the `Connector` interface, and the sandbox connector."""

from postengine.accounts.connectors.base import (
    Connector,
    MediaRef,
    PermanentPublishError,
    PublishError,
    PublishRequest,
    PublishResult,
    TransientPublishError,
)

__all__ = [
    "Connector",
    "MediaRef",
    "PermanentPublishError",
    "PublishError",
    "PublishRequest",
    "PublishResult",
    "TransientPublishError",
]
