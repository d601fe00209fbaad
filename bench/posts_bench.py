"""Read-path benchmark: `GET /api/v1/posts?limit=20` against the same bare FastAPI hello-world
baseline as `http_bench.py` (its servers, CLI preparation and load generator are reused).

Usage::

    .venv/bin/python bench/posts_bench.py            # 3,000 measured requests at concurrency 16
    .venv/bin/python bench/posts_bench.py --quick    # smoke run

Setup: organisations on the pro plan, each with three sandbox accounts (`accounts connect
--sandbox`), one generated image and `--posts-per-org` posts (default 20, a full page) scheduled a
day ahead to all three accounts with the image attached, made over HTTP with one writer key per
organisation. The measured keys are other keys of those organisations, enough that no key goes
over 60 requests in the whole run (API.md §3), so nothing measured is a 429.

Target: posts ÷ hello-world throughput ≥ 0.35. A benchmark, not a test: it reports and exits 0
unless the servers cannot be started or prepared.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import http_bench as hb

TARGET_RATIO = 0.35
READ_KEYS_PER_ORG = hb.KEYS_PER_ORG - 1  # one key per organisation writes its posts
PLATFORMS = ("x", "linkedin", "instagram")


def _call(method: str, url: str, token: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            payload: dict[str, Any] = json.loads(response.read())
            return payload
    except urllib.error.HTTPError as exc:
        raise hb.BenchError(f"{method} {url} → {exc.code}: {exc.read()[:400]!r}") from None


def prepare(args: argparse.Namespace, env: dict[str, str], cwd: Path, port: int) -> list[str]:
    """Organisations, keys, sandbox accounts and posts; returns the read keys' secrets."""
    per_key = 60 - 4  # margin for a request per connection past the stop, and rounding
    total = args.warmup + args.requests
    read_keys = max(args.concurrency, math.ceil(total / per_key) + 1)
    orgs = math.ceil(read_keys / READ_KEYS_PER_ORG)
    hb.progress(
        f"plan: {read_keys} read keys in {orgs} organisation(s), ≤ {math.ceil(total / read_keys)} requests each"
    )
    hb.run_cli([hb.venv_bin("postengine"), "db", "upgrade", "--json"], env, cwd)
    org_ids = [
        o["id"]
        for o in hb.run_cli_batch(
            [["orgs", "create", f"PostsBench-{i + 1}", "--plan", "pro", "--json"] for i in range(orgs)],
            env,
            cwd,
        )
    ]
    argvs: list[list[str]] = []
    for i, org_id in enumerate(org_ids):
        argvs.append(
            ["keys", "create", "--org", org_id, "--name", "writer", "--scopes", "read,write,ai", "--json"]
        )
        argvs += [
            [
                "accounts",
                "connect",
                "--org",
                org_id,
                "--platform",
                p,
                "--name",
                f"@bench{i}",
                "--sandbox",
                "--json",
            ]
            for p in PLATFORMS
        ]
        argvs += [
            ["keys", "create", "--org", org_id, "--name", f"reader-{j}", "--scopes", "read", "--json"]
            for j in range(READ_KEYS_PER_ORG)
        ]
    results = hb.run_cli_batch(argvs, env, cwd)
    step = 1 + len(PLATFORMS) + READ_KEYS_PER_ORG
    readers: list[str] = []
    base = f"http://{hb.HOST}:{port}/api/v1"
    when = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    hb.progress(f"creating {args.posts_per_org} posts in each organisation over HTTP")
    for i in range(orgs):
        chunk = results[i * step : (i + 1) * step]
        writer = chunk[0]["secret"]
        account_ids = [a["id"] for a in chunk[1 : 1 + len(PLATFORMS)]]
        readers += [k["secret"] for k in chunk[1 + len(PLATFORMS) :]]
        image = _call("POST", f"{base}/ai/generate-image", writer, hb.GEN_BODY)["data"]
        for n in range(args.posts_per_org):
            _call(
                "POST",
                f"{base}/posts",
                writer,
                {
                    "content": f"Benchmark post {n}: new arrivals this week, come and see #{n}",
                    "account_ids": account_ids,
                    "media_ids": [image["media_id"]],
                    "scheduled_at": when,
                },
            )
    return readers[:read_keys]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="measured GET /posts requests")
    parser.add_argument(
        "--hello-requests", type=int, help="measured hello-world requests (default 4 × --requests)"
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--posts-per-org", type=int, default=20, choices=range(1, 21), metavar="1-20")
    parser.add_argument("--generator", choices=["auto", "wrk", "asyncio"], default="auto")
    parser.add_argument("--quick", action="store_true", help="600 requests at concurrency 8")
    parser.add_argument("--json", metavar="PATH", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.requests, args.concurrency = 600, 8
    args.warmup = max(20, args.requests // 10)
    hello_requests = args.hello_requests or 4 * args.requests
    generator = args.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "asyncio"

    tmp = Path(tempfile.mkdtemp(prefix="postengine-posts-bench-"))
    env = {
        **os.environ,
        "PE_DATA_DIR": str(tmp),
        "PE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/postengine.db",
        "PE_STORAGE_URL": f"file://{tmp}/media",
        "PE_LOG_LEVEL": "warning",
    }
    hello_port, pe_port = hb.free_port(), hb.free_port()
    hello = hb.Server(
        "hello-world",
        hello_port,
        [
            hb.venv_bin("python"),
            "-m",
            "uvicorn",
            "--app-dir",
            str(hb.BENCH_DIR),
            "hello_app:app",
            "--host",
            hb.HOST,
            "--port",
            str(hello_port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        hb.REPO,
        dict(os.environ),
        tmp / "hello.log",
    )
    postengine = hb.Server(
        "postengine",
        pe_port,
        [hb.venv_bin("postengine"), "serve", "--host", hb.HOST, "--port", str(pe_port)],
        tmp,
        env,
        tmp / "postengine.log",
    )
    phases: dict[str, Any] = {}
    try:
        hello.start()
        postengine.start()
        hello.wait_ready("/", 60)
        postengine.wait_ready("/openapi.json", 60)
        readers = prepare(args, env, tmp, pe_port)
        phases["hello-world GET /"] = hb.drive(
            generator,
            hello,
            [hb.encode_request("GET", "/", hello_port)],
            max(20, hello_requests // 10),
            hello_requests,
            args.concurrency,
            "hello-world GET /",
        )
        requests = [hb.encode_request("GET", "/api/v1/posts?limit=20", pe_port, token=s) for s in readers]
        phases["postengine GET /api/v1/posts?limit=20"] = hb.drive(
            generator,
            postengine,
            requests,
            args.warmup,
            args.requests,
            args.concurrency,
            "GET /posts?limit=20",
        )
        sample = _call("GET", f"http://{hb.HOST}:{pe_port}/api/v1/posts?limit=20", readers[-1])["data"]
    except hb.BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        hello.stop()
        postengine.stop()
        log_lines = [line for line in postengine.log_text().splitlines() if line.strip()]
        shutil.rmtree(tmp, ignore_errors=True)

    hello_rps = phases["hello-world GET /"]["rps"]
    posts_rps = phases["postengine GET /api/v1/posts?limit=20"]["rps"]
    ratio = posts_rps / hello_rps if hello_rps and posts_rps else None
    print()
    print(
        f"HTTP on loopback, one uvicorn worker per server, load generator: {generator}, {os.cpu_count()} CPU(s)"
    )
    header = (
        f"{'phase':<40} {'conc':>4} {'requests':>8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>7}"
    )
    print(header)
    print("-" * len(header))
    for label, p in phases.items():
        print(
            f"{label:<40} {p['concurrency']:>4} {p['requests']:>8} {p['rps']:>9.1f} {p['p50_ms']:>8.2f} "
            f"{p['p99_ms']:>8.2f} {p['non_2xx']:>7}"
        )
    page = sample["posts"]
    print(
        f"each response: {len(page)} posts × {len(page[0]['destinations']) if page else 0} destinations, "
        f"{len(json.dumps(sample)):,} bytes of data"
    )
    verdict = "n/a" if ratio is None else ("OK" if ratio >= TARGET_RATIO else "MISSED")
    print(
        f"\n  GET /posts?limit=20 ÷ hello-world   {ratio or 0:.3f}   target ≥ {TARGET_RATIO:.2f}  {verdict}"
    )
    if log_lines:
        print(
            f"\npostengine logged {len(log_lines)} line(s) at level ≥ warning; the last: {log_lines[-1][:300]}"
        )
    if args.json:
        args.json.write_text(json.dumps({"phases": phases, "ratio": ratio}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
