"""The seed's whole workflow, as a client runs it against a real `postengine serve --demo`: connect
sandbox accounts (CLI), generate an image, attach its media_id to a post scheduled a few seconds
ahead, and watch the embedded scheduler publish it to every account."""

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.servers import stop, wait_until_serving
from tests.test_e2e_http import SEED_KEY, free_port, server_env

EXE = str(Path(sys.executable).with_name("postengine"))
HEADERS = {"Authorization": f"Bearer {SEED_KEY}"}


@pytest.fixture
def served(tmp_path: Path):
    port = free_port()
    env = server_env(tmp_path)
    proc = subprocess.Popen(
        [EXE, "serve", "--demo", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    base = f"http://localhost:{port}"
    try:
        wait_until_serving(proc, f"{base}/openapi.json", output=lambda: proc.stderr.read() if proc.stderr else "")
        yield base, env
    finally:
        stop(proc, seconds=15)


def cli(env: dict[str, str], *args: str) -> dict:
    done = subprocess.run([EXE, *args, "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_generate_then_schedule_a_post_to_three_sandbox_accounts(served) -> None:
    base, env = served
    api = f"{base}/api/v1"
    org_id = httpx.get(f"{api}/me", headers=HEADERS).json()["data"]["organization"]["id"]
    accounts = [
        cli(env, "accounts", "connect", "--org", org_id, "--platform", platform, "--name", "@acme", "--sandbox")["id"]
        for platform in ("instagram", "x", "linkedin")
    ]

    image = httpx.post(
        f"{api}/ai/generate-image",
        headers=HEADERS,
        json={"prompt": "A flat-lay photo of a coffee cup, notebook, and succulent on a marble desk",
              "model": "gemini-3-pro", "aspect_ratio": "1:1"},
        timeout=60,
    ).json()["data"]
    media_id = image["media_id"]

    scheduled_at = (datetime.now(UTC) + timedelta(seconds=3)).isoformat().replace("+00:00", "Z")
    response = httpx.post(
        f"{api}/posts",
        headers=HEADERS,
        json={"content": "Fresh from the studio ☕", "account_ids": accounts, "media_ids": [media_id],
              "scheduled_at": scheduled_at},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    post = response.json()["data"]
    assert post["status"] == "scheduled" and post["message"] == "Post scheduled for 3 accounts"
    assert post["media"][0]["url"] == image["image_url"]

    deadline = time.monotonic() + 30  # due in 3 s; the scheduler polls every second
    while True:
        got = httpx.get(f"{api}/posts/{post['id']}", headers=HEADERS, timeout=10).json()["data"]
        if got["status"] not in ("scheduled", "publishing"):
            break
        assert time.monotonic() < deadline, f"not published within 30 s: {got}"
        time.sleep(0.25)
    assert got["status"] == "published", got
    for dest in got["destinations"]:
        assert dest["status"] == "published" and dest["attempts"] == 1
        assert dest["platform_post_id"] and dest["platform_post_url"]
        assert dest["published_at"] >= scheduled_at[:19]  # not before its time

    results = httpx.get(f"{api}/posts/{post['id']}/results", headers=HEADERS).json()["data"]
    assert results["post_status"] == "published" and len(results["results"]) == 3
    listed = httpx.get(f"{api}/posts?status=published&limit=20", headers=HEADERS).json()["data"]
    assert [p["id"] for p in listed["posts"]] == [post["id"]]

    by_account = {d["account_id"]: d for d in got["destinations"]}
    for account_id in accounts:
        outbox = cli(env, "accounts", "outbox", str(account_id))["outbox"]
        assert len(outbox) == 1
        entry = outbox[0]
        assert entry["destination_id"] == by_account[account_id]["id"]
        assert entry["platform_post_id"] == by_account[account_id]["platform_post_id"]
        assert entry["content"] == "Fresh from the studio ☕"
        assert [m["url"] for m in entry["media"]] == [image["image_url"]]

    # Publishing has started: the post can no longer be changed.
    late = httpx.patch(f"{api}/posts/{post['id']}", headers=HEADERS, json={"content": "edit"})
    assert late.status_code == 409 and late.json()["error"]["code"] == "post_already_published"
