"""Apps for the operations tests: their own settings, served with their lifespan."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI

from postengine.config import Settings
from tests.conftest import SECRET


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as http,
    ):
        yield http


def ops_settings(tmp_path: Path, database_url: str, **extra: object) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        storage_url=f"file://{tmp_path / 'media'}",
        secret_key=SECRET,  # type: ignore[arg-type]
        public_media_url="http://testserver/cdn",
        log_json=False,
        **extra,  # type: ignore[arg-type]
    )
