"""Building the model → provider chain from configuration."""

from collections.abc import Mapping

from anyio import CapacityLimiter

from postengine.generation.models import ImageModel
from postengine.generation.providers.base import ImageProvider
from postengine.generation.providers.offline import OfflineProvider

KNOWN_PROVIDERS = ("offline",)


class ProviderConfigError(ValueError):
    pass


def build_providers(
    chains: Mapping[ImageModel, list[str]], limiter: CapacityLimiter
) -> dict[ImageModel, list[ImageProvider]]:
    instances: dict[str, ImageProvider] = {"offline": OfflineProvider(limiter)}
    result: dict[ImageModel, list[ImageProvider]] = {}
    for model in ImageModel:
        names = chains.get(model) or []
        if not names:
            raise ProviderConfigError(f"model {model} has no provider configured")
        unknown = [name for name in names if name not in instances]
        if unknown:
            raise ProviderConfigError(
                f"model {model}: unknown provider {unknown[0]!r} (available: {', '.join(KNOWN_PROVIDERS)})"
            )
        result[model] = [instances[name] for name in names]
    return result
