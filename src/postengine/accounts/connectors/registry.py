"""Which connector publishes for an account. Only the sandbox exists so far: real platform
connectors (Instagram, X, …) implement `Connector`, register in `Connectors.__init__`, and add their
platform to `PLATFORMS_WITH_CONNECTOR` (which account health reads to say whether an account can post)."""

from postengine.accounts.connectors.base import (
    Connector,
    PermanentPublishError,
    PublishRequest,
    PublishResult,
)
from postengine.accounts.connectors.sandbox import SandboxConnector
from postengine.accounts.schemas import Platform
from postengine.db import Database
from postengine.kit.clock import Clock

PLATFORMS = tuple(platform.value for platform in Platform)
PLATFORMS_WITH_CONNECTOR: frozenset[str] = frozenset()


def unavailable_message(platform: str) -> str:
    return (
        f"Publishing to {platform} is not available on this server yet; "
        "connect a sandbox account to try the workflow."
    )


class UnavailableConnector:
    """A non-sandbox account on a platform whose connector does not exist yet: fails permanently,
    with a message that says so, instead of pretending to publish."""

    def __init__(self, platform: str) -> None:
        self.platform = platform

    async def publish(self, request: PublishRequest) -> PublishResult:
        raise PermanentPublishError(unavailable_message(self.platform))

    async def find_published(self, request: PublishRequest) -> PublishResult | None:
        return None


class Connectors:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.sandbox = SandboxConnector(db, clock)
        self._platforms: dict[str, Connector] = {
            platform: UnavailableConnector(platform) for platform in PLATFORMS
        }

    def for_account(self, platform: str, is_sandbox: bool) -> Connector:
        if is_sandbox:
            return self.sandbox
        return self._platforms.get(platform) or UnavailableConnector(platform)
