"""What a real provider's answer costs postengine itself, next to the offline renderer in the same run.

The upstream is a fake behind `httpx.MockTransport` (no network, no waiting for a model): each
figure is the CPU work on our side for one image — JSON parsing, base64, decoding the PNG the
provider sends, the retry/circuit wrapper, the LANCZOS downscale and the WebP encode — which is what
a server pays per generation on top of the provider's own latency.

Usage::

    python bench/provider_path.py [--runs 7]

Prints the median per path and its ratio to the offline renderer at the same model size.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import statistics
import time

import httpx
import orjson
from anyio import CapacityLimiter
from PIL import Image, ImageFilter

from postengine.generation.models import AspectRatio, ImageModel, output_size
from postengine.generation.providers.base import ImageRequest
from postengine.generation.providers.circuit import CircuitBreaker, GuardedProvider
from postengine.generation.providers.fal import FalConfig, FalProvider
from postengine.generation.providers.gemini import GeminiConfig, GeminiProvider
from postengine.generation.providers.offline import OfflineProvider
from postengine.generation.service import _finish

PROMPT = "A calm harbour at dawn, fishing boats, soft mist, warm light"


def photo_like(width: int, height: int) -> bytes:
    """A PNG that compresses like a photo (smooth gradients plus grain), as upstreams send."""
    base = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    noise = Image.effect_noise((width, height), 40).convert("RGB")
    image = Image.blend(base, noise, 0.3).filter(ImageFilter.SMOOTH)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def gemini_transport(png: bytes) -> httpx.MockTransport:
    body = orjson.dumps(
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [{"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png).decode()}}],
                    },
                    "finishReason": "STOP",
                }
            ]
        }
    )
    return httpx.MockTransport(lambda request: httpx.Response(200, content=body))


def fal_transport(png: bytes) -> httpx.MockTransport:
    uri = "data:image/png;base64," + base64.b64encode(png).decode()
    body = orjson.dumps({"images": [{"url": uri, "width": 1024, "height": 1024}], "has_nsfw_concepts": [False]})
    return httpx.MockTransport(lambda request: httpx.Response(200, content=body))


async def timed(provider, request: ImageRequest, runs: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(median ms of provider.generate, median ms of downscale + encode)."""
    fetch, finish = [], []
    for i in range(runs + 1):
        start = time.perf_counter()
        image = await provider.generate(request)
        middle = time.perf_counter()
        _finish(image, request.width, request.height, 82)
        end = time.perf_counter()
        if i:  # the first run warms fonts and code paths
            fetch.append((middle - start) * 1000)
            finish.append((end - middle) * 1000)
    return statistics.median(fetch), statistics.median(finish)


async def main(runs: int) -> None:
    cases = [
        ("nano-banana-pro", AspectRatio.WIDE, (2752, 1536), "gemini"),
        ("gemini-3-pro", AspectRatio.SQUARE, (2048, 2048), "gemini"),
        ("flux-schnell", AspectRatio.SQUARE, (1024, 1024), "fal"),
    ]
    print(f"{'path':<40} {'provider ms':>12} {'resize+encode ms':>17} {'total ms':>9} {'vs offline':>11}")
    for model_name, ratio, upstream_size, kind in cases:
        model = ImageModel(model_name)
        width, height = output_size(model, ratio)
        request = ImageRequest(model, PROMPT, ratio, width, height)
        offline = await timed(OfflineProvider(CapacityLimiter(1)), request, runs)
        png = photo_like(*upstream_size)
        async with httpx.AsyncClient(
            transport=gemini_transport(png) if kind == "gemini" else fal_transport(png)
        ) as http:
            adapter = (
                GeminiProvider(GeminiConfig(api_key="bench-key"), http)
                if kind == "gemini"
                else FalProvider(FalConfig(api_key="bench-key"), http)
            )
            real = await timed(GuardedProvider(adapter, CircuitBreaker(kind)), request, runs)
        base = sum(offline)
        for label, (fetch, finish) in (
            (f"offline {model_name} {ratio}", offline),
            (f"{kind} {model_name} {ratio} ({upstream_size[0]}x{upstream_size[1]} PNG)", real),
        ):
            total = fetch + finish
            print(f"{label:<40} {fetch:>12.1f} {finish:>17.1f} {total:>9.1f} {total / base:>10.2f}x")
        print(f"{'':<40} PNG from the upstream: {len(png) / 1024:.0f} KiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    asyncio.run(main(parser.parse_args().runs))
