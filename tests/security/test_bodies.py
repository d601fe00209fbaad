"""Oversized and slow request bodies, against a real `postengine serve` process (uvicorn, httptools).

The requests are written by hand on raw sockets, so a test controls exactly what reaches the server
and when: a header that promises 50 MiB, a chunked body that never ends, a body that stalls or
dribbles one byte at a time (slowloris). What must hold:

- a JSON body over 1 MiB is a 413 `payload_too_large` as soon as the limit is passed (by its
  `Content-Length`, or by counting a chunked body), without waiting for the rest;
- ten 50 MiB bodies do not grow the server's memory (the body is never buffered);
- an upload `PUT` never stores more than the size declared when the upload started;
- a body that stops coming, or comes too slowly, is cut off by the server (408 `request_timeout`,
  connection closed) instead of holding the connection, the request and its resources for ever;
  a large upload that keeps coming is never cut off, however long it takes.

The server runs with `PE_BODY_IDLE_TIMEOUT_SECONDS=2`, so the slow cases end in seconds. No test
asserts how long anything took: only what the server answered and whether it closed the connection.
"""

import http.client
import io
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil
import pytest
from PIL import Image

from tests.servers import stop, wait_until_serving

EXE = str(Path(sys.executable).with_name("postengine"))
IDLE_SECONDS = 2  # PE_BODY_IDLE_TIMEOUT_SECONDS of the server under test
PATIENCE = 60.0  # how long a client waits for an answer: generous, this is not a timing test
MiB = 1024 * 1024
UPLOAD_FROM_URL = "/api/v1/media/upload-from-url"  # a JSON endpoint that reads its body after auth


# ---------------------------------------------------------------- a real server


@dataclass
class Server:
    port: int
    pid: int
    key: str
    media_root: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def connect(self) -> "Connection":
        return Connection(socket.create_connection(("127.0.0.1", self.port), timeout=PATIENCE))

    def rss(self) -> int:
        return int(psutil.Process(self.pid).memory_info().rss)

    def alive(self) -> bool:
        return httpx.get(f"{self.base}/healthz", timeout=PATIENCE).status_code == 200


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(root: Path, **env: str) -> Iterator[Server]:
    """`postengine serve --demo` (embedded mode: SQLite, local media folder) on a free loopback port,
    with a demo key of its own; stopped (its process group) afterwards."""
    port = _free_port()
    key = f"pe_live_{secrets.token_hex(16)}"
    data = root / "data"
    environment = {
        **os.environ,
        "PE_DATA_DIR": str(data),
        "PE_DATABASE_URL": f"sqlite+aiosqlite:///{data / 'postengine.db'}",
        "PE_STORAGE_URL": f"file://{data / 'media'}",
        "PE_SECRET_KEY": "security-tests-secret-" + secrets.token_hex(16),
        "PE_DEMO_KEY": key,
        "PE_LOG_LEVEL": "warning",
        "PE_LOG_JSON": "true",
        **env,
    }
    environment.pop("PE_REDIS_URL", None)  # embedded mode: in-process rate limits
    log_path = root / f"serve-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [EXE, "serve", "--host", "127.0.0.1", "--port", str(port), "--demo"],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
    try:
        wait_until_serving(proc, f"http://127.0.0.1:{port}/healthz", output=lambda: log_path.read_text()[-3000:])
        yield Server(port=port, pid=proc.pid, key=key, media_root=data / "media")
    finally:
        stop(proc, group=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(
        tmp_path_factory.mktemp("bodies"), PE_BODY_IDLE_TIMEOUT_SECONDS=str(IDLE_SECONDS)
    ) as running:
        yield running


# ---------------------------------------------------------------- raw HTTP


def head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


LAST_CHUNK = b"0\r\n\r\n"


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def envelope(self, status: int, code: str | None = None) -> dict[str, Any]:
        """The API's envelope (API.md §1.1), as `tests.api.test_conventions.assert_envelope` checks it."""
        assert self.status == status, (self.status, self.body[:500])
        assert self.headers["content-type"] == "application/json"
        body: dict[str, Any] = json.loads(self.body)
        assert set(body) == {"data", "error", "meta"}
        assert body["meta"]["request_id"] == self.headers["x-request-id"]
        if code is not None:
            assert body["data"] is None
            assert body["error"]["code"] == code, body
            assert body["error"]["retryable"] is False
        return body


class Connection:
    """A client connection: raw bytes out, answers read in order (pipelined ones too)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = sock.makefile("rb")  # one buffered reader, so no answer is read ahead and lost

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()
        self.sock.close()

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_answer(self) -> Answer:
        status_line = self.file.readline(65537).decode("latin-1")
        assert status_line, "the server closed the connection without an answer"
        status = int(status_line.split(" ", 2)[1])
        headers = http.client.parse_headers(self.file)  # type: ignore[arg-type]
        return Answer(status, headers, self.file.read(int(headers["content-length"])))

    def closed_by_server(self) -> bool:
        """True once the server has closed the connection (EOF or reset), after its answer was read."""
        try:
            return self.file.read(1) == b""
        except ConnectionResetError:
            return True


def json_head(server: Server, headers: dict[str, str]) -> bytes:
    return head("POST", UPLOAD_FROM_URL, {**server.auth, "Content-Type": "application/json", **headers})


# ---------------------------------------------------------------- oversized JSON bodies


def test_a_declared_50_mib_json_body_is_413_before_any_of_it_is_sent(server: Server) -> None:
    with server.connect() as conn:
        conn.sendall(json_head(server, {"Content-Length": str(50 * MiB)}))
        answer = conn.read_answer()  # not one byte of the body was sent
    body = answer.envelope(413, "payload_too_large")
    assert body["error"]["details"]["max_bytes"] == MiB


def test_a_chunked_json_body_is_413_once_past_the_limit_without_the_rest(server: Server) -> None:
    with server.connect() as conn:
        conn.sendall(json_head(server, {"Transfer-Encoding": "chunked"}))
        for _ in range(3):  # 1.5 MiB of a body that would go on; the last chunk is never sent
            conn.sendall(chunk(b"x" * (MiB // 2)))
        answer = conn.read_answer()
    answer.envelope(413, "payload_too_large")


def _send_50_mib(server: Server, chunked: bool) -> Answer:
    block = b"{" + b" " * (MiB - 1)
    with server.connect() as conn:
        if chunked:
            conn.sendall(json_head(server, {"Transfer-Encoding": "chunked"}))
            for _ in range(50):
                conn.sendall(chunk(block))
            conn.sendall(LAST_CHUNK)
        else:
            conn.sendall(json_head(server, {"Content-Length": str(50 * MiB)}))
            for _ in range(50):
                conn.sendall(block)
        return conn.read_answer()


def test_fifty_mib_bodies_do_not_grow_the_server_memory(server: Server) -> None:
    for chunked in (False, True):  # warm up both paths (lazy imports, allocator arenas)
        _send_50_mib(server, chunked).envelope(413, "payload_too_large")
    before = server.rss()
    peak = before
    sampling = True

    def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, server.rss())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        for i in range(10):  # 500 MiB in all, half with Content-Length, half chunked
            _send_50_mib(server, chunked=i % 2 == 1).envelope(413, "payload_too_large")
    finally:
        sampling = False
        sampler.join()
    after = server.rss()
    assert peak - before < 30 * MiB, f"RSS grew from {before / MiB:.1f} MiB to a peak of {peak / MiB:.1f} MiB"
    assert after - before < 30 * MiB
    assert server.alive()


# ---------------------------------------------------------------- uploads: never more than declared


def _noise_png(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), secrets.token_bytes(side * side * 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def _start_upload(server: Server, size: int) -> tuple[str, str]:
    """Starts an upload of a PNG of `size` bytes; returns (media id, path + query of its upload URL)."""
    response = httpx.post(
        f"{server.base}/api/v1/media/upload",
        headers=server.auth,
        json={"filename": "noise.png", "content_type": "image/png", "size": size},
        timeout=PATIENCE,
    )
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    url = urlsplit(data["upload_url"])
    return data["media_id"], f"{url.path}?{url.query}"


def _files_of(server: Server, media_id: str) -> list[Path]:
    return [p for p in server.media_root.rglob("*") if media_id in str(p) and p.is_file()]


def _complete(server: Server, media_id: str) -> httpx.Response:
    return httpx.post(f"{server.base}/api/v1/media/{media_id}/complete", headers=server.auth, timeout=PATIENCE)


def test_a_chunked_upload_longer_than_declared_is_cut_off_at_the_declared_size(server: Server) -> None:
    png = _noise_png(128)
    media_id, path = _start_upload(server, len(png))
    with server.connect() as conn:
        conn.sendall(head("PUT", path, {"Content-Type": "image/png", "Transfer-Encoding": "chunked"}))
        conn.sendall(chunk(png))
        conn.sendall(chunk(b"\0" * 256 * 1024))  # more than declared; the body never ends
        answer = conn.read_answer()
    body = answer.envelope(400, "upload_size_mismatch")
    assert body["error"]["details"]["declared_size"] == len(png)
    assert _files_of(server, media_id) == []  # nothing stored, no temp file left
    assert _complete(server, media_id).json()["error"]["code"] == "upload_incomplete"


def test_an_upload_declaring_more_than_its_size_is_refused_before_reading(server: Server) -> None:
    png = _noise_png(64)
    media_id, path = _start_upload(server, len(png))
    with server.connect() as conn:
        conn.sendall(head("PUT", path, {"Content-Type": "image/png", "Content-Length": str(500 * MiB)}))
        answer = conn.read_answer()  # no byte of the body was sent
    body = answer.envelope(400, "upload_size_mismatch")
    assert body["error"]["details"] == {"declared_size": len(png), "received_size": 500 * MiB}
    assert _files_of(server, media_id) == []


def test_bytes_past_the_content_length_are_never_stored(server: Server) -> None:
    """What follows the declared length on the connection is the next request, never more file."""
    png = _noise_png(64)
    media_id, path = _start_upload(server, len(png))
    with server.connect() as conn:
        conn.sendall(head("PUT", path, {"Content-Type": "image/png", "Content-Length": str(len(png))}))
        conn.sendall(png + head("GET", "/healthz", {}))
        assert conn.read_answer().envelope(200)["data"]["size"] == len(png)
        next_answer = conn.read_answer()
    assert next_answer.status == 200 and json.loads(next_answer.body)["status"] == "ok"
    completed = _complete(server, media_id)
    assert completed.status_code == 200, completed.text
    assert completed.json()["data"]["size"] == len(png)
    [stored] = [p for p in _files_of(server, media_id) if p.name.startswith("original")]
    assert stored.read_bytes() == png


# ---------------------------------------------------------------- slow bodies (slowloris)


def test_a_stalled_json_body_is_cut_off_with_408_and_the_connection_closed(server: Server) -> None:
    with server.connect() as conn:
        conn.sendall(json_head(server, {"Content-Length": "200"}))
        conn.sendall(b'{"url": "https://')  # then nothing more
        answer = conn.read_answer()
        answer.envelope(408, "request_timeout")
        assert answer.headers["connection"] == "close"
        assert conn.closed_by_server()
    assert server.alive()


def test_a_json_body_that_never_starts_is_cut_off(server: Server) -> None:
    with server.connect() as conn:
        conn.sendall(json_head(server, {"Content-Length": "50"}))  # headers only
        conn.read_answer().envelope(408, "request_timeout")
        assert conn.closed_by_server()


def test_a_dribbling_json_body_is_cut_off_although_no_gap_is_long(server: Server) -> None:
    """One byte every 0.2 s: no single wait reaches the 2 s window, but the body makes no real
    progress, so a per-read timeout alone would let it hold the connection for ever."""
    stop = threading.Event()
    sent = 0

    def dribble(conn: Connection) -> None:
        nonlocal sent
        while not stop.is_set():
            try:
                conn.sendall(b" ")
            except OSError:
                return
            sent += 1
            stop.wait(0.2)

    with server.connect() as conn:
        conn.sendall(json_head(server, {"Content-Length": "100000"}))
        dribbler = threading.Thread(target=dribble, args=(conn,), daemon=True)
        dribbler.start()
        try:
            answer = conn.read_answer()
        finally:
            stop.set()
            dribbler.join()
        answer.envelope(408, "request_timeout")
        assert conn.closed_by_server()
    assert 0 < sent < 100_000


def test_a_stalled_chunked_json_body_is_cut_off(server: Server) -> None:
    with server.connect() as conn:
        conn.sendall(json_head(server, {"Transfer-Encoding": "chunked"}))
        conn.sendall(chunk(b'{"url": '))  # no last chunk
        conn.read_answer().envelope(408, "request_timeout")
        assert conn.closed_by_server()


def test_a_stalled_upload_is_cut_off_and_nothing_is_stored(server: Server) -> None:
    png = _noise_png(256)
    assert len(png) > 128 * 1024
    media_id, path = _start_upload(server, len(png))
    with server.connect() as conn:
        conn.sendall(head("PUT", path, {"Content-Type": "image/png", "Content-Length": str(len(png))}))
        conn.sendall(png[: 100 * 1024])  # then nothing
        answer = conn.read_answer()
        answer.envelope(408, "request_timeout")
        assert conn.closed_by_server()
    assert _files_of(server, media_id) == []  # the partial temp file is gone
    assert _complete(server, media_id).json()["error"]["code"] == "upload_incomplete"


def test_a_slow_upload_that_keeps_coming_is_never_cut_off(server: Server) -> None:
    """64 KiB every 0.5 s: the whole upload takes several idle windows, and passes."""
    png = _noise_png(400)
    step = 64 * 1024
    assert len(png) > 4 * step
    media_id, path = _start_upload(server, len(png))
    with server.connect() as conn:
        conn.sendall(head("PUT", path, {"Content-Type": "image/png", "Content-Length": str(len(png))}))
        for offset in range(0, len(png), step):
            conn.sendall(png[offset : offset + step])
            time.sleep(0.5)
        answer = conn.read_answer()
    assert answer.envelope(200)["data"]["size"] == len(png)
    completed = _complete(server, media_id)
    assert completed.status_code == 200, completed.text
    assert (completed.json()["data"]["width"], completed.json()["data"]["height"]) == (400, 400)
