"""Scaffolding for the scale-out tests: real PostgreSQL and Redis, several OS processes.

- `Cluster`: a fresh PostgreSQL database (migrated with `postengine db upgrade`), a Redis key prefix
  of its own (its keys deleted afterwards), `postengine serve --workers N` and `postengine worker`
  processes started and stopped, the CLI, and SQL against the database.
- `FakeFal`: fal.ai's synchronous API on loopback, the edge of the system. A prompt containing
  `[fail]` gets a 500 every time (the adapter's retries included), `[hang]` an answer that never
  comes; any other prompt a small PNG.
"""

import asyncio
import base64
import io
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from PIL import Image

from tests.conftest import fresh_pg_database
from tests.redis_support import REDIS_URL, require_redis
from tests.servers import reap, wait_until_serving

EXE = str(Path(sys.executable).with_name("postengine"))
FAL_KEY = "fal-scaleout-test-key:0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeFal(BaseHTTPRequestHandler):
    calls: ClassVar[list[str]] = []
    png: ClassVar[bytes] = b""

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = str(body.get("prompt", ""))
        FakeFal.calls.append(prompt)
        if self.headers.get("authorization") != f"Key {FAL_KEY}":
            self._reply(401, {"detail": "No user found for Key ID and Secret"})
        elif "[hang]" in prompt:
            time.sleep(3600)  # the generation's process is killed meanwhile
        elif "[fail]" in prompt:
            self._reply(500, {"detail": "Internal server error"})
        else:
            uri = "data:image/png;base64," + base64.b64encode(FakeFal.png).decode()
            self._reply(200, {"images": [{"url": uri, "width": 64, "height": 64, "content_type": "image/png"}],
                              "seed": 1, "has_nsfw_concepts": [False], "prompt": prompt})

    def _reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass


@contextmanager
def fake_fal(handler: type[FakeFal] = FakeFal) -> Iterator[str]:
    """FakeFal (or a subclass of it) on a loopback port of its own; yields its base URL."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 80, 40)).save(buffer, format="PNG")
    FakeFal.png = buffer.getvalue()
    FakeFal.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class Cluster:
    def __init__(self, tmp_path: Path, database_url: str, fal_url: str | None) -> None:
        self.tmp_path = tmp_path
        self.database_url = database_url
        self.prefix = f"pe_test_{secrets.token_hex(6)}:"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.env = {
            **os.environ,
            "PE_DATA_DIR": str(tmp_path / "data"),
            "PE_DATABASE_URL": database_url,
            "PE_REDIS_URL": REDIS_URL,
            "PE_REDIS_PREFIX": self.prefix,
            "PE_STORAGE_URL": f"file://{tmp_path / 'data' / 'media'}",
            "PE_SECRET_KEY": "scaleout-tests-secret-" + secrets.token_hex(16),
            "PE_LOG_LEVEL": "warning",
            "PE_LOG_JSON": "true",
        }
        if fal_url is not None:
            self.env |= {"PE_FAL_KEY": FAL_KEY, "PE_FAL_BASE_URL": fal_url,
                         "PE_PROVIDERS": json.dumps({"flux-schnell": ["fal"]})}

    # -- processes ------------------------------------------------------------------------------

    def cli(self, *args: str) -> Any:
        done = subprocess.run([EXE, *args, "--json"], env=self.env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"postengine {' '.join(args)}: {done.stderr}"
        return json.loads(done.stdout)

    def serve(self, workers: int, **env: str) -> str:
        port = free_port()
        with open(self.tmp_path / f"serve-{port}.log", "wb") as log:
            proc = subprocess.Popen(
                [EXE, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
                env={**self.env, **env}, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
            )
        self.processes.append(proc)
        base = f"http://127.0.0.1:{port}"
        log_path = self.tmp_path / f"serve-{port}.log"
        wait_until_serving(proc, f"{base}/openapi.json", output=lambda: log_path.read_text()[-3000:])
        return base

    def worker(self, *args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([EXE, "worker", *args], env=self.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
        self.processes.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # all at once, then wait for each
        for proc in self.processes:
            reap(proc, group=True)

    # -- data -----------------------------------------------------------------------------------

    def org_with_keys(self, name: str, keys: int, *, plan: str = "none", bonus: int = 0) -> tuple[str, list[str]]:
        org = self.cli("orgs", "create", name, "--plan", plan)["id"]
        if bonus:
            self.cli("credits", "grant", str(bonus), "--org", org)
        secrets_ = [self.cli("keys", "create", "--org", org, "--name", f"k{i}", "--scopes", "read,write,ai")["secret"]
                    for i in range(keys)]
        return org, secrets_

    def sql(self, query: str, *args: Any) -> list[Any]:
        import asyncpg

        async def run() -> list[Any]:
            conn = await asyncpg.connect(self.database_url.replace("postgresql+asyncpg", "postgresql"))
            try:
                return list(await conn.fetch(query, *args))
            finally:
                await conn.close()

        return asyncio.run(run())

    def cleanup_redis(self) -> None:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{self.prefix}*", count=1000))
        if keys:
            client.delete(*keys)


@pytest.fixture
def cluster_factory(tmp_path: Path) -> Iterator[Any]:
    """`cluster_factory(fal=True)` → a Cluster on a fresh PostgreSQL database, stopped afterwards."""
    require_redis()
    made: list[Cluster] = []

    with ExitStack() as stack:

        def make(*, fal: bool = False) -> Cluster:
            url = stack.enter_context(fresh_pg_database())
            fal_url = stack.enter_context(fake_fal()) if fal else None
            cluster = Cluster(tmp_path, url, fal_url)
            cluster.cli("db", "upgrade")
            made.append(cluster)
            return cluster

        try:
            yield make
        finally:
            for cluster in made:
                cluster.stop()
                cluster.cleanup_redis()

