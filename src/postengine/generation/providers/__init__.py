"""Image providers behind the public model names (PROVIDERS.md)."""

from postengine.generation.providers.base import (
    ImageProvider,
    ImageRequest,
    ProviderBlocked,
    ProviderError,
    ProviderFailed,
    ProviderOverloaded,
)

__all__ = [
    "ImageProvider",
    "ImageRequest",
    "ProviderBlocked",
    "ProviderError",
    "ProviderFailed",
    "ProviderOverloaded",
]
