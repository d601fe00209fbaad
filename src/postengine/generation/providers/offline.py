"""The offline renderer as a provider: no keys, no network, deterministic (PROVIDERS.md)."""

import time

import anyio.to_thread
from anyio import CapacityLimiter
from PIL import Image

from postengine.generation.providers.base import ImageRequest
from postengine.generation.render import render_offline

RENDER_MS = "postengine.render_ms"


class OfflineProvider:
    name = "offline"

    def __init__(self, limiter: CapacityLimiter) -> None:
        self._limiter = limiter

    async def generate(self, request: ImageRequest) -> Image.Image:
        # Drawing is CPU work: a worker thread, bounded by the CPU limiter, never the event loop.
        return await anyio.to_thread.run_sync(_render, request, limiter=self._limiter)


def _render(request: ImageRequest) -> Image.Image:
    start = time.perf_counter()
    image = render_offline(str(request.model), request.prompt, request.width, request.height)
    # Pure drawing time, without the thread hop, for the `Server-Timing` header.
    image.info[RENDER_MS] = (time.perf_counter() - start) * 1000
    return image
