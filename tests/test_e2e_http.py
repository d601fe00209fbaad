"""The README's promise, over real HTTP: `postengine serve --demo`, then the seed's own curl example
with only the host changed."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.servers import stop, wait_until_serving

SEED_CURL_BODY = """{
    "prompt": "A flat-lay photo of a coffee cup, notebook, and succulent on a marble desk, warm morning light, minimal aesthetic",
    "model": "gemini-3-pro",
    "aspect_ratio": "1:1"
  }"""
SEED_KEY = "pe_live_a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(tmp_path: Path) -> dict[str, str]:
    """A fresh embedded installation under tmp_path: what `make run` sets up under ./data."""
    return {
        **os.environ,
        "PE_DATA_DIR": str(tmp_path / "data"),
        "PE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'data' / 'postengine.db'}",
        "PE_STORAGE_URL": f"file://{tmp_path / 'data' / 'media'}",
    }


@pytest.fixture
def server(tmp_path: Path):
    port = free_port()
    env = server_env(tmp_path)
    exe = Path(sys.executable).with_name("postengine")
    proc = subprocess.Popen(
        [str(exe), "serve", "--demo", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://localhost:{port}"
    try:
        wait_until_serving(proc, f"{base}/openapi.json", output=lambda: proc.stderr.read() if proc.stderr else "")
        yield base, proc
    finally:
        stop(proc, seconds=15)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_seed_curl_example_against_a_real_server(server) -> None:
    base, proc = server
    result = subprocess.run(
        [
            "curl", "-sS", "-X", "POST", f"{base}/api/v1/ai/generate-image",
            "-H", f"Authorization: Bearer {SEED_KEY}",
            "-H", "Content-Type: application/json",
            "-d", SEED_CURL_BODY,
        ],
        capture_output=True, text=True, timeout=60, check=True,
    )
    data = json.loads(result.stdout)["data"]
    assert data["status"] == "completed" and data["credits_used"] == 5 and data["credits_remaining"] == 495
    image = httpx.get(data["image_url"], timeout=10)
    assert image.status_code == 200 and image.headers["content-type"] == "image/webp"

    # The seed's Python example, unchanged but for the host (httpx stands in for requests).
    response = httpx.post(
        f"{base}/api/v1/ai/generate-image",
        headers={"Authorization": f"Bearer {SEED_KEY}"},
        json={"prompt": "A flat-lay photo of a coffee cup, notebook, and succulent on a marble desk",
              "model": "gemini-3-pro", "aspect_ratio": "1:1"},
        timeout=60,
    )
    image_data = response.json()["data"]
    assert image_data["credits_remaining"] == 490
    assert image_data["image_url"].startswith(f"{base}/cdn/media/")

    proc.terminate()
    proc.wait(timeout=15)
    out = proc.stdout.read() if proc.stdout else ""
    assert SEED_KEY in out  # the demo key is printed for the newcomer
    logs = proc.stderr.read() if proc.stderr else ""
    assert SEED_KEY not in logs  # and never logged
    access = [json.loads(line) for line in logs.splitlines() if '"postengine.access"' in line]
    assert len(access) >= 2 and all(line["request_id"].startswith("req_") for line in access)
    assert {line["path"] for line in access} >= {"/api/v1/ai/generate-image"}


def test_a_second_server_on_the_same_data_is_refused(server, tmp_path: Path) -> None:
    env = server_env(tmp_path)
    exe = Path(sys.executable).with_name("postengine")
    second = subprocess.run(
        [str(exe), "serve", "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=60
    )
    assert second.returncode == 1
    assert "another postengine server" in second.stderr


def test_cli_changes_reach_a_running_server_at_once(server, tmp_path: Path) -> None:
    """Another process (the CLI) grants credits and revokes a key while the server runs; the
    server's caches follow immediately, and the ledger stays consistent across processes."""
    import concurrent.futures

    base, _ = server
    env = server_env(tmp_path)
    exe = str(Path(sys.executable).with_name("postengine"))

    def cli(*args: str) -> dict:
        done = subprocess.run([exe, *args, "--json"], env=env, capture_output=True, text=True, timeout=60, check=True)
        return json.loads(done.stdout)

    headers = {"Authorization": f"Bearer {SEED_KEY}"}
    org_id = httpx.get(f"{base}/api/v1/me", headers=headers).json()["data"]["organization"]["id"]
    assert httpx.get(f"{base}/api/v1/me", headers=headers).json()["data"]["quota"]["ai_credits"]["remaining"] == 500

    def generate(_: int) -> int:
        body = {"prompt": "a lighthouse", "model": "gemini-3-pro"}
        return httpx.post(f"{base}/api/v1/ai/generate-image", headers=headers, json=body, timeout=60).status_code

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        statuses = pool.map(generate, range(8))
        granted = cli("credits", "grant", "70", "--org", org_id)  # meanwhile, from another process
        assert all(status == 200 for status in statuses)
    assert granted["bonus"] == 70
    shown = cli("credits", "show", "--org", org_id)
    assert shown["remaining"] == shown["ledger_sum"] == 500 - 8 * 5 + 70
    me = httpx.get(f"{base}/api/v1/me", headers=headers).json()["data"]
    assert me["quota"]["ai_credits"]["remaining"] == 530  # the server's snapshot followed the grant

    key = cli("keys", "create", "--org", org_id, "--name", "temporary", "--scopes", "read")
    temp = {"Authorization": f"Bearer {key['secret']}"}
    assert httpx.get(f"{base}/api/v1/me", headers=temp).status_code == 200  # now cached by the server
    cli("keys", "revoke", key["id"])
    assert httpx.get(f"{base}/api/v1/me", headers=temp).status_code == 401
