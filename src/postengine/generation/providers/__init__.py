"""Image providers behind the public model names (PROVIDERS.md)."""

from postengine.generation.providers.base import (
    CheckResult,
    ImageProvider,
    ImageRequest,
    ProviderBlocked,
    ProviderError,
    ProviderFailed,
    ProviderMisconfigured,
    ProviderOverloaded,
)

__all__ = [
    "CheckResult",
    "ImageProvider",
    "ImageRequest",
    "ProviderBlocked",
    "ProviderError",
    "ProviderFailed",
    "ProviderMisconfigured",
    "ProviderOverloaded",
]
