"""Building the model → provider chains from configuration (PROVIDERS.md, DESIGN.md §6).

Each public model has an ordered chain of provider names. The first provider that returns an image
serves the request; a safety block ends the chain at once (never routed around); any other failure
moves on to the next provider. Every upstream provider sits behind its own circuit breaker.

A model not named in `PE_PROVIDERS` gets its automatic chain: the upstreams that can serve it and
whose credentials are set, in the order of `UPSTREAMS`; the offline renderer only when none is set
(the embedded default). The offline renderer is never appended behind a real upstream unless the
operator names it: a draft image instead of the paid model's output is the operator's choice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import anyio
import httpx
from anyio import CapacityLimiter
from pydantic import SecretStr

from postengine.config import Settings
from postengine.generation.models import ImageModel
from postengine.generation.providers.base import CheckResult, ImageProvider
from postengine.generation.providers.circuit import CircuitBreaker, GuardedProvider
from postengine.generation.providers.offline import OfflineProvider
from postengine.generation.providers.upstream import UpstreamOptions

log = logging.getLogger("postengine.providers")

FLUX_ONLY = frozenset({ImageModel.FLUX_SCHNELL})

# Upstream provider → (the setting that enables it, the models it can serve by default).
UPSTREAMS: dict[str, tuple[str, frozenset[ImageModel]]] = {
    "gemini": ("PE_GEMINI_API_KEY", frozenset({ImageModel.NANO_BANANA_PRO, ImageModel.GEMINI_3_PRO})),
    "ideogram": ("PE_IDEOGRAM_API_KEY", frozenset({ImageModel.IDEOGRAM_V2})),
    "fal": ("PE_FAL_KEY", FLUX_ONLY),
    "replicate": ("PE_REPLICATE_API_TOKEN", FLUX_ONLY),
    "diffusers": ("PE_DIFFUSERS_MODEL_PATH", FLUX_ONLY),
}
KNOWN_PROVIDERS = (*UPSTREAMS, "offline")


class ProviderConfigError(ValueError):
    pass


@runtime_checkable
class Checkable(Protocol):
    name: str

    def problem(self) -> str | None: ...

    async def check(self) -> CheckResult: ...


@dataclass
class Providers:
    chains: dict[ImageModel, list[ImageProvider]]
    # Every provider instance a chain uses, by name (unwrapped, for `problem()` and `check()`).
    instances: dict[str, ImageProvider] = field(default_factory=dict)
    names: dict[ImageModel, list[str]] = field(default_factory=dict)

    def problems(self) -> list[tuple[str, str, list[ImageModel]]]:
        """(provider, problem, models whose chain uses it) for each statically misconfigured one."""
        found = []
        for name, provider in self.instances.items():
            problem = provider.problem() if isinstance(provider, Checkable) else None
            if problem is not None:
                models = [model for model, names in self.names.items() if name in names]
                found.append((name, problem, models))
        return found

    async def check(self, name: str) -> CheckResult:
        provider = self.instances[name]
        if not isinstance(provider, Checkable):
            return CheckResult(True, "built in, no credentials needed")
        problem = provider.problem()
        if problem is not None:
            return CheckResult(False, problem)
        return await provider.check()


def servable_models(name: str, settings: Settings) -> frozenset[ImageModel]:
    if name == "offline":
        return frozenset(ImageModel)
    if name == "gemini":  # PE_GEMINI_MODELS may route any public model to a Gemini model id
        return frozenset(settings.gemini_models)
    return UPSTREAMS[name][1]


def is_configured(name: str, settings: Settings) -> bool:
    return {
        "gemini": settings.gemini_api_key is not None,
        "ideogram": settings.ideogram_api_key is not None,
        "fal": settings.fal_key is not None,
        "replicate": settings.replicate_api_token is not None,
        "diffusers": settings.diffusers_model_path is not None,
        "offline": True,
    }[name]


def default_chain(model: ImageModel, settings: Settings) -> list[str]:
    chain = [
        name
        for name in UPSTREAMS
        if model in servable_models(name, settings) and is_configured(name, settings)
    ]
    return chain or ["offline"]


def chain_names(settings: Settings) -> dict[ImageModel, list[str]]:
    """Each model's chain from `PE_PROVIDERS` or its automatic default; ProviderConfigError if wrong."""
    chains: dict[ImageModel, list[str]] = {}
    for model in ImageModel:
        names = settings.providers.get(model)
        if names is None:
            chains[model] = default_chain(model, settings)
            continue
        if not names:
            raise ProviderConfigError(f"PE_PROVIDERS: model {model} has an empty provider chain")
        for name in names:
            if name not in KNOWN_PROVIDERS:
                raise ProviderConfigError(
                    f"PE_PROVIDERS: model {model}: unknown provider {name!r} "
                    f"(available: {', '.join(KNOWN_PROVIDERS)})"
                )
            if model not in servable_models(name, settings):
                raise ProviderConfigError(
                    f"PE_PROVIDERS: provider {name!r} cannot serve {model} "
                    f"(it serves: {', '.join(sorted(servable_models(name, settings)))})"
                )
        if len(set(names)) != len(names):
            raise ProviderConfigError(f"PE_PROVIDERS: model {model} names a provider twice")
        chains[model] = list(names)
    return chains


def build_providers(
    settings: Settings,
    http: httpx.AsyncClient,
    cpu: CapacityLimiter,
    options: UpstreamOptions | None = None,
) -> Providers:
    names = chain_names(settings)
    options = options or UpstreamOptions(
        max_retries=settings.provider_max_retries,
        max_download_bytes=settings.provider_max_download_bytes,
    )
    used = _ordered(name for chain in names.values() for name in chain)
    instances = {name: _instance(name, settings, http, cpu, options) for name in used}
    guarded: dict[str, ImageProvider] = {
        name: instance
        if name == "offline"
        else GuardedProvider(
            instance,
            CircuitBreaker(
                name, threshold=settings.circuit_threshold, reset_after=settings.circuit_reset_seconds
            ),
        )
        for name, instance in instances.items()
    }
    chains = {model: [guarded[name] for name in chain] for model, chain in names.items()}
    return Providers(chains=chains, instances=instances, names=names)


def _instance(
    name: str, settings: Settings, http: httpx.AsyncClient, cpu: CapacityLimiter, options: UpstreamOptions
) -> ImageProvider:
    def secret(value: SecretStr | None) -> str | None:
        return None if value is None else value.get_secret_value()

    if name == "offline":
        return OfflineProvider(cpu)
    # Imported on use: a server loads only the adapters its chains name.
    if name == "gemini":
        from postengine.generation.providers.gemini import GeminiConfig, GeminiProvider

        return GeminiProvider(
            GeminiConfig(
                api_key=secret(settings.gemini_api_key),
                base_url=settings.gemini_base_url,
                models=dict(settings.gemini_models),
                image_sizes=dict(settings.gemini_image_sizes),
            ),
            http,
            options,
        )
    if name == "ideogram":
        from postengine.generation.providers.ideogram import IdeogramConfig, IdeogramProvider

        return IdeogramProvider(
            IdeogramConfig(
                api_key=secret(settings.ideogram_api_key),
                base_url=settings.ideogram_base_url,
                model=settings.ideogram_model,
            ),
            http,
            options,
        )
    if name == "fal":
        from postengine.generation.providers.fal import FalConfig, FalProvider

        return FalProvider(
            FalConfig(
                api_key=secret(settings.fal_key),
                model=settings.fal_model,
                base_url=settings.fal_base_url,
                queue_url=settings.fal_queue_url,
                mode=settings.fal_mode,
            ),
            http,
            options,
        )
    if name == "replicate":
        from postengine.generation.providers.replicate import ReplicateConfig, ReplicateProvider

        return ReplicateProvider(
            ReplicateConfig(
                api_token=secret(settings.replicate_api_token),
                model=settings.replicate_model,
                base_url=settings.replicate_base_url,
            ),
            http,
            options,
        )
    if name == "diffusers":
        from postengine.generation.providers.local_flux import LocalFluxProvider

        return LocalFluxProvider(
            settings.diffusers_model_path,
            device=settings.diffusers_device,
            offload=settings.diffusers_offload,
        )
    raise ProviderConfigError(f"unknown provider {name!r}")


async def check_all(providers: Providers, timeout: float = 20.0) -> dict[str, CheckResult]:  # noqa: ASYNC109
    """Every provider's live check, concurrently, each bounded by `timeout`."""
    results: dict[str, CheckResult] = {}

    async def one(name: str) -> None:
        try:
            with anyio.fail_after(timeout):
                results[name] = await providers.check(name)
        except TimeoutError:
            results[name] = CheckResult(False, f"no answer within {timeout:g} s")
        except Exception as exc:  # a check must report, never crash the command or the server
            log.exception("checking provider %s failed", name)
            results[name] = CheckResult(False, f"check failed: {type(exc).__name__}")

    async with anyio.create_task_group() as group:
        for name in providers.instances:
            group.start_soon(one, name)
    return {name: results[name] for name in providers.instances}


def serving(providers: Providers, results: dict[str, CheckResult]) -> dict[ImageModel, str | None]:
    """For each model, the first provider of its chain whose check passed (None: no one can)."""
    return {
        model: next((name for name in names if results[name].ok), None)
        for model, names in providers.names.items()
    }


async def log_checks(providers: Providers) -> None:
    """At start-up, in the background: check the upstreams that have credentials and log the result."""
    upstream = Providers(
        chains={},
        instances={
            name: provider
            for name, provider in providers.instances.items()
            if name in UPSTREAMS
            and name != "diffusers"
            and isinstance(provider, Checkable)
            and provider.problem() is None
        },
    )
    if not upstream.instances:
        return
    for name, result in (await check_all(upstream)).items():
        if result.ok:
            log.info("provider %s: %s", name, result.detail)
        else:
            log.error("provider %s failed its check: %s", name, result.detail)


def _ordered(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def report_problems(providers: Providers) -> None:
    """One log line per misconfigured provider at start-up: what is wrong and which models it hurts."""
    for name, problem, models in providers.problems():
        log.error(
            "provider %s is misconfigured: %s; requests for %s go to the next provider of the "
            "chain, or get 503, until it is fixed (`postengine providers check` tells more)",
            name,
            problem,
            ", ".join(models),
        )
