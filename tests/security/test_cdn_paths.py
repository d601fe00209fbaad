"""`/cdn` and the storage keys: no path trick reaches a file outside the media folder, or another
organisation's file under this one's id.

Three levels:
- the ASGI app, called with the exact `path`/`raw_path` uvicorn would build from a request line (an
  HTTP client would normalise `..` away before sending it);
- the storage API itself (`LocalStorage`, `S3Storage`): hostile keys are refused before any file
  or request is touched, and nothing is read or written through a symbolic link;
- a real `postengine serve` process, fed raw request lines on a socket (what uvicorn's parser makes
  of them is part of what is tested).

Every hostile request is a 404 `not_found` in the envelope (or uvicorn's own 400 for a request line
it cannot parse), never a 500 and never a byte of the planted files.
"""

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import anyio
import httpx
import orjson
import pytest
from fastapi import FastAPI

from postengine.config import Settings
from postengine.media.storage import LocalStorage, MediaStorage, StorageError, storage_from_settings
from tests.api.test_conventions import assert_envelope
from tests.security.test_bodies import PATIENCE, Server, head, running_server

GEN = "/api/v1/ai/generate-image"
SECRET_MARK = b"OUTSIDE-THE-MEDIA-ROOT-" + secrets.token_hex(8).encode()
ELSEWHERE = "med_" + "e" * 24  # an id no media item has: where links are planted


# ---------------------------------------------------------------- calling the app as uvicorn would


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def as_httpx(self) -> httpx.Response:
        return httpx.Response(self.status, headers=self.headers, content=self.body)


async def call(app: FastAPI, raw_path: str, method: str = "GET") -> Reply:
    """One request with the scope uvicorn (httptools) builds for this request target: `raw_path` as
    sent, `path` percent-decoded once (uvicorn's `urllib.parse.unquote`)."""
    path = unquote(raw_path) if "%" in raw_path else raw_path
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": raw_path.encode("latin-1"),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }
    sent: list[dict[str, Any]] = []
    requested = False
    done = anyio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()  # a file response listens for the client going away meanwhile
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            done.set()

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Reply(start["status"], headers, body)


def assert_refused(reply: Reply, method: str = "GET") -> None:
    assert reply.status in (400, 404), (reply.status, reply.body[:300])
    if method == "GET":
        assert_envelope(reply.as_httpx(), reply.status, "not_found" if reply.status == 404 else None)
    assert SECRET_MARK not in reply.body
    assert not reply.body.startswith((b"RIFF", b"\x89PNG"))


# ---------------------------------------------------------------- two organisations, planted files


@dataclass
class Planted:
    root: Path  # the storage root (PE_STORAGE_URL's folder)
    a: str  # org A's media id
    b: str  # org B's media id
    outside: Path  # a folder outside the root, with an `original.webp` in it

    @property
    def outside_file(self) -> Path:
        return self.outside / "original.webp"


async def _generate(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    response = await client.post(GEN, headers=headers, json={"prompt": "a lighthouse", "model": "flux-schnell"})
    media_id: str = assert_envelope(response, 200)["data"]["media_id"]
    return media_id


@pytest.fixture
async def planted(client: httpx.AsyncClient, make_tenant, settings: Settings) -> Planted:
    org_a, org_b = await make_tenant(name="A"), await make_tenant(name="B")
    a, b = await _generate(client, org_a.headers), await _generate(client, org_b.headers)
    outside = settings.data_dir.parent / "outside"
    outside.mkdir()
    (outside / "original.webp").write_bytes(b"RIFF" + SECRET_MARK)
    (outside / "secret.txt").write_bytes(SECRET_MARK)
    return Planted(settings.media_root, a, b, outside)


# The request targets, as sent on the wire. {A} and {B} are the two organisations' media ids, {OUT}
# the outside folder's absolute path.
HOSTILE_TARGETS = [
    # dot segments, literal (a client library would have normalised these away)
    "/cdn/media/{A}/../{B}/original.webp",
    "/cdn/media/../original.webp",
    "/cdn/media/{A}/..",
    "/cdn/media/{A}/.",
    "/cdn/media/{A}/../../../outside/original.webp",
    # percent-encoded dots and slashes (decoded once into `path`)
    "/cdn/media/%2e%2e/original.webp",
    "/cdn/media/%2e%2e%2f{B}/original.webp",
    "/cdn/media/{A}/%2e%2e%2f{B}%2foriginal.webp",
    "/cdn/media/{A}/..%2f..%2f..%2foutside%2foriginal.webp",
    "/cdn/media/..%2F..%2F..%2Foutside/original.webp",
    "/cdn/media/{A}/%2E%2E",
    # double-encoded (decoded once: `%2e` stays literal)
    "/cdn/media/%252e%252e/original.webp",
    "/cdn/media/%252e%252e%252f{B}/original.webp",
    "/cdn/media/{A}/..%252f..%252f..%252foutside%252foriginal.webp",
    "/cdn/media/{A}/%25%32%65%25%32%65",
    # overlong UTF-8 and look-alike dots
    "/cdn/media/{A}/%c0%ae%c0%ae%c0%afsecret.txt",
    "/cdn/media/%ef%bc%8e%ef%bc%8e/original.webp",
    "/cdn/media/{A}/original%e2%80%a4webp",
    # backslashes, literal and encoded
    "/cdn/media/{A}\\..\\{B}/original.webp",
    "/cdn/media/{A}/..\\..\\..\\outside\\original.webp",
    "/cdn/media/{A}/%5c..%5c..%5c..%5coutside%5coriginal.webp",
    # absolute paths
    "/cdn/media/%2f{OUT}/original.webp",
    "/cdn/media/{A}/%2f{OUT}%2foriginal.webp",
    "/cdn/media/{OUT_ENC}/original.webp",
    "/cdn/media/{A}/%2fetc%2fpasswd",
    "//cdn/media/..//..//outside/original.webp",
    # NUL bytes, newlines, odd suffixes
    "/cdn/media/{A}/original.webp%00",
    "/cdn/media/{A}/original.webp%00.png",
    "/cdn/media/{A}%00/original.webp",
    "/cdn/media/%00/original.webp",
    "/cdn/media/{A}/original.webp%0a",
    "/cdn/media/{A}/original.webp%0d%0aX-Injected:%201",
    "/cdn/media/{A}/original.webp.",
    "/cdn/media/{A}/original.webp%20",
    "/cdn/media/{A}/original.webp;.png",
    "/cdn/media/{A}/ORIGINAL.WEBP",
    "/cdn/media/{A_UPPER}/original.webp",
    "/cdn/media/{A}/original.exe",
    # overlong keys
    "/cdn/media/{A}/" + "a" * 5000 + ".webp",
    "/cdn/media/med_" + "0" * 5000 + "/original.webp",
    "/cdn/media/{A}/" + "a" * 33 + ".webp",
    "/cdn/media/" + "%2e%2e%2f" * 500 + "outside/original.webp",
    # another prefix of the storage (staging copies of uploads are never served)
    "/cdn/uploads/{A}/original.webp",
    "/cdn/media/{A}/../../uploads/{A}/original.webp",
    "/cdn/media/%2e%2e/uploads/original.webp",
]


def _target(template: str, planted: Planted) -> str:
    out = str(planted.outside).lstrip("/")
    return (
        template.replace("{A_UPPER}", planted.a.upper())
        .replace("{A}", planted.a)
        .replace("{B}", planted.b)
        .replace("{OUT_ENC}", quote(str(planted.outside_file), safe=""))
        .replace("{OUT}", out.replace("/", "%2f"))
    )


async def test_the_genuine_files_are_served(app: FastAPI, planted: Planted) -> None:
    for media_id in (planted.a, planted.b):
        reply = await call(app, f"/cdn/media/{media_id}/original.webp")
        assert reply.status == 200 and reply.body.startswith(b"RIFF")
        assert reply.headers["content-type"] == "image/webp"


async def test_hostile_paths_are_not_found(app: FastAPI, planted: Planted) -> None:
    # A staged copy and a file at the root: both would be "found" by a traversal that worked.
    staged = planted.root / "uploads" / planted.a / "original.webp"
    staged.parent.mkdir(parents=True, exist_ok=True)
    staged.write_bytes(b"RIFF" + SECRET_MARK)
    (planted.root / "original.webp").write_bytes(b"RIFF" + SECRET_MARK)
    for template in HOSTILE_TARGETS:  # one app for all of them: each case is a single request
        target = _target(template, planted)
        for method in ("GET", "HEAD"):
            reply = await call(app, target, method)
            try:
                assert_refused(reply, method)
            except AssertionError as exc:
                raise AssertionError(f"{method} {target[:200]}: {exc}") from None


# ---------------------------------------------------------------- links and odd files in the folder


async def test_a_linked_file_to_outside_or_to_another_org_is_not_served(app: FastAPI, planted: Planted) -> None:
    folder = planted.root / "media" / planted.a
    (folder / "leak.webp").symlink_to(planted.outside_file)  # absolute, outside the root
    (folder / "theirs.webp").symlink_to(Path("..") / planted.b / "original.webp")  # relative, org B
    (folder / "abs_theirs.webp").symlink_to(planted.root / "media" / planted.b / "original.webp")
    for name in ("leak.webp", "theirs.webp", "abs_theirs.webp"):
        assert_refused(await call(app, f"/cdn/media/{planted.a}/{name}"))


async def test_a_linked_folder_is_not_served(app: FastAPI, planted: Planted) -> None:
    media = planted.root / "media"
    (media / ELSEWHERE).symlink_to(planted.outside, target_is_directory=True)
    other = "med_" + "f" * 24
    (media / other).symlink_to(media / planted.b, target_is_directory=True)  # org B's folder
    relative = "med_" + "d" * 24
    (media / relative).symlink_to(Path(planted.b), target_is_directory=True)
    for media_id in (ELSEWHERE, other, relative):
        for method in ("GET", "HEAD"):
            assert_refused(await call(app, f"/cdn/media/{media_id}/original.webp", method), method)


async def test_a_linked_media_folder_is_not_served(app: FastAPI, planted: Planted) -> None:
    media = planted.root / "media"
    media.rename(planted.root / "elsewhere")
    media.symlink_to(planted.root / "elsewhere", target_is_directory=True)
    assert_refused(await call(app, f"/cdn/media/{planted.a}/original.webp"))


async def test_fifos_folders_and_hard_to_read_files_are_not_served(app: FastAPI, planted: Planted) -> None:
    folder = planted.root / "media" / planted.a
    os.mkfifo(folder / "pipe.webp")  # reading it would block for ever
    (folder / "folder.webp").mkdir()
    for name in ("pipe.webp", "folder.webp"):
        assert_refused(await call(app, f"/cdn/media/{planted.a}/{name}"))
    # And a file where the media id's folder should be.
    (planted.root / "media" / ELSEWHERE).write_bytes(SECRET_MARK)
    assert_refused(await call(app, f"/cdn/media/{ELSEWHERE}/original.webp"))


# ---------------------------------------------------------------- the storage API itself


def _id() -> str:
    return f"med_{secrets.token_hex(12)}"


HOSTILE_KEYS = [
    "",
    "media/../secret.png",
    "../media/{ID}/original.png",
    "/etc/passwd",
    "/media/{ID}/original.png",
    "media/{ID}/../../../outside/original.png",
    "media/{ID}/./original.png",
    "media//{ID}/original.png",
    "media/{ID}//original.png",
    "media/{ID}/original.png/",
    "media/{ID}/original.png\x00.txt",
    "media/{ID}\x00/original.png",
    "media/{ID}/original.png\n",
    "media\\{ID}\\original.png",
    "media/{ID}/..\\..\\outside.png",
    "MEDIA/{ID}/original.png",
    "media/{ID}/original.PNG",
    "media/{ID}/original.exe",
    "media/{ID}/" + "a" * 10_000 + ".png",
    "media/med_" + "0" * 10_000 + "/original.png",
    "media/med_xyz/original.png",
    "other/{ID}/original.png",
    "uploads/../media/{ID}/original.png",
    "media/org_" + "0" * 24 + "/../{ID}/original.png",
    "media/{ID}/original\u2024png",
    "media/{ID}/ｏriginal.png",
]


@pytest.fixture(params=["local", "s3"])
def hostile_storage(request: pytest.FixtureRequest, tmp_path: Path) -> MediaStorage:
    if request.param == "local":
        return LocalStorage(tmp_path / "root" / "media")
    # No server at all: a key that got past the check would make a request and fail with a
    # StorageError, not the ValueError asserted below.
    settings = Settings(
        storage_url="s3://no-such-bucket/prefix",
        s3_endpoint_url="http://127.0.0.1:9",
        s3_access_key_id="unused",
        s3_secret_access_key="unused-secret",  # type: ignore[arg-type]
        s3_path_style=True,
        public_media_url="https://cdn.example.test",
    )
    return storage_from_settings(settings)


@pytest.mark.parametrize("template", HOSTILE_KEYS)
async def test_the_storage_refuses_hostile_keys(hostile_storage: MediaStorage, tmp_path: Path, template: str) -> None:
    from datetime import UTC, datetime, timedelta

    key = template.replace("{ID}", _id())
    good = f"uploads/{_id()}/original.png"

    async def nothing() -> Any:
        yield b"x"

    expires = datetime.now(UTC) + timedelta(minutes=5)
    calls = [
        lambda: hostile_storage.put(key, b"x", "image/png"),
        lambda: hostile_storage.put_stream(key, nothing(), "image/png"),
        lambda: hostile_storage.get(key),
        lambda: hostile_storage.read_range(key, 0, 10),
        lambda: hostile_storage.size(key),
        lambda: hostile_storage.exists(key),
        lambda: hostile_storage.delete(key),
        lambda: hostile_storage.promote(key, good.replace("uploads/", "media/"), "image/png"),
        lambda: hostile_storage.upload_url(key, "image/png", 1, expires),
    ]
    if isinstance(hostile_storage, LocalStorage):
        # S3Storage reads the source before it checks the destination's key (and there is no server
        # here to read it from); the destination is still refused before anything is written.
        await hostile_storage.put(good, b"staged", "image/png")
        calls.append(lambda: hostile_storage.promote(good, key, "image/png"))
    for operation in calls:
        with pytest.raises(ValueError):
            await operation()
    # Nothing was written anywhere under the test's folder but the one good staged file.
    assert _files_under(tmp_path) == ([f"root/media/{good}"] if isinstance(hostile_storage, LocalStorage) else [])


def _files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def linked(tmp_path: Path) -> Iterator[tuple[LocalStorage, Path, str]]:
    """A storage whose `media/<id>` folder is a link to a folder outside it (holding a file)."""
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "original.png").write_bytes(SECRET_MARK)
    media_id = _id()
    (root / "media").mkdir(parents=True)
    (root / "media" / media_id).symlink_to(outside, target_is_directory=True)
    yield LocalStorage(root), outside, f"media/{media_id}/original.png"


async def test_the_storage_never_reads_through_a_linked_folder(linked: tuple[LocalStorage, Path, str]) -> None:
    storage, outside, key = linked
    with pytest.raises(FileNotFoundError):
        await storage.get(key)
    with pytest.raises(FileNotFoundError):
        await storage.read_range(key, 0, 100)
    with pytest.raises(FileNotFoundError):
        await storage.stat(key)
    assert await storage.size(key) is None
    assert not await storage.exists(key)
    with pytest.raises(FileNotFoundError):  # promote reads its source
        await storage.promote(key, key.replace(key.split("/")[1], _id()), "image/png")
    assert (outside / "original.png").read_bytes() == SECRET_MARK  # and the link did not move it


async def test_the_storage_never_writes_or_deletes_through_a_linked_folder(
    linked: tuple[LocalStorage, Path, str],
) -> None:
    storage, outside, key = linked
    await storage.delete(key)
    assert (outside / "original.png").read_bytes() == SECRET_MARK
    with pytest.raises(StorageError):
        await storage.put(key.replace("original.png", "new.png"), b"planted", "image/png")

    async def chunks() -> Any:
        yield b"planted"

    with pytest.raises(StorageError):
        await storage.put_stream(key.replace("original.png", "new.png"), chunks(), "image/png")
    source = f"uploads/{_id()}/original.png"
    await storage.put(source, b"staged", "image/png")
    with pytest.raises(StorageError):
        await storage.promote(source, key.replace("original.png", "thumb.png"), "image/png")
    assert sorted(p.name for p in outside.iterdir()) == ["original.png"]  # nothing written there


async def test_the_storage_never_reads_a_linked_file_and_replaces_only_the_link(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "root")
    target = tmp_path / "outside.png"
    target.write_bytes(SECRET_MARK)
    key = f"media/{_id()}/original.png"
    path = storage.path_for(key)
    path.parent.mkdir(parents=True)
    path.symlink_to(target)
    with pytest.raises(FileNotFoundError):
        await storage.get(key)
    assert await storage.size(key) is None
    await storage.put(key, b"ours", "image/png")  # replaces the link itself
    assert not path.is_symlink() and await storage.get(key) == b"ours"
    assert target.read_bytes() == SECRET_MARK
    path.unlink()
    path.symlink_to(target)
    await storage.delete(key)  # removes the link, never its target
    assert not path.exists() and target.read_bytes() == SECRET_MARK


async def test_a_root_that_is_itself_a_link_still_works(tmp_path: Path) -> None:
    """The operator's choice of root (PE_STORAGE_URL) may be a link; only what is below it may not."""
    (tmp_path / "real").mkdir()
    (tmp_path / "root").symlink_to(tmp_path / "real", target_is_directory=True)
    storage = LocalStorage(tmp_path / "root")
    key = f"media/{_id()}/original.png"
    await storage.put(key, b"bytes", "image/png")
    assert await storage.get(key) == b"bytes" and await storage.size(key) == 5


# ---------------------------------------------------------------- a real server, raw request lines


RAW_TARGETS = [
    "/cdn/media/{A}/../{B}/original.webp",
    "/cdn/media/../original.webp",
    "/cdn/media/{A}/..%2f..%2f..%2foutside%2foriginal.webp",
    "/cdn/media/%2e%2e%2f%2e%2e%2f%2e%2e%2foutside/original.webp",
    "/cdn/media/%252e%252e%252f{B}/original.webp",
    "/cdn/media/{A}\\..\\{B}/original.webp",
    "/cdn/media/{A}/%5c..%5c{B}%5coriginal.webp",
    "/cdn/media/{A}/original.webp%00",
    "/cdn/media/{A}/original.webp%00.png",
    "/cdn/media/{OUT_ENC}/original.webp",
    "/cdn/media/{A}/%2f{OUT}%2foriginal.webp",
    "/cdn/media/{LINKED}/original.webp",
    "/cdn/media/{A}/leak.webp",
    "/cdn/media/{A}/" + "a" * 6000 + ".webp",
    "/cdn/media/{A}/original.webp\x00",  # a raw NUL in the request line
    "/cdn/media/{A}/orig inal.webp",  # a raw space: not one request line
    "/cdn/media/{A}/original.webp\t",
]


@dataclass
class Live:
    server: Server
    planted: Planted
    linked: str


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("cdn")
    with running_server(root) as server:
        ids = []
        for prompt in ("a red kite", "a blue kite"):
            response = httpx.post(
                f"{server.base}{GEN}",
                headers=server.auth,
                json={"prompt": prompt, "model": "flux-schnell"},
                timeout=PATIENCE,
            )
            assert response.status_code == 200, response.text
            ids.append(response.json()["data"]["media_id"])
        outside = root / "outside"
        outside.mkdir()
        (outside / "original.webp").write_bytes(b"RIFF" + SECRET_MARK)
        media = server.media_root / "media"
        (media / ELSEWHERE).symlink_to(outside, target_is_directory=True)
        (media / ids[0] / "leak.webp").symlink_to(outside / "original.webp")
        yield Live(server, Planted(server.media_root, ids[0], ids[1], outside), ELSEWHERE)


def _raw(server: Server, target: str) -> tuple[int, dict[str, str], bytes]:
    with server.connect() as conn:
        conn.sendall(head("GET", "PLACEHOLDER", {"Connection": "close"}).replace(b"PLACEHOLDER", target.encode()))
        answer = conn.read_answer()
    return answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.body


def test_the_live_server_serves_the_genuine_file(live: Live) -> None:
    status, headers, body = _raw(live.server, f"/cdn/media/{live.planted.a}/original.webp")
    assert status == 200 and body.startswith(b"RIFF") and headers["content-type"] == "image/webp"


@pytest.mark.parametrize("template", RAW_TARGETS)
def test_the_live_server_refuses_raw_hostile_paths(live: Live, template: str) -> None:
    target = _target(template.replace("{LINKED}", live.linked), live.planted)
    status, headers, body = _raw(live.server, target)
    assert status in (400, 404), (status, body[:300])
    assert SECRET_MARK not in body and not body.startswith(b"RIFF")
    if "x-request-id" in headers:  # answered by the app: the envelope
        envelope = orjson.loads(body)
        assert envelope["data"] is None and envelope["error"]["code"] == "not_found"
    else:  # a request line uvicorn's parser refuses never reaches the app
        assert (status, body) == (400, b"Invalid HTTP request received.")
