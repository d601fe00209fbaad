"""Property: nothing a client sends to POST /ai/generate-image causes a server error.

Hypothesis generates arbitrary JSON bodies (and raw bytes); every response must be one of the
documented statuses, in the envelope. Runs on SQLite and PostgreSQL.
"""

import asyncio
import json
import time

import httpx
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from postengine.app import create_app
from postengine.cli import ensure_demo
from postengine.config import Settings
from postengine.db import Database
from postengine.generation.models import AspectRatio, ImageModel
from postengine.kit.clock import FakeClock

GEN = "/api/v1/ai/generate-image"
DOCUMENTED = {200, 400, 402, 413, 415, 429}
CONTENT_TYPES = [
    "application/json",
    "text/plain",
    "",
    "application/x-www-form-urlencoded",
    "application/json; charset=latin-1",
]
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "prompt": st.text(max_size=60) | json_values,
        "model": st.sampled_from([m.value for m in ImageModel]) | json_values,
        "aspect_ratio": st.sampled_from([r.value for r in AspectRatio]) | json_values,
        "extra": json_values,
    },
)


async def _demo_key(settings: Settings) -> str:
    db = Database(settings.database_url)
    try:
        return (await ensure_demo(settings, db))[1]
    finally:
        await db.dispose()


def test_no_body_causes_a_server_error(settings: Settings, db: Database) -> None:
    """A sync test driving its own event loop, so that Hypothesis can run each example."""
    settings.demo_key = type(settings.demo_key)("pe_live_" + "f00d" * 8)
    clock = FakeClock(time.time())
    app = create_app(settings, clock=clock, background=False)
    loop = asyncio.new_event_loop()
    lifespan = app.router.lifespan_context(app)
    loop.run_until_complete(lifespan.__aenter__())
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    try:
        headers = {"Authorization": f"Bearer {loop.run_until_complete(_demo_key(settings))}"}

        def post(content: bytes, content_type: str) -> None:
            clock.advance(20)  # keeps the per-key rate limits from binding
            response = loop.run_until_complete(
                client.post(GEN, content=content, headers={**headers, "Content-Type": content_type})
            )
            assert response.status_code in DOCUMENTED, response.text
            assert set(response.json()) == {"data", "error", "meta"}

        @hsettings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
        @given(body=bodies | json_values)
        def json_bodies(body: object) -> None:
            post(json.dumps(body).encode(), "application/json")

        @hsettings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(raw=st.binary(max_size=200), content_type=st.sampled_from(CONTENT_TYPES))
        def raw_bodies(raw: bytes, content_type: str) -> None:
            post(raw, content_type)

        json_bodies()
        raw_bodies()
    finally:
        loop.run_until_complete(client.aclose())
        loop.run_until_complete(lifespan.__aexit__(None, None, None))
        loop.close()
