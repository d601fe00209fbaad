"""Helpers for the contract tests: apps with stand-in providers at the upstream edge."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from PIL import Image

from postengine.app import create_app
from postengine.config import Settings
from postengine.generation.models import ImageModel
from postengine.generation.providers import ImageProvider, ImageRequest, ProviderError
from postengine.kit.clock import Clock


class ScriptedProvider:
    """The upstream edge, scripted: raises the given error, or returns a flat image of the size asked."""

    name = "scripted"

    def __init__(self, error: ProviderError | None = None, *, oversize: int = 1) -> None:
        self.error = error
        self.oversize = oversize
        self.calls: list[ImageRequest] = []

    async def generate(self, request: ImageRequest) -> Image.Image:
        self.calls.append(request)
        if self.error is not None:
            raise self.error
        return Image.new("RGB", (request.width * self.oversize, request.height * self.oversize), (200, 40, 90))


@asynccontextmanager
async def client_with(
    settings: Settings, clock: Clock, provider: ImageProvider
) -> AsyncIterator[httpx.AsyncClient]:
    providers: dict[ImageModel, list[ImageProvider]] = {model: [provider] for model in ImageModel}
    app = create_app(settings, clock=clock, providers=providers, background=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http
