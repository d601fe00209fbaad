"""Routing configuration: model → provider chain, automatic defaults, config errors, checks."""

import anyio
import httpx
import pytest
from anyio import CapacityLimiter

from postengine.config import Settings
from postengine.generation.models import ImageModel
from postengine.generation.providers import CheckResult
from postengine.generation.providers.circuit import GuardedProvider
from postengine.generation.providers.offline import OfflineProvider
from postengine.generation.providers.registry import (
    ProviderConfigError,
    Providers,
    build_providers,
    chain_names,
    check_all,
    serving,
)

ENV = (
    "PE_PROVIDERS",
    "PE_GEMINI_API_KEY",
    "PE_IDEOGRAM_API_KEY",
    "PE_FAL_KEY",
    "PE_REPLICATE_API_TOKEN",
    "PE_DIFFUSERS_MODEL_PATH",
    "PE_GEMINI_MODELS",
    "PE_GEMINI_IMAGE_SIZES",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_without_credentials_every_model_is_drawn_offline() -> None:
    assert chain_names(settings()) == {model: ["offline"] for model in ImageModel}


def test_credentials_switch_models_to_their_upstreams_without_offline_fallback() -> None:
    chains = chain_names(settings(gemini_api_key="g", fal_key="f", replicate_api_token="r"))
    assert chains[ImageModel.NANO_BANANA_PRO] == ["gemini"]
    assert chains[ImageModel.GEMINI_3_PRO] == ["gemini"]
    assert chains[ImageModel.FLUX_SCHNELL] == ["fal", "replicate"]
    assert chains[ImageModel.IDEOGRAM_V2] == ["offline"]  # no Ideogram key: still the offline draft


def test_chains_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PE_PROVIDERS", '{"flux-schnell": ["replicate", "fal", "offline"]}')
    monkeypatch.setenv("PE_IDEOGRAM_API_KEY", "i")
    chains = chain_names(settings())
    assert chains[ImageModel.FLUX_SCHNELL] == ["replicate", "fal", "offline"]
    assert chains[ImageModel.IDEOGRAM_V2] == ["ideogram"]  # not named: automatic


def test_gemini_model_ids_are_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PE_GEMINI_MODELS", '{"gemini-3-pro": "gemini-2.5-flash-image"}')
    configured = settings(gemini_api_key="g")
    assert configured.gemini_models[ImageModel.GEMINI_3_PRO] == "gemini-2.5-flash-image"
    assert configured.gemini_models[ImageModel.NANO_BANANA_PRO] == "gemini-3-pro-image-preview"


@pytest.mark.parametrize(
    ("chains", "message"),
    [
        ({"flux-schnell": ["dall-e"]}, "unknown provider 'dall-e'"),
        ({"ideogram-v2": ["fal"]}, "provider 'fal' cannot serve ideogram-v2"),
        ({"nano-banana-pro": ["ideogram"]}, "provider 'ideogram' cannot serve nano-banana-pro"),
        ({"flux-schnell": []}, "empty provider chain"),
        ({"flux-schnell": ["fal", "fal"]}, "names a provider twice"),
    ],
)
def test_wrong_chains_are_refused_with_one_clear_line(chains: dict[str, list[str]], message: str) -> None:
    with pytest.raises(ProviderConfigError, match=message):
        chain_names(settings(providers=chains))


def test_unknown_model_name_in_the_map_is_a_settings_error() -> None:
    with pytest.raises(ValueError, match="dall-e-3"):
        settings(providers={"dall-e-3": ["offline"]})


async def test_build_guards_every_upstream_and_shares_instances() -> None:
    async with httpx.AsyncClient() as http:
        built = build_providers(
            settings(
                providers={"flux-schnell": ["fal", "offline"], "ideogram-v2": ["offline"]},
                gemini_api_key="g",
                fal_key="f",
            ),
            http,
            CapacityLimiter(1),
        )
    flux = built.chains[ImageModel.FLUX_SCHNELL]
    assert [p.name for p in flux] == ["fal", "offline"]
    assert isinstance(flux[0], GuardedProvider)
    assert isinstance(flux[1], OfflineProvider)  # nothing to guard
    nano, gemini3 = built.chains[ImageModel.NANO_BANANA_PRO][0], built.chains[ImageModel.GEMINI_3_PRO][0]
    assert nano is gemini3  # one provider, one circuit breaker
    assert set(built.instances) == {"fal", "offline", "gemini"}
    assert built.problems() == []


async def test_missing_credentials_are_reported_per_provider_with_the_models_they_hurt() -> None:
    async with httpx.AsyncClient() as http:
        built = build_providers(
            settings(providers={"flux-schnell": ["replicate", "offline"], "gemini-3-pro": ["gemini"]}),
            http,
            CapacityLimiter(1),
        )
        problems = {name: (problem, models) for name, problem, models in built.problems()}
        assert set(problems) == {"replicate", "gemini"}
        assert "PE_REPLICATE_API_TOKEN" in problems["replicate"][0]
        assert problems["gemini"][1] == [ImageModel.GEMINI_3_PRO]
        results = await check_all(built)
    assert results["offline"].ok
    assert not results["replicate"].ok
    assert "PE_REPLICATE_API_TOKEN" in results["replicate"].detail
    chosen = serving(built, results)
    assert chosen[ImageModel.FLUX_SCHNELL] == "offline"
    assert chosen[ImageModel.GEMINI_3_PRO] is None
    assert chosen[ImageModel.IDEOGRAM_V2] == "offline"


class _Hanging:
    name = "hanging"

    def problem(self) -> str | None:
        return None

    async def check(self) -> CheckResult:
        await anyio.sleep(60)
        raise AssertionError("unreachable")

    async def generate(self, request: object) -> object:
        raise AssertionError("unused")


class _Broken(_Hanging):
    name = "broken"

    async def check(self) -> CheckResult:
        raise RuntimeError("bug in a check")


async def test_checks_are_bounded_and_never_raise() -> None:
    providers = Providers(chains={}, instances={"hanging": _Hanging(), "broken": _Broken()})  # type: ignore[dict-item]
    results = await check_all(providers, timeout=0.05)
    assert not results["hanging"].ok and "no answer" in results["hanging"].detail
    assert not results["broken"].ok and "RuntimeError" in results["broken"].detail
