"""A fake fal.ai: the sync runner, the queue, the CDN and the model catalogue, behind one MockTransport.

It checks what the adapter sends (method, path, `Authorization: Key ...`, the JSON input, the
`image_size` for the ratio) by raising `AssertionError` from the transport, which the adapter does
not catch, so a wrong request fails the test where it happened. A wrong key gets fal's own 401.
Answers follow fal's shapes: `{"images": [{url, width, height, content_type}], "seed", "timings",
"has_nsfw_concepts", "prompt"}`, FastAPI-style `{"detail": ...}` errors, and queue URLs that drop the
`/schnell` sub-path (`https://queue.fal.run/fal-ai/flux/requests/<id>/status`).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from tests.generation.providers import fakes

RUN_HOST = "fal.run"
QUEUE_HOST = "queue.fal.run"
CDN_HOST = "v3.fal.media"
CATALOGUE_HOST = "api.fal.ai"
MODEL = "fal-ai/flux/schnell"
APP = "fal-ai/flux"  # what queue URLs keep of the endpoint id
FAL_KEY = "7d9a2c4e-51b3-4f60-8e2d-0c1b3a5f7e92:5c8e1f0a9b7d6e4c3a2f1e0d9c8b7a6f"

# PROVIDERS.md, written out again rather than imported: the adapter's table is what is under test.
SIZE_FOR_RATIO = {
    "1:1": (1024, 1024),
    "16:9": (1024, 576),
    "9:16": (576, 1024),
    "4:3": (1024, 768),
    "3:4": (768, 1024),
    "4:5": (816, 1024),
    "5:4": (1024, 816),
}


# --- fal's error answers, as it sends them -------------------------------------------------------


def unauthorized() -> httpx.Response:
    return fakes.json_response(401, {"detail": "No user found for Key ID and Secret"})


def account_locked() -> httpx.Response:
    return fakes.json_response(
        403,
        {
            "detail": "User is locked. Reason: Exhausted balance. "
            "Top up your balance at fal.ai/dashboard/billing."
        },
    )


def app_not_found(path: str) -> httpx.Response:
    return fakes.json_response(404, {"detail": f"Application '{path.strip('/')}' not found"})


def content_policy_violation() -> httpx.Response:
    return fakes.json_response(
        422,
        {
            "detail": [
                {
                    "loc": ["body", "prompt"],
                    "msg": "The content could not be processed because it contained material "
                    "flagged by a content checker.",
                    "type": "content_policy_violation",
                    "url": "https://docs.fal.ai/errors#content_policy_violation",
                }
            ]
        },
    )


def validation_error() -> httpx.Response:
    return fakes.json_response(
        422,
        {
            "detail": [
                {
                    "loc": ["body", "num_inference_steps"],
                    "msg": "ensure this value is less than or equal to 12",
                    "type": "value_error.number.not_le",
                    "ctx": {"limit_value": 12},
                }
            ]
        },
    )


def rate_limited(after: str | None = None) -> httpx.Response:
    return fakes.json_response(
        429, {"detail": "Too many requests, please slow down."}, fakes.retry_after(after)
    )


def server_error(status: int = 500) -> httpx.Response:
    if status == 502:
        return fakes.bad_gateway()
    if status == 503:
        return fakes.json_response(503, {"detail": "Service temporarily unavailable, no runners available."})
    return fakes.json_response(status, {"detail": "Internal Server Error"})


def not_json() -> httpx.Response:
    return fakes.html_response(200, "fal")


Responder = Callable[["FakeFal", httpx.Request], httpx.Response]


@dataclass
class FakeFal(fakes.RoutedByHost):
    key: str = FAL_KEY
    # How a result carries its image: an inline `data:` URI (sync_mode) or a CDN URL.
    delivery: str = "data"
    cdn_scheme: str = "https"
    nsfw: bool = False
    image_bytes: bytes | None = None  # instead of a PNG of the requested size
    # Scripted answers, used in order; when a script runs out the fake behaves normally.
    run_script: list[Responder] = field(default_factory=list)  # sync POST, or the queue's result GET
    submit_script: list[Responder] = field(default_factory=list)
    status_script: list[Responder] = field(default_factory=list)
    cdn_script: list[Responder] = field(default_factory=list)
    # The statuses the queue reports, one per poll; the last one repeats.
    statuses: list[str] = field(default_factory=lambda: ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"])
    submit_overrides: dict[str, Any] = field(default_factory=dict)
    catalogue: set[str] = field(default_factory=lambda: {MODEL, "fal-ai/flux/dev"})
    catalogue_reply: Responder | None = None
    # What the adapter sent.
    inputs: list[dict[str, Any]] = field(default_factory=list)
    run_calls: int = 0  # generating calls (sync POSTs or queue result GETs)
    submits: int = 0
    polls: int = 0
    cancels: list[str] = field(default_factory=list)
    cdn_requests: list[httpx.Request] = field(default_factory=list)
    all_requests: list[httpx.Request] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    queued: dict[str, dict[str, Any]] = field(default_factory=dict)

    def routes(self) -> dict[str, Callable[[httpx.Request], httpx.Response]]:
        return {
            RUN_HOST: self._run,
            QUEUE_HOST: self._queue,
            CDN_HOST: self._cdn,
            CATALOGUE_HOST: self._catalogue,
        }

    def record(self, request: httpx.Request) -> None:
        self.all_requests.append(request)

    # --- the API -------------------------------------------------------------------------------------

    def _authorised(self, request: httpx.Request) -> bool:
        assert request.url.scheme == "https"
        assert not request.url.query, "nothing belongs in the query string (keys end up in logs)"
        assert request.url.host == request.headers["host"], "API calls go to the host by name"
        return bool(request.headers.get("authorization") == f"Key {self.key}")

    def _input(self, request: httpx.Request) -> dict[str, Any]:
        assert request.headers.get("content-type") == "application/json"
        body: dict[str, Any] = orjson.loads(request.content)
        assert set(body) == {
            "prompt",
            "image_size",
            "num_inference_steps",
            "num_images",
            "enable_safety_checker",
            "sync_mode",
        }, body
        assert isinstance(body["prompt"], str) and body["prompt"]
        assert body["image_size"] in [{"width": w, "height": h} for w, h in SIZE_FOR_RATIO.values()], body
        assert body["num_inference_steps"] == 4
        assert body["num_images"] == 1
        assert body["enable_safety_checker"] is True
        assert body["sync_mode"] is True
        self.inputs.append(body)
        return body

    def _run(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST", request.method
        if not self._authorised(request):
            return unauthorized()
        if request.url.path != f"/{MODEL}":
            return app_not_found(request.url.path)
        body = self._input(request)
        self.run_calls += 1
        if self.run_script:
            return self.run_script.pop(0)(self, request)
        return fakes.json_response(200, self.output(body))

    def output(self, body: dict[str, Any]) -> dict[str, Any]:
        """What fal answers for a well-formed input from a valid key."""
        width, height = body["image_size"]["width"], body["image_size"]["height"]
        data = self.image_bytes if self.image_bytes is not None else fakes.png(width, height)
        if self.delivery == "data":
            url = "data:image/png;base64," + base64.b64encode(data).decode()
        else:
            name = f"files/rabbit/{uuid.uuid4().hex[:21]}.png"
            self.files["/" + name] = data
            url = f"{self.cdn_scheme}://{CDN_HOST}/{name}"
        return {
            "images": [{"url": url, "width": width, "height": height, "content_type": "image/png"}],
            "timings": {"inference": 0.3821948240324855},
            "seed": 3_127_746_195,
            "has_nsfw_concepts": [self.nsfw],
            "prompt": body["prompt"],
        }

    # --- the queue -----------------------------------------------------------------------------------

    def _queue(self, request: httpx.Request) -> httpx.Response:
        if not self._authorised(request):
            return unauthorized()
        path = request.url.path
        if request.method == "POST":
            if path != f"/{MODEL}":
                return app_not_found(path)
            return self._submit(request)
        prefix = f"/{APP}/requests/"
        assert path.startswith(prefix), f"queue URLs drop the sub-path; the adapter asked for {path}"
        request_id, _, action = path[len(prefix) :].partition("/")
        if request.method == "PUT" and action == "cancel":
            self.cancels.append(request_id)
            return fakes.json_response(202, {"status": "CANCELLATION_REQUESTED"})
        assert request.method == "GET", request.method
        if request_id not in self.queued:
            return fakes.json_response(404, {"detail": "Request not found"})
        if action == "status":
            return self._status(request, request_id)
        assert action == "", path
        self.run_calls += 1
        if self.run_script:
            return self.run_script.pop(0)(self, request)
        return fakes.json_response(200, self.output(self.queued[request_id]))

    def _submit(self, request: httpx.Request) -> httpx.Response:
        body = self._input(request)
        self.submits += 1
        if self.submit_script:
            return self.submit_script.pop(0)(self, request)
        request_id = str(uuid.uuid4())
        self.queued[request_id] = body
        base = f"https://{QUEUE_HOST}/{APP}/requests/{request_id}"
        reply: dict[str, Any] = {
            "status": "IN_QUEUE",
            "request_id": request_id,
            "response_url": base,
            "status_url": f"{base}/status",
            "cancel_url": f"{base}/cancel",
            "logs": None,
            "metrics": {},
            "queue_position": 0,
        }
        reply.update(self.submit_overrides)
        return fakes.json_response(200, reply)

    def _status(self, request: httpx.Request, request_id: str) -> httpx.Response:
        self.polls += 1
        if self.status_script:
            return self.status_script.pop(0)(self, request)
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        base = f"https://{QUEUE_HOST}/{APP}/requests/{request_id}"
        body: dict[str, Any] = {"status": status, "request_id": request_id, "response_url": base}
        if status == "IN_QUEUE":
            body["queue_position"] = 2
        else:
            body["logs"] = None
            body["metrics"] = {"inference_time": 0.41} if status == "COMPLETED" else {}
        return fakes.json_response(200 if status == "COMPLETED" else 202, body)

    # --- the CDN and the catalogue -------------------------------------------------------------------

    def _cdn(self, request: httpx.Request) -> httpx.Response:
        fakes.check_cdn_request(request, "authorization", "the key must never go to the CDN")
        self.cdn_requests.append(request)
        if self.cdn_script:
            return self.cdn_script.pop(0)(self, request)
        data = self.files.get(request.url.path)
        if data is None:
            return httpx.Response(404, content=b"Not Found")
        return httpx.Response(200, content=data, headers={"content-type": "image/png"})

    def _catalogue(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "GET"
        assert request.url.path == "/v1/models", request.url.path
        assert "authorization" not in request.headers, "the catalogue is public: no key needed"
        if self.catalogue_reply is not None:
            return self.catalogue_reply(self, request)
        wanted = request.url.params.get_list("endpoint_id")
        found = [
            {
                "endpoint_id": endpoint,
                "metadata": {
                    "display_name": "FLUX.1 [schnell]",
                    "category": "text-to-image",
                    "status": "active",
                },
            }
            for endpoint in wanted
            if endpoint in self.catalogue
        ]
        return fakes.json_response(200, {"models": found, "next_cursor": None, "has_more": False})
