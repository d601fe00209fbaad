"""Real providers over real HTTP: `postengine serve` and `postengine providers check` against a fake
Gemini API listening on loopback, speaking the Gemini wire format (PROVIDERS.md)."""

import base64
import io
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
from PIL import Image

from tests.servers import stop, wait_until_serving
from tests.test_e2e_http import SEED_KEY, free_port, server_env

GOOD_KEY = "AIzaSy-e2e-test-key-0123456789abcdef"
BAD_KEY = "AIzaSy-revoked-key-9876543210fedcba"
MODEL_ID = "gemini-3-pro-image-preview"
SIZES_2K = {"1:1": (2048, 2048), "16:9": (2752, 1536), "4:5": (1856, 2304)}


class FakeGemini(BaseHTTPRequestHandler):
    requests: ClassVar[list[dict[str, object]]] = []

    def log_message(self, *args: object) -> None:
        pass

    def _reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self) -> bool:
        if "key=" in self.path:  # the key must never travel in the URL
            self._reply(400, {"error": {"code": 400, "message": "key in URL", "status": "INVALID_ARGUMENT"}})
            return False
        if self.headers.get("x-goog-api-key") != GOOD_KEY:
            self._reply(400, {"error": {
                "code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT",
                "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                             "domain": "googleapis.com"}]}})
            return False
        return True

    def do_GET(self) -> None:
        if not self._authorised():
            return
        if self.path == f"/v1beta/models/{MODEL_ID}":
            self._reply(200, {"name": f"models/{MODEL_ID}", "displayName": "Nano Banana Pro",
                              "supportedGenerationMethods": ["generateContent"]})
        else:
            self._reply(404, {"error": {"code": 404, "message": "model not found", "status": "NOT_FOUND"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeGemini.requests.append({"path": self.path, "body": body})
        if not self._authorised():
            return
        if self.path != f"/v1beta/models/{MODEL_ID}:generateContent":
            self._reply(404, {"error": {"code": 404, "message": "model not found", "status": "NOT_FOUND"}})
            return
        ratio = body["generationConfig"]["imageConfig"]["aspectRatio"]
        buffer = io.BytesIO()
        Image.new("RGB", SIZES_2K[ratio], (30, 90, 160)).save(buffer, format="PNG")
        self._reply(200, {
            "candidates": [{
                "content": {"role": "model", "parts": [
                    {"text": "Composing a calm harbour scene…", "thought": True},
                    {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(buffer.getvalue()).decode()}},
                ]},
                "finishReason": "STOP", "index": 0,
            }],
            "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 1120, "totalTokenCount": 1132},
            "modelVersion": MODEL_ID,
        })


@pytest.fixture
def fake_gemini() -> Iterator[str]:
    FakeGemini.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeGemini)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def postengine(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("postengine")
    return subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, timeout=120)


def test_providers_check_reports_who_serves_each_model(fake_gemini: str, tmp_path: Path) -> None:
    env = {**server_env(tmp_path), "PE_GEMINI_API_KEY": GOOD_KEY, "PE_GEMINI_BASE_URL": fake_gemini,
           "PE_PROVIDERS": json.dumps({"flux-schnell": ["fal", "offline"]})}
    env.pop("PE_FAL_KEY", None)
    result = postengine("providers", "check", "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["providers"]["gemini"]["ok"] is True
    assert report["providers"]["fal"] == {"ok": False, "detail": report["providers"]["fal"]["detail"]}
    assert "PE_FAL_KEY" in report["providers"]["fal"]["detail"]
    assert report["models"]["nano-banana-pro"] == {"chain": ["gemini"], "serving": "gemini"}
    assert report["models"]["flux-schnell"] == {"chain": ["fal", "offline"], "serving": "offline"}
    assert report["models"]["ideogram-v2"] == {"chain": ["offline"], "serving": "offline"}
    assert GOOD_KEY not in result.stdout + result.stderr


def test_providers_check_fails_on_a_rejected_key_and_a_wrong_model_id(fake_gemini: str, tmp_path: Path) -> None:
    env = {**server_env(tmp_path), "PE_GEMINI_API_KEY": BAD_KEY, "PE_GEMINI_BASE_URL": fake_gemini}
    result = postengine("providers", "check", "--json", env=env)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["providers"]["gemini"]["ok"] is False
    assert report["models"]["gemini-3-pro"]["serving"] is None
    assert BAD_KEY not in result.stdout + result.stderr

    env = {**env, "PE_GEMINI_API_KEY": GOOD_KEY, "PE_GEMINI_MODELS": json.dumps({"gemini-3-pro": "gemini-9-retired"})}
    result = postengine("providers", "check", env=env)  # the human table this time
    assert result.returncode == 1
    assert "gemini" in result.stdout and "failing" in result.stdout


def test_a_wrong_chain_stops_serve_with_one_line(tmp_path: Path) -> None:
    env = {**server_env(tmp_path), "PE_PROVIDERS": json.dumps({"ideogram-v2": ["fal"]})}
    result = postengine("serve", "--port", str(free_port()), env=env)
    assert result.returncode == 1
    assert "cannot serve ideogram-v2" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_generates_through_gemini_over_real_http(fake_gemini: str, tmp_path: Path) -> None:
    port = free_port()
    env = {**server_env(tmp_path), "PE_GEMINI_API_KEY": GOOD_KEY, "PE_GEMINI_BASE_URL": fake_gemini,
           "PE_LOG_JSON": "true"}
    exe = Path(sys.executable).with_name("postengine")
    proc = subprocess.Popen([str(exe), "serve", "--demo", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://localhost:{port}"
    try:
        wait_until_serving(proc, f"{base}/openapi.json", output=lambda: proc.stderr.read() if proc.stderr else "")
        headers = {"Authorization": f"Bearer {SEED_KEY}"}
        response = httpx.post(f"{base}/api/v1/ai/generate-image", headers=headers, timeout=60,
                              json={"prompt": "A calm harbour at dawn", "model": "nano-banana-pro", "aspect_ratio": "16:9"})
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        assert (data["width"], data["height"]) == (2048, 1152)  # 2752x1536 from Gemini, downscaled
        served = Image.open(io.BytesIO(httpx.get(data["image_url"], timeout=10).content))
        assert served.format == "WEBP" and served.size == (2048, 1152)
        [sent] = [r for r in FakeGemini.requests if str(r["path"]).endswith(":generateContent")]
        assert sent["body"]["generationConfig"]["imageConfig"] == {"aspectRatio": "16:9", "imageSize": "2K"}
        assert sent["body"]["contents"][0]["parts"][0]["text"] == "A calm harbour at dawn"
        # flux-schnell has no upstream configured: still the offline renderer.
        offline = httpx.post(f"{base}/api/v1/ai/generate-image", headers=headers, timeout=60,
                             json={"prompt": "a cat", "model": "flux-schnell"})
        assert offline.status_code == 200
    finally:
        stop(proc, seconds=15)
    logs = proc.stderr.read() if proc.stderr else ""
    assert GOOD_KEY not in logs
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    messages = [line.get("event", "") for line in lines]
    assert any("nano-banana-pro is served by gemini" in m for m in messages)
    assert any("provider gemini:" in m for m in messages)  # the start-up check ran and was logged
    assert not [line for line in lines if line.get("logger") in ("httpx", "httpcore")]  # URLs carry tokens
