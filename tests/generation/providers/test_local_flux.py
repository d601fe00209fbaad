"""LocalFluxProvider: configuration problems, and the real diffusers path on a tiny random FLUX pipeline.

The tiny pipeline (tiny_flux.py) is built from configs with random weights and saved to a folder, so
the provider loads it exactly as it loads an operator's FLUX.1 [schnell] folder, on the CPU, with no
hub access. Tests that need torch and diffusers skip without them, except in CI (`CI` set), where
their absence is a failure: CI installs the `local` extra.
"""

import io
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from PIL import Image

from postengine.generation.models import AspectRatio, ImageModel, output_size
from postengine.generation.providers import ImageRequest, ProviderFailed, ProviderMisconfigured, local_flux
from postengine.generation.providers.local_flux import LocalFluxProvider
from tests.api.helpers import client_with
from tests.generation.providers.tiny_flux import save_tiny_flux

GEN = "/api/v1/ai/generate-image"


def require_local_extra() -> None:
    try:
        import diffusers  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must install postengine[local] for the FLUX tests: {exc}")
        pytest.skip(
            f"torch/diffusers not installed ({exc}); pip install 'postengine[local]' (CI=1 makes this fail)"
        )


@pytest.fixture(scope="module")
def tiny_flux_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    require_local_extra()
    import torch

    # One intra-op thread: on a 2-core machine shared with other work, torch's spinning worker threads
    # made each tiny step 10-20× slower (0.07 s against 1-2 s for a 64×64 image, measured).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield save_tiny_flux(tmp_path_factory.mktemp("flux") / "FLUX.1-schnell-tiny")
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def provider(tiny_flux_path: Path) -> LocalFluxProvider:
    """One provider for the module: it loads the pipeline once, as the server does."""
    return LocalFluxProvider(tiny_flux_path, device="cpu")


def request(
    width: int, height: int, prompt: str = "a red fox in snow", deadline: float | None = None
) -> ImageRequest:
    return ImageRequest(ImageModel.FLUX_SCHNELL, prompt, AspectRatio.SQUARE, width, height, deadline)


def fake_flux_folder(tmp_path: Path, class_name: str = "FluxPipeline") -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": class_name}))
    return folder


# Configuration problems: found before torch is imported, so these run without the extra too.


@pytest.mark.parametrize(
    ("make_path", "expected"),
    [
        (lambda tmp: None, "PE_DIFFUSERS_MODEL_PATH is not set"),
        (lambda tmp: tmp / "absent", "is not an existing local directory"),
        # A hub id is refused like any missing folder: nothing is ever downloaded.
        (lambda tmp: Path("black-forest-labs/FLUX.1-schnell"), "is not an existing local directory"),
        (lambda tmp: tmp, "has no model_index.json"),
        (lambda tmp: fake_flux_folder(tmp, "StableDiffusionPipeline"), "holds a StableDiffusionPipeline"),
    ],
    ids=["unset", "missing", "hub-id", "no-model-index", "other-pipeline"],
)
async def test_misconfiguration_is_reported_and_raised(tmp_path: Path, make_path, expected: str) -> None:
    flux = LocalFluxProvider(make_path(tmp_path))
    problem = flux.problem()
    assert problem is not None and expected in problem
    assert problem.startswith("PE_DIFFUSERS_MODEL_PATH")
    with pytest.raises(ProviderMisconfigured, match=expected):
        await flux.generate(request(64, 64))
    result = await flux.check()
    assert not result.ok and expected in result.detail


async def test_bad_device_setting(tmp_path: Path) -> None:
    flux = LocalFluxProvider(fake_flux_folder(tmp_path), device="gpu0")
    assert flux.problem() == "PE_DIFFUSERS_DEVICE must be auto, cpu, cuda or cuda:N, not 'gpu0'"
    with pytest.raises(ProviderMisconfigured, match="PE_DIFFUSERS_DEVICE"):
        await flux.generate(request(64, 64))


async def test_missing_extra_names_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "diffusers", None)  # what find_spec sees for an absent package
    flux = LocalFluxProvider(fake_flux_folder(tmp_path))
    problem = flux.problem()
    assert problem is not None and "diffusers" in problem
    assert problem.endswith("not installed: pip install 'postengine[local]'")
    with pytest.raises(ProviderMisconfigured, match=r"postengine\[local\]"):
        await flux.generate(request(64, 64))


# The real path: diffusers loads the tiny pipeline from its folder and runs it on the CPU.


async def test_generates_the_requested_size(provider: LocalFluxProvider) -> None:
    assert provider.problem() is None
    for width, height in [(816, 1024), (96, 64)]:  # 1024×576 goes through HTTP below
        image = await provider.generate(request(width, height))
        assert isinstance(image, Image.Image)
        assert image.size == (width, height)
        assert image.mode == "RGB"


async def test_rounds_up_to_multiples_of_16(provider: LocalFluxProvider) -> None:
    image = await provider.generate(request(100, 50))
    assert image.size == (112, 64)  # never smaller than asked: the caller downscales or crops


async def test_same_prompt_same_image_other_prompt_other_image(provider: LocalFluxProvider) -> None:
    first = await provider.generate(request(128, 128, "a lighthouse at dusk"))
    again = await provider.generate(request(128, 128, "a lighthouse at dusk"))
    other = await provider.generate(request(128, 128, "a bowl of ramen"))
    assert first.tobytes() == again.tobytes()
    assert first.tobytes() != other.tobytes()
    colors = first.getcolors(maxcolors=100)
    assert colors is None  # more than 100 colours: a real decoded image, not a flat fill


async def test_check_loads_and_describes(provider: LocalFluxProvider, tiny_flux_path: Path) -> None:
    result = await provider.check()
    assert result.ok
    assert result.detail == f"FluxPipeline at {tiny_flux_path}, device cpu, float32"


async def test_concurrent_first_requests_load_once(
    tiny_flux_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[Path] = []
    real_load = local_flux._load

    def counting_load(path: Path, device: str, offload: bool) -> object:
        loads.append(path)
        return real_load(path, device, offload)

    monkeypatch.setattr(local_flux, "_load", counting_load)
    flux = LocalFluxProvider(tiny_flux_path, device="auto")  # no CUDA here: auto is the CPU
    sizes: list[tuple[int, int]] = []

    async def one() -> None:
        sizes.append((await flux.generate(request(64, 64))).size)

    async with anyio.create_task_group() as tasks:
        for _ in range(3):
            tasks.start_soon(one)
    assert loads == [tiny_flux_path]
    assert sizes == [(64, 64)] * 3


async def test_broken_folder_is_a_misconfiguration_and_not_reloaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_local_extra()
    folder = fake_flux_folder(tmp_path)  # a model_index.json and no components
    loads: list[Path] = []
    real_load = local_flux._load

    def counting_load(path: Path, device: str, offload: bool) -> object:
        loads.append(path)
        return real_load(path, device, offload)

    monkeypatch.setattr(local_flux, "_load", counting_load)
    flux = LocalFluxProvider(folder, device="cpu")
    assert flux.problem() is None
    for _ in range(2):
        with pytest.raises(
            ProviderMisconfigured, match="cannot load a FluxPipeline from PE_DIFFUSERS_MODEL_PATH"
        ):
            await flux.generate(request(64, 64))
    assert loads == [folder]
    assert not (await flux.check()).ok


async def test_cuda_device_without_cuda_is_a_misconfiguration(tiny_flux_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = await LocalFluxProvider(tiny_flux_path, device="cuda").check()
    assert not result.ok
    assert result.detail == "PE_DIFFUSERS_DEVICE is cuda, but torch sees no CUDA device"


@pytest.mark.parametrize(
    ("error", "message", "logged"),
    [
        ("oom", "out of GPU memory on cpu", "FLUX inference ran out of GPU memory at 64x64"),
        ("runtime", "FLUX inference failed: RuntimeError", "FLUX inference failed"),
    ],
)
async def test_inference_errors_are_failures(
    tiny_flux_path: Path, caplog: pytest.LogCaptureFixture, error: str, message: str, logged: str
) -> None:
    import torch

    flux = LocalFluxProvider(tiny_flux_path, device="cpu")
    assert (await flux.check()).ok
    assert flux._loaded is not None

    def broken_step(*args: object, **kwargs: object) -> None:
        if error == "oom":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    flux._loaded.pipeline.transformer.forward = broken_step
    with pytest.raises(ProviderFailed, match=f"^{message}$"):
        await flux.generate(request(64, 64))
    assert logged in caplog.text
    assert "Traceback" in caplog.text


async def test_passed_deadline_stops_the_job(provider: LocalFluxProvider) -> None:
    with pytest.raises(ProviderFailed, match="deadline"):
        await provider.generate(request(64, 64, deadline=anyio.current_time() - 1))
    # The provider is free again for the next job.
    assert (await provider.generate(request(64, 64))).size == (64, 64)


async def test_cancellation_ends_the_job_between_steps(tiny_flux_path: Path) -> None:
    flux = LocalFluxProvider(tiny_flux_path, device="cpu")
    assert (await flux.check()).ok
    assert flux._loaded is not None
    pipeline = flux._loaded.pipeline
    steps: list[int] = []
    decodes: list[int] = []
    transformer_forward, vae_decode = pipeline.transformer.forward, pipeline.vae.decode

    def counted_forward(*args: object, **kwargs: object) -> object:
        steps.append(1)
        return transformer_forward(*args, **kwargs)

    def counted_decode(*args: object, **kwargs: object) -> object:
        decodes.append(1)
        return vae_decode(*args, **kwargs)

    pipeline.transformer.forward, pipeline.vae.decode = counted_forward, counted_decode
    with anyio.move_on_after(0.01) as scope:
        await flux.generate(request(1024, 1024))
    assert scope.cancelled_caught
    assert len(steps) <= 1 and decodes == []  # stopped after the step under way, of 4
    assert (await flux.generate(request(64, 64))).size == (64, 64)
    assert len(steps) <= 5 and decodes == [1]


async def test_generate_image_over_http(settings, clock, make_tenant, provider: LocalFluxProvider) -> None:
    tenant = await make_tenant()
    async with client_with(settings, clock, provider) as http:
        response = await http.post(
            GEN,
            headers=tenant.headers,
            json={"prompt": "a sailboat on a calm lake", "model": "flux-schnell", "aspect_ratio": "16:9"},
        )
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        width, height = output_size(ImageModel.FLUX_SCHNELL, AspectRatio.WIDE)
        assert (data["width"], data["height"], data["credits_used"]) == (width, height, 1)
        served = await http.get(data["image_url"].removeprefix("http://testserver"))
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/webp"
    with Image.open(io.BytesIO(served.content)) as image:
        assert image.format == "WEBP"
        assert image.size == (width, height) == (1024, 576)
