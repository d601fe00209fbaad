"""JSON logs: one object per line, and every line written while a request is handled carries that
request's id — the access line and the lines of any module the request passes through."""

import io
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import structlog

from postengine import logs
from postengine.generation.providers import ProviderFailed
from tests.api.helpers import ScriptedProvider, client_with

GEN = "/api/v1/ai/generate-image"


@contextmanager
def json_logs() -> Iterator[io.StringIO]:
    """The real logging set-up (`configure_logging(json=True)`) writing into a buffer; the previous
    logging state is put back afterwards. Entered in the test body: pytest swaps `sys.stderr`
    between a fixture's set-up and the test itself."""
    stream = io.StringIO()
    saved_stderr, sys.stderr = sys.stderr, stream
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, structlog.get_config(), logs._fast_access, logs._access_enabled)
    access_disabled = logging.getLogger("uvicorn.access").disabled
    logs.configure_logging(json=True, level="info")
    try:
        yield stream
    finally:
        root.handlers[:], level, config, logs._fast_access, logs._access_enabled = saved
        root.setLevel(level)
        structlog.configure(**config)
        logging.getLogger("uvicorn.access").disabled = access_disabled
        sys.stderr = saved_stderr


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]  # each line is one object


async def test_every_line_of_a_request_carries_its_id(settings, clock, make_tenant) -> None:
    tenant = await make_tenant()
    with json_logs() as stream:
        async with client_with(settings, clock, ScriptedProvider(ProviderFailed("upstream 502"))) as client:
            first = await client.post(GEN, headers=tenant.headers, json={"prompt": "a cat", "model": "flux-schnell"})
            second = await client.get("/api/v1/me", headers={**tenant.headers, "X-Request-Id": "client-42"})
        logging.getLogger("postengine.test").info("after the requests")
    assert first.status_code == 500 and second.status_code == 200

    records = lines(stream)
    failing_id = first.headers["x-request-id"]
    of_first = [r for r in records if r.get("request_id") == failing_id]
    loggers = {r["logger"] for r in of_first}
    # The generation service's warning (with its traceback, inside the one JSON object) and the
    # provider chain's line carry the id without being handed it.
    assert {"postengine.generation", "postengine.access"} <= loggers, records
    generation = {r["level"]: r for r in of_first if r["logger"] == "postengine.generation"}
    assert "provider scripted failed" in str(generation["info"]["event"])
    assert "ProviderFailed" in str(generation["warning"]["exception"])
    access = [r for r in records if r["logger"] == "postengine.access"]
    assert [r["request_id"] for r in access] == [failing_id, second.headers["x-request-id"]]
    assert access[1]["client_request_id"] == "client-42"
    # Outside a request, no id.
    after = next(r for r in records if r["event"] == "after the requests")
    assert "request_id" not in after
