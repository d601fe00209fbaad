"""FLUX.1 [schnell] on the operator's own GPU, with diffusers, from a local folder.

PROVIDERS.md, "Local open weights": `FluxPipeline` with `guidance_scale=0.0`, 4 steps,
`max_sequence_length<=256`, sizes in multiples of 16, bf16. postengine never downloads weights: the
operator points `PE_DIFFUSERS_MODEL_PATH` at a folder holding the pipeline (`model_index.json` and
its component folders), and loading passes `local_files_only=True`.

torch and diffusers are the optional extra `postengine[local]`. They are imported inside functions,
so this module imports (and the rest of postengine runs) without them; `problem()` says when they
are missing. The pipeline loads once, lazily, on the first request or `check()`, in a worker thread;
inference runs in a worker thread too, one job at a time by default (a GPU runs one FLUX job well
and two badly). When the generation is cancelled or its deadline passes, the running job stops at
the end of its current step, so that the GPU is free for the next one.
"""

import hashlib
import importlib.util
import json
import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
from PIL import Image

from postengine.generation.providers.base import (
    CheckResult,
    ImageRequest,
    ProviderFailed,
    ProviderMisconfigured,
)

log = logging.getLogger("postengine.providers")

MODEL_PATH_SETTING = "PE_DIFFUSERS_MODEL_PATH"
DEVICE_SETTING = "PE_DIFFUSERS_DEVICE"
OFFLOAD_SETTING = "PE_DIFFUSERS_OFFLOAD"
INSTALL_HINT = "pip install 'postengine[local]'"
PIPELINE_CLASS = "FluxPipeline"
# schnell takes at most 256 T5 tokens (PROVIDERS.md; diffusers' Flux pipeline docs).
MAX_SEQUENCE_LENGTH = 256
# The VAE downsamples 8× and the transformer packs 2×2 latent patches (PROVIDERS.md).
SIZE_MULTIPLE = 16
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


@dataclass(frozen=True, slots=True)
class _Loaded:
    pipeline: Any
    device: str
    dtype: str
    # A diffusers pipeline is not thread-safe (its scheduler keeps the step index): one call at a
    # time, even when the injected limiter lets more threads in.
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Stopped(Exception):
    """Raised from the step callback to end a job whose generation was cancelled or ran out of time."""


class LocalFluxProvider:
    name = "diffusers"

    def __init__(
        self,
        model_path: Path | None,
        *,
        device: str = "auto",
        offload: bool = False,
        limiter: anyio.CapacityLimiter | None = None,
        steps: int = 4,
        max_sequence_length: int = MAX_SEQUENCE_LENGTH,
    ) -> None:
        self._model_path = model_path
        self._device = device
        self._offload = offload
        self._limiter = limiter if limiter is not None else anyio.CapacityLimiter(1)
        self._steps = steps
        self._max_sequence_length = min(max_sequence_length, MAX_SEQUENCE_LENGTH)
        self._load_lock = anyio.Lock()
        self._loaded: _Loaded | None = None
        # A failed load is remembered: retrying a 34 GB load on every request would hold the GPU
        # for nothing, and what fixes it (a setting, a file, a free GPU) comes with a restart.
        self._load_error: ProviderMisconfigured | None = None

    def problem(self) -> str | None:
        """What is wrong with the configuration, found without importing torch; None if nothing."""
        path = self._model_path
        if path is None:
            return f"{MODEL_PATH_SETTING} is not set"
        if not path.is_dir():
            # Also what a hub id ("black-forest-labs/FLUX.1-schnell") meets: weights are never downloaded.
            return f"{MODEL_PATH_SETTING} ({path}) is not an existing local directory"
        index = path / "model_index.json"
        if not index.is_file():
            return f"{MODEL_PATH_SETTING} ({path}) has no model_index.json: not a diffusers pipeline folder"
        try:
            class_name = json.loads(index.read_text(encoding="utf-8")).get("_class_name")
        except (OSError, ValueError, AttributeError):
            return f"{MODEL_PATH_SETTING} ({path}): model_index.json is not readable JSON"
        if class_name != PIPELINE_CLASS:
            return f"{MODEL_PATH_SETTING} ({path}) holds a {class_name}, not a {PIPELINE_CLASS}"
        if not _DEVICE.fullmatch(self._device):
            return f"{DEVICE_SETTING} must be auto, cpu, cuda or cuda:N, not {self._device!r}"
        missing = [
            name for name in ("torch", "diffusers", "transformers") if importlib.util.find_spec(name) is None
        ]
        if missing:
            return f"{', '.join(missing)} not installed: {INSTALL_HINT}"
        if self._steps < 1:
            return f"steps must be at least 1, not {self._steps}"
        return None

    async def check(self) -> CheckResult:
        try:
            loaded = await self._pipeline()
        except ProviderMisconfigured as exc:
            return CheckResult(ok=False, detail=str(exc))
        offload = ", model CPU offload" if self._offload and loaded.device != "cpu" else ""
        return CheckResult(
            ok=True,
            detail=f"{PIPELINE_CLASS} at {self._model_path}, device {loaded.device}, {loaded.dtype}{offload}",
        )

    async def generate(self, request: ImageRequest) -> Image.Image:
        loaded = await self._pipeline()
        stop = threading.Event()

        async def stop_when_done() -> None:
            try:
                if request.deadline is None:
                    await anyio.sleep_forever()
                else:
                    await anyio.sleep_until(request.deadline)
            finally:  # the deadline, a cancellation from outside, or the job's own end
                stop.set()

        outcome: Image.Image | Exception
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(stop_when_done)
            try:
                outcome = await anyio.to_thread.run_sync(
                    _infer,
                    loaded,
                    request.prompt,
                    self._job_size(request),
                    self._steps,
                    self._max_sequence_length,
                    stop,
                    limiter=self._limiter,
                )
            except Exception as exc:  # raised below, outside the group, which would wrap it in a group
                outcome = exc
            tasks.cancel_scope.cancel()
        if isinstance(outcome, _Stopped):
            await anyio.lowlevel.checkpoint()  # a cancellation from outside is raised as one
            raise ProviderFailed("FLUX generation passed its deadline")
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    @staticmethod
    def _job_size(request: ImageRequest) -> tuple[int, int]:
        # Round up, never down: the caller downscales or crops to the exact size it asked for.
        return _round_up(request.width), _round_up(request.height)

    async def _pipeline(self) -> _Loaded:
        if self._loaded is not None:
            return self._loaded
        async with self._load_lock:  # concurrent first requests: one loads, the others wait for it
            if self._loaded is None and self._load_error is None:
                problem = self.problem()
                if problem is not None:
                    raise ProviderMisconfigured(problem)
                assert self._model_path is not None  # problem() said so
                try:
                    self._loaded = await anyio.to_thread.run_sync(
                        _load, self._model_path, self._device, self._offload, limiter=self._limiter
                    )
                except ProviderMisconfigured as exc:
                    self._load_error = exc
            if self._load_error is not None:
                raise self._load_error
            assert self._loaded is not None
            return self._loaded


def _round_up(size: int) -> int:
    return -(-size // SIZE_MULTIPLE) * SIZE_MULTIPLE


def seed_for(prompt: str) -> int:
    """The same prompt gives the same image (a 63-bit seed: torch takes a signed 64-bit one)."""
    return int.from_bytes(hashlib.sha256(prompt.encode("utf-8")).digest()[:8], "big") >> 1


def _load(path: Path, device_setting: str, offload: bool) -> _Loaded:
    try:
        import torch
        from diffusers import FluxPipeline
    except ImportError as exc:  # installed but broken (find_spec found it)
        log.exception("importing torch/diffusers failed")
        raise ProviderMisconfigured(f"torch/diffusers cannot be imported ({exc}): {INSTALL_HINT}") from None

    if device_setting == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    else:
        device = device_setting
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ProviderMisconfigured(f"{DEVICE_SETTING} is {device}, but torch sees no CUDA device")
    on_gpu = device != "cpu"
    # bf16 as PROVIDERS.md says; float32 on the CPU, where bf16 kernels are slow or missing.
    dtype = torch.bfloat16 if on_gpu else torch.float32
    try:
        # `dtype`, not the deprecated `torch_dtype` (diffusers 0.42); `local_files_only`: never download.
        pipeline = FluxPipeline.from_pretrained(str(path), local_files_only=True, dtype=dtype)
        if offload and on_gpu:
            # Each model moves to the GPU only while it runs: the GPU needs room for the largest one
            # (the transformer) instead of all of them, at the cost of the copies.
            pipeline.enable_model_cpu_offload(device=device)
        else:
            pipeline.to(device)
    except torch.cuda.OutOfMemoryError:
        log.exception("loading the FLUX pipeline from %s ran out of GPU memory", path)
        torch.cuda.empty_cache()
        raise ProviderMisconfigured(
            f"the FLUX pipeline does not fit in GPU memory on {device}: set {OFFLOAD_SETTING}=true"
        ) from None
    except Exception as exc:
        log.exception("loading the FLUX pipeline from %s failed", path)
        raise ProviderMisconfigured(
            f"cannot load a {PIPELINE_CLASS} from {MODEL_PATH_SETTING} ({path}): {type(exc).__name__}: {str(exc)[:200]}"
        ) from None
    pipeline.set_progress_bar_config(disable=True)
    return _Loaded(pipeline, device, str(dtype).removeprefix("torch."))


def _infer(
    loaded: _Loaded,
    prompt: str,
    size: tuple[int, int],
    steps: int,
    max_sequence_length: int,
    stop: threading.Event,
) -> Image.Image:
    import torch

    def stop_if_asked(pipeline: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        if stop.is_set():
            raise _Stopped
        return tensors

    if stop.is_set():
        raise _Stopped
    width, height = size
    # A CPU generator draws the same starting noise whatever the device, so a seed means one image.
    generator = torch.Generator("cpu").manual_seed(seed_for(prompt))
    try:
        with loaded.lock:
            result = loaded.pipeline(
                prompt=prompt,
                width=width,
                height=height,
                guidance_scale=0.0,  # schnell is guidance-distilled: PROVIDERS.md
                num_inference_steps=steps,
                max_sequence_length=max_sequence_length,
                generator=generator,
                output_type="pil",
                callback_on_step_end=stop_if_asked,
            )
    except _Stopped:
        raise
    except torch.cuda.OutOfMemoryError:
        log.exception("FLUX inference ran out of GPU memory at %dx%d", width, height)
        torch.cuda.empty_cache()
        raise ProviderFailed(f"out of GPU memory on {loaded.device}") from None
    except Exception as exc:
        log.exception("FLUX inference failed")
        raise ProviderFailed(f"FLUX inference failed: {type(exc).__name__}") from None
    image: Image.Image = result.images[0]
    return image
