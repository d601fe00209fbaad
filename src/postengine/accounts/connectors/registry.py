"""Which connector publishes for an account. Only the sandbox exists so far: real platform
connectors (Instagram, X, …) implement `Connector` and register here."""

from postengine.accounts.connectors.base import (
    Connector,
    PermanentPublishError,
    PublishRequest,
    PublishResult,
)
from postengine.accounts.connectors.sandbox import SandboxConnector
from postengine.db import Database
from postengine.kit.clock import Clock

PLATFORMS = ("instagram", "facebook", "x", "linkedin", "youtube", "tiktok", "threads")


class UnavailableConnector:
    """A non-sandbox account on a platform whose connector does not exist yet: fails permanently,
    with a message that says so, instead of pretending to publish."""

    def __init__(self, platform: str) -> None:
        self.platform = platform

    async def publish(self, request: PublishRequest) -> PublishResult:
        raise PermanentPublishError(
            f"Publishing to {self.platform} is not available on this server yet; "
            "connect a sandbox account to try the workflow."
        )

    async def find_published(self, request: PublishRequest) -> PublishResult | None:
        return None


class Connectors:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.sandbox = SandboxConnector(db, clock)
        self._unavailable = {platform: UnavailableConnector(platform) for platform in PLATFORMS}

    def for_account(self, platform: str, is_sandbox: bool) -> Connector:
        if is_sandbox:
            return self.sandbox
        return self._unavailable.get(platform) or UnavailableConnector(platform)
