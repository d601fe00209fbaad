"""Read-path benchmark: an authenticated list endpoint (default ``GET /api/v1/media?limit=20``) against the
bare FastAPI hello-world of ``http_bench.py``, on loopback, one uvicorn worker each.

Usage::

    .venv/bin/python bench/media_bench.py                    # 5000 measured requests
    .venv/bin/python bench/media_bench.py --quick            # smoke run
    .venv/bin/python bench/media_bench.py --path '/api/v1/media?limit=20&type=image' --json out.json

One run starts both servers (``http_bench.Server``), prepares postengine through its CLI (organisations
on the pro plan, API keys), fills every organisation's library with ``--items`` media through the public
upload flow (``POST /media/upload`` → ``PUT upload_url`` → ``POST /media/{id}/complete``, small PNGs),
then drives hello-world ``GET /`` and ``--path`` with ``http_bench``'s load generator (wrk when installed,
else its asyncio generator in its own process) and prints req/s, latencies and the ratio to hello-world.

Keys: every request counts against its key's 60/minute window, so, as in ``http_bench.py``, there are
enough keys (10 per organisation) that no key's total over the run (seeding, warm-up, measured requests)
reaches the limit. A benchmark, not a test: it never fails on a missed target.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import shutil
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from http_bench import (
    API_LIMIT_PER_MINUTE,
    BENCH_DIR,
    HOST,
    KEYS_PER_ORG,
    REPO,
    BenchError,
    KeyPlan,
    Server,
    _fmt,
    drive,
    encode_request,
    free_port,
    prepare_postengine,
    progress,
    venv_bin,
)

TARGET_RATIO = 0.35


def key_plan(requests: int, warmup: int, concurrency: int, items: int) -> KeyPlan:
    """Keys such that seeding + warm-up + measured requests stay under every key's minute window."""
    seed_per_org = 2 * items  # upload + complete carry the key; the PUT to the signed URL does not
    k = max(concurrency, KEYS_PER_ORG)
    while True:
        orgs = math.ceil(k / KEYS_PER_ORG)
        smallest_org = k - (orgs - 1) * KEYS_PER_ORG  # the last organisation may have fewer keys
        per_key_seed = math.ceil(seed_per_org / smallest_org)
        per_key = math.ceil(requests / k) + 1 + math.ceil(warmup / k) + 1 + per_key_seed
        if per_key <= API_LIMIT_PER_MINUTE - 2 and warmup >= k:
            return KeyPlan(keys=k, orgs=orgs, me_warmup=warmup, per_key_api=per_key, per_key_ai=0)
        if warmup < k:  # the warm-up caches every key's authentication
            warmup = k
        else:
            k += 1


def _png(i: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64 + i % 32, 48), (i * 7 % 256, 80, 160)).save(buf, format="PNG")
    return buf.getvalue()


def _call(method: str, url: str, *, token: str | None = None, body: bytes | None = None) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"} if body is not None and token else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        data: dict[str, Any] = json.loads(response.read())["data"]
        return data


def seed_media(port: int, secrets: list[str], items: int) -> int:
    """`items` ready media per organisation, through the public upload flow, spread over its keys."""
    base = f"http://{HOST}:{port}"
    done = 0
    for first in range(0, len(secrets), KEYS_PER_ORG):
        org_keys = secrets[first : first + KEYS_PER_ORG]
        for i in range(items):
            token = org_keys[i % len(org_keys)]
            data = _png(i)
            ticket = _call(
                "POST",
                f"{base}/api/v1/media/upload",
                token=token,
                body=json.dumps(
                    {"filename": f"bench-{i}.png", "content_type": "image/png", "size": len(data)}
                ).encode(),
            )
            _call("PUT", ticket["upload_url"], body=data)
            media = _call("POST", f"{base}/api/v1/media/{ticket['media_id']}/complete", token=token)
            if media["status"] != "ready":
                raise BenchError(f"seeding: media {media['id']} is {media['status']}")
            done += 1
    return done


def run(args: argparse.Namespace) -> dict[str, Any]:
    generator = args.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "asyncio"
    warmup = max(20, args.requests // 10)
    plan = key_plan(args.requests, warmup, args.concurrency, args.items)
    progress(f"plan: {plan.keys} keys in {plan.orgs} org(s), ≤ {plan.per_key_api} requests per key")
    tmp = Path(tempfile.mkdtemp(prefix="postengine-media-bench-"))
    pe_env = {
        **os.environ,
        "PE_DATA_DIR": str(tmp),
        "PE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/postengine.db",
        "PE_STORAGE_URL": f"file://{tmp}/media",
        "PE_LOG_LEVEL": "warning",
    }
    hello_port, pe_port = free_port(), free_port()
    hello = Server(
        "hello-world",
        hello_port,
        [venv_bin("python"), "-m", "uvicorn", "--app-dir", str(BENCH_DIR), "hello_app:app", "--host", HOST,
         "--port", str(hello_port), "--no-access-log", "--log-level", "warning"],
        REPO,
        dict(os.environ),
        tmp / "hello.log",
    )  # fmt: skip
    postengine = Server(
        "postengine",
        pe_port,
        [venv_bin("postengine"), "serve", "--host", HOST, "--port", str(pe_port)],
        tmp,
        pe_env,
        tmp / "postengine.log",
    )
    phases: dict[str, Any] = {}
    try:
        hello.start()
        postengine.start()
        hello.wait_ready("/", args.startup_timeout)
        postengine.wait_ready("/openapi.json", args.startup_timeout)
        secrets = prepare_postengine(plan, pe_env, tmp)
        progress(f"seeding {args.items} media in each of {plan.orgs} organisation(s) through the upload flow")
        seeded = seed_media(pe_port, secrets, args.items)
        progress(f"seeded {seeded} media")
        hello_count = 4 * args.requests
        phases["hello-world GET /"] = drive(
            generator, hello, [encode_request("GET", "/", hello_port)], max(20, hello_count // 10), hello_count,
            args.concurrency, "hello-world GET /",
        )  # fmt: skip
        requests = [encode_request("GET", args.path, pe_port, token=s) for s in secrets]
        phases[f"postengine GET {args.path}"] = drive(
            generator, postengine, requests, plan.me_warmup, args.requests, args.concurrency, args.path
        )
    finally:
        hello.stop()
        postengine.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    hello_rps = phases["hello-world GET /"]["rps"]
    path_rps = phases[f"postengine GET {args.path}"]["rps"]
    ratio = path_rps / hello_rps if hello_rps and path_rps else None
    return {
        "generator": generator,
        "cpu_count": os.cpu_count(),
        "path": args.path,
        "items_per_org": args.items,
        "key_plan": plan.__dict__,
        "phases": phases,
        "ratio": ratio,
        "target_ratio": TARGET_RATIO,
    }


def report(figures: dict[str, Any]) -> None:
    print(f"\nRead path vs hello-world ({figures['generator']}, {figures['cpu_count']} CPUs, "
          f"{figures['items_per_org']} media per organisation)")  # fmt: skip
    print(f"  {'phase':<44} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for label, phase in figures["phases"].items():
        print(
            f"  {label:<44} {_fmt(phase['rps'], 0):>9} {_fmt(phase['p50_ms'], 2):>8} "
            f"{_fmt(phase['p99_ms'], 2):>8} {phase['non_2xx']:>8}"
        )
    ratio = figures["ratio"]
    verdict = "n/a" if ratio is None else ("OK" if ratio >= TARGET_RATIO else "MISSED")
    print(
        f"  {figures['path']} ÷ hello-world throughput: {_fmt(ratio, 3)}  (target ≥ {TARGET_RATIO}) {verdict}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", default="/api/v1/media?limit=20", help="the GET path to measure")
    parser.add_argument("--items", type=int, default=25, help="media per organisation (default 25)")
    parser.add_argument("--requests", type=int, default=None, help="measured requests (default 5000)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="600 requests at concurrency 8")
    parser.add_argument("--json", metavar="PATH", type=Path)
    parser.add_argument("--generator", choices=["auto", "wrk", "asyncio"], default="auto")
    parser.add_argument("--startup-timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    if args.requests is None:
        args.requests = 600 if args.quick else 5000
    if args.quick:
        args.concurrency = min(args.concurrency, 8)
    try:
        figures = run(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
