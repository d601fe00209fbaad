"""The offline renderer as a provider: no keys, no network, deterministic (PROVIDERS.md)."""

import anyio.to_thread
from anyio import CapacityLimiter
from PIL import Image

from postengine.generation.providers.base import ImageRequest
from postengine.generation.render import render_offline


class OfflineProvider:
    name = "offline"

    def __init__(self, limiter: CapacityLimiter) -> None:
        self._limiter = limiter

    async def generate(self, request: ImageRequest) -> Image.Image:
        # Drawing is CPU work: a worker thread, bounded by the CPU limiter, never the event loop.
        return await anyio.to_thread.run_sync(
            render_offline,
            str(request.model),
            request.prompt,
            request.width,
            request.height,
            limiter=self._limiter,
        )
