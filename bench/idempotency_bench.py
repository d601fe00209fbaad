"""What an `Idempotency-Key` costs, next to the same request without one, in the same run.

In-process (httpx's ASGI transport, no sockets), so the figures are postengine's own work per
request: the claim (one short write transaction), the response stored in the request's own
transaction, and a replay (one read of the stored response). Rate limits are set aside with a store
that admits everything (they cost the same with and without a key).

Usage::

    .venv/bin/python bench/idempotency_bench.py [--requests 1500] [--database-url postgresql+asyncpg://…]

Prints requests/s and ratios for `POST /media/upload` (no key, a fresh key each, a replay) and for
`POST /ai/generate-image` (flux-schnell on the offline renderer, with and without a key). A benchmark,
not a test: it never fails on a figure.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import httpx

from postengine.app import create_app
from postengine.auth import keys as key_service
from postengine.auth.scopes import Scope
from postengine.config import Settings
from postengine.credits import service as credits
from postengine.credits.plans import Plan
from postengine.db import Database
from postengine.kit.clock import SystemClock, to_datetime
from postengine.logs import configure_logging
from postengine.orgs import service as orgs
from postengine.ratelimit.rules import RateLimitWindow
from postengine.ratelimit.store import Admission, WindowState

UPLOAD = "/api/v1/media/upload"
GEN = "/api/v1/ai/generate-image"


class AdmitAll:
    async def admit(self, subject: str, windows: Sequence[RateLimitWindow]) -> Admission:
        now = time.time()
        return Admission(True, now, tuple(WindowState(w, w.limit, now + w.seconds) for w in windows))

    async def peek(self, subject: str, windows: Sequence[RateLimitWindow]) -> tuple[WindowState, ...]:
        now = time.time()
        return tuple(WindowState(w, w.limit, now) for w in windows)


async def tenant(settings: Settings) -> str:
    db = Database(settings.database_url)
    from postengine import migrate

    await migrate.upgrade(db)
    now = to_datetime(time.time())
    async with db.write() as session:
        org = await orgs.create_org(session, name="Bench", plan=Plan.PRO, now=now)
        _, secret = await key_service.create_key(
            session, secret_key=settings.secret, org_id=org.id, name="bench", scopes=frozenset(Scope), now=now
        )
    await db.run(lambda conn: credits.grant_pack(conn, org_id=org.id, amount=1_000_000, now=now))
    await db.dispose()
    return secret


async def rate(client: httpx.AsyncClient, n: int, path: str, body: dict, headers: dict[str, str], key: str | None) -> float:
    """Requests per second over `n` sequential requests; `key`: None (no header), "fresh" or a fixed key."""
    started = time.perf_counter()
    for _ in range(n):
        extra = {} if key is None else {"Idempotency-Key": uuid.uuid4().hex if key == "fresh" else key}
        response = await client.post(path, headers={**headers, **extra}, json=body)
        if response.status_code >= 300:
            raise SystemExit(f"{path}: {response.status_code} {response.text[:300]}")
    return n / (time.perf_counter() - started)


async def main(args: argparse.Namespace) -> None:
    configure_logging(json=True, level="warning")  # no access line per request
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        settings = Settings(database_url=url, data_dir=Path(tmp), storage_url=f"file://{Path(tmp) / 'media'}")
        secret = await tenant(settings)
        app = create_app(settings, clock=SystemClock(), rate_limits=AdmitAll(), background=False)
        headers = {"Authorization": f"Bearer {secret}"}
        upload = {"filename": "a.png", "content_type": "image/png", "size": 1000}
        image = {"prompt": "a paper boat on a pond", "model": "flux-schnell", "aspect_ratio": "1:1"}
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                n, g = args.requests, args.generations
                await rate(client, 100, UPLOAD, upload, headers, None)  # warm-up
                await rate(client, 100, UPLOAD, upload, headers, "fresh")
                await client.post(UPLOAD, headers={**headers, "Idempotency-Key": "replayed"}, json=upload)
                results = {}
                for round_ in range(args.rounds):  # interleaved, so drift hits every variant alike
                    for name, key in (("no key", None), ("fresh key", "fresh"), ("replay", "replayed")):
                        results.setdefault(name, []).append(await rate(client, n, UPLOAD, upload, headers, key))
                    print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
                await rate(client, 5, GEN, image, headers, None)
                gen_plain = await rate(client, g, GEN, image, headers, None)
                gen_keyed = await rate(client, g, GEN, image, headers, "fresh")
    best = {name: max(values) for name, values in results.items()}
    print(f"database: {url.split(':', 1)[0]}; {n} requests per variant, best of {args.rounds} rounds")
    print(f"POST /media/upload   no key     {best['no key']:8.0f} req/s   1.00")
    print(f"POST /media/upload   fresh key  {best['fresh key']:8.0f} req/s   {best['fresh key'] / best['no key']:.2f}")
    print(f"POST /media/upload   replay     {best['replay']:8.0f} req/s   {best['replay'] / best['no key']:.2f}")
    print(f"POST /ai/generate-image no key  {gen_plain:8.1f} img/s   1.00")
    print(f"POST /ai/generate-image key     {gen_keyed:8.1f} img/s   {gen_keyed / gen_plain:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--generations", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default=None)
    asyncio.run(main(parser.parse_args()))
