"""Scale-out benchmark: postengine on PostgreSQL + Redis with 1 and then 2 API processes
(`postengine serve --workers N`), next to the bare FastAPI hello-world of `http_bench.py` measured in
the same run.

Usage::

    .venv/bin/python bench/scaleout_bench.py           # default counts
    .venv/bin/python bench/scaleout_bench.py --quick   # smoke run

It needs PostgreSQL (`--pg-admin-url`, default the CI machine's: database `test`, user `postgres` on
127.0.0.1) and Redis (`--redis-url`). It creates a database of its own and a Redis key prefix of its
own, and removes both at the end. For each process count it starts the servers, prepares
organisations and keys through the CLI (fresh keys per run, enough that no rate limit binds:
limits are shared through Redis now, so a second run on the same keys would hit the first run's
windows), then drives `GET /api/v1/me` and `POST /api/v1/ai/generate-image` (flux-schnell, offline
renderer) and prints throughput and the ratio 2 processes ÷ 1 process.

On a 2-core machine the load generator shares the cores with the servers, and one process already
draws and encodes on every core (Pillow releases the GIL), so expect modest ratios there; the
figure is meant for machines with more cores. A benchmark, not a test: it exits 0 unless the
servers cannot be started or prepared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import http_bench as hb

PROCESS_COUNTS = (1, 2)


async def _admin(url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def _keys_needed(me: int, gen: int, concurrency: int) -> int:
    """Keys so that each stays well under 60 requests a minute and 50 generations in 5 minutes."""
    per_key_api, per_key_ai = hb.API_LIMIT_PER_MINUTE - 6, hb.AI_LIMIT_PER_5_MINUTES - 6
    return max(concurrency, math.ceil((me + gen) / per_key_api) + 1, math.ceil(gen / per_key_ai) + 1)


def _prepare(env: dict[str, str], cwd: Path, run: int, keys: int) -> list[str]:
    plan = hb.KeyPlan(keys=keys, orgs=math.ceil(keys / hb.KEYS_PER_ORG), me_warmup=0, per_key_api=0, per_key_ai=0)
    orgs = hb.run_cli_batch(
        [["orgs", "create", f"ScaleRun{run}-{i}", "--plan", "pro", "--json"] for i in range(plan.orgs)], env, cwd
    )
    argvs = [["credits", "grant", str(hb.CREDIT_PACK), "--org", o["id"], "--json"] for o in orgs]
    argvs += [
        ["keys", "create", "--org", orgs[j // hb.KEYS_PER_ORG]["id"], "--name", f"run{run}-{j}", "--scopes",
         "read,write,ai", "--json"]
        for j in range(keys)
    ]
    results = hb.run_cli_batch(argvs, env, cwd)
    return [r["secret"] for r in results[len(orgs):]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--me-requests", type=int, default=6000)
    parser.add_argument("--gen-requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--gen-concurrency", type=int, default=8)
    parser.add_argument("--pg-admin-url", default=os.environ.get("PE_BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--redis-url", default=os.environ.get("PE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--quick", action="store_true", help="1,000 /me and 60 generations")
    parser.add_argument("--json", metavar="PATH", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.me_requests, args.gen_requests = 1000, 60
    me_warmup, gen_warmup = max(20, args.me_requests // 10), max(4, args.gen_requests // 10)
    keys = _keys_needed(me_warmup + args.me_requests, gen_warmup + args.gen_requests, args.concurrency)

    name = f"pe_bench_{secrets.token_hex(4)}"
    database_url = args.pg_admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"
    prefix = f"{name}:"
    tmp = Path(tempfile.mkdtemp(prefix="postengine-scaleout-bench-"))
    env = {
        **os.environ,
        "PE_DATA_DIR": str(tmp),
        "PE_DATABASE_URL": database_url,
        "PE_REDIS_URL": args.redis_url,
        "PE_REDIS_PREFIX": prefix,
        "PE_STORAGE_URL": f"file://{tmp}/media",
        "PE_SECRET_KEY": secrets.token_hex(32),
        "PE_LOG_LEVEL": "warning",
    }
    hello_port = hb.free_port()
    hello = hb.Server(
        "hello-world", hello_port,
        [hb.venv_bin("python"), "-m", "uvicorn", "--app-dir", str(hb.BENCH_DIR), "hello_app:app", "--host", hb.HOST,
         "--port", str(hello_port), "--no-access-log", "--log-level", "warning"],
        hb.REPO, dict(os.environ), tmp / "hello.log",
    )
    gen_body = json.dumps(hb.GEN_BODY | {"model": "flux-schnell", "aspect_ratio": "1:1"}).encode()
    figures: dict[str, Any] = {"database": "PostgreSQL", "rate limits": "Redis", "runs": {}}
    asyncio.run(_admin(args.pg_admin_url, f'CREATE DATABASE "{name}"'))
    try:
        hb.run_cli([hb.venv_bin("postengine"), "db", "upgrade", "--json"], env, tmp)
        hello.start()
        hello.wait_ready("/", 60)
        figures["hello"] = hb.drive("asyncio", hello, [hb.encode_request("GET", "/", hello_port)],
                                    me_warmup, args.me_requests, args.concurrency, "hello-world GET /")
        hello.stop()
        for processes in PROCESS_COUNTS:
            port = hb.free_port()
            server = hb.Server(
                f"postengine ×{processes}", port,
                [hb.venv_bin("postengine"), "serve", "--host", hb.HOST, "--port", str(port), "--workers", str(processes)],
                tmp, env, tmp / f"postengine-{processes}.log",
            )
            try:
                server.start()
                server.wait_ready("/openapi.json", 90)
                hb.progress(f"{processes} process(es): {keys} fresh keys")
                tokens = _prepare(env, tmp, processes, keys)
                me = [hb.encode_request("GET", "/api/v1/me", port, token=t) for t in tokens]
                gen = [hb.encode_request("POST", "/api/v1/ai/generate-image", port, token=t, body=gen_body) for t in tokens]
                figures["runs"][processes] = {
                    "me": hb.drive("asyncio", server, me, me_warmup, args.me_requests, args.concurrency,
                                   f"GET /me ×{processes}"),
                    "generate": hb.drive("asyncio", server, gen, gen_warmup, args.gen_requests, args.gen_concurrency,
                                         f"generate-image ×{processes}"),
                }
            finally:
                server.stop()
    except hb.BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        hello.stop()
        asyncio.run(_admin(args.pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        import redis

        client = redis.Redis.from_url(args.redis_url)
        stale = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if stale:
            client.delete(*stale)

    runs = figures["runs"]
    print("\nscale-out on PostgreSQL + Redis, loopback, asyncio load generator, "
          f"{os.cpu_count()} CPU(s)")
    print(f"{'phase':<34}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}")
    print("-" * 71)

    def line(label: str, m: dict[str, Any]) -> None:
        print(f"{label:<34}{m['rps']:>10.1f}{m['p50_ms']:>9.2f}{m['p99_ms']:>9.2f}{m['non_2xx']:>9}")

    line("hello-world GET /", figures["hello"])
    for processes, run in runs.items():
        line(f"GET /me, {processes} process(es)", run["me"])
        line(f"generate-image, {processes} process(es)", run["generate"])
    one, two = runs[1], runs[2]
    figures["ratios"] = {
        "me 2/1": two["me"]["rps"] / one["me"]["rps"],
        "generate 2/1": two["generate"]["rps"] / one["generate"]["rps"],
        "me(1) / hello": one["me"]["rps"] / figures["hello"]["rps"],
        "me(2) / hello": two["me"]["rps"] / figures["hello"]["rps"],
    }
    print()
    for label, value in figures["ratios"].items():
        print(f"  {label:<16}{value:6.2f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
