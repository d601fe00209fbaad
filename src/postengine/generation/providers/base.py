"""The provider interface and its exception hierarchy.

    ProviderError            any failure of an upstream generation
    ├── ProviderBlocked      the provider refused the prompt or the image for safety: 400, never retried
    ├── ProviderOverloaded   the provider is over capacity or rate-limits us: 503 with Retry-After
    ├── ProviderMisconfigured the operator's setup is wrong (missing or rejected key, unknown upstream
    │                        model): 503 with a clear message, and a log line for the operator
    └── ProviderFailed       anything else (5xx, timeout, bad output): 500 generation_failed

Every failure refunds the credits; the generation service does that, providers only raise.
"""

from dataclasses import dataclass
from typing import Protocol

from PIL import Image

from postengine.generation.models import AspectRatio, ImageModel


@dataclass(frozen=True, slots=True)
class ImageRequest:
    model: ImageModel
    prompt: str
    aspect_ratio: AspectRatio
    width: int
    height: int
    # `anyio.current_time()` by which the whole generation must be done (retries included).
    deadline: float | None = None

    def remaining(self, now: float) -> float:
        return float("inf") if self.deadline is None else self.deadline - now


class ImageProvider(Protocol):
    name: str

    async def generate(self, request: ImageRequest) -> Image.Image:
        """An image of at least the requested size and the requested aspect (the caller downscales)."""
        ...


class ProviderError(Exception):
    pass


class ProviderBlocked(ProviderError):
    def __init__(self, reason: str, category: str = "provider_safety") -> None:
        super().__init__(reason)
        self.reason = reason
        self.category = category


class ProviderOverloaded(ProviderError):
    def __init__(self, message: str, retry_after: int = 30) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderMisconfigured(ProviderError):
    """Never carries a credential: messages name the setting (`PE_GEMINI_API_KEY`), not its value."""

    def __init__(self, message: str, retry_after: int = 60) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderFailed(ProviderError):
    pass


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What `postengine providers check` reports for one provider."""

    ok: bool
    detail: str
