"""Fault points for `tests/crash`: imported by every Python process started with this folder on
PYTHONPATH (Python's `site` imports `sitecustomize` at start-up), and inert unless
`PE_TEST_FAULT_POINT` names a point. Production code has no test hooks: this wraps three of its
functions from the outside, in the child process only.

When a `postengine serve` process reaches the named point inside a generation request, it writes
`PE_TEST_FAULT_MARKER` (JSON: the point, its pid, what it was doing) and then blocks the thread it is
on with `time.sleep`. Blocking (not `await`) matters: on the event loop's thread it freezes the whole
process, so neither the generation's own deadline (`anyio.fail_after`) nor the process's sweeper can
settle the generation before the test kills the process. (Inside a transaction on SQLite the pause is
on `Database.run`'s worker thread: the loop runs on, but the request waits for that thread, which no
deadline can cancel, and every other write waits for the single writer connection it holds.) The
test waits for the marker and SIGKILLs. Should a wrapped name disappear from postengine, the server
fails at start-up or the point is never reached, and the test fails saying so.

Points (`FaultPoint` in tests/crash/harness.py):
- `reserved`: the reservation transaction has committed; the provider has not been called.
- `stored`: the provider answered, the WebP and its thumbnail are written to storage; the completing
  transaction has not started.
- `complete_uncommitted`: inside the completing transaction, every statement executed, not committed.
- `complete_committed`: the completing transaction has committed; no response has been sent.
- `refund_uncommitted`: a failed provider call, inside the refund transaction, not committed.
- `refund_committed`: the refund has committed; no response has been sent.
(The provider call itself, `provider`, needs no hook: the fake provider hangs and writes the marker.)

Only the first hit inside a request (`_generate_image`) pauses: the sweeper's own refunds, run at
start-up for what earlier killed processes left, go through the same functions and must not.
"""

import contextvars
import json
import os
import time
from typing import Any

_POINT = os.environ.get("PE_TEST_FAULT_POINT")
_MARKER = os.environ.get("PE_TEST_FAULT_MARKER", "")
_in_request: contextvars.ContextVar[bool] = contextvars.ContextVar("pe_test_in_request", default=False)
_fired = False


def _armed(point: str) -> bool:
    global _fired
    if point != _POINT or _fired or not _in_request.get():
        return False
    _fired = True
    return True


def _pause(point: str, **details: Any) -> None:
    tmp = f"{_MARKER}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump({"point": point, "pid": os.getpid(), **details}, handle)
    os.replace(tmp, _MARKER)  # the test never reads a half-written marker
    while True:
        time.sleep(3600)  # until SIGKILL


def _closure(work: Any) -> dict[str, Any]:
    """The variables a transaction function (`complete`, `refund`) closes over: its media id etc."""
    code = getattr(work, "__code__", None)
    if code is None:
        return {}
    values = {}
    for name, cell in zip(code.co_freevars, work.__closure__ or (), strict=True):
        try:
            values[name] = cell.cell_contents
        except ValueError:  # an empty cell
            continue
    return {
        name: values[name] for name in ("generation_id", "media_id", "key", "thumb_key") if name in values
    }


def _pausing_inside(work: Any, point: str, details: dict[str, Any]) -> Any:
    def paused(conn: Any) -> Any:
        result = work(conn)  # every statement of the transaction executed; not committed yet
        _pause(point, **details)
        return result

    return paused


def _install() -> None:
    from postengine.db import Database
    from postengine.generation import service
    from postengine.media.storage.local import LocalStorage

    generate = service._generate_image

    async def in_request(*args: Any, **kwargs: Any) -> Any:
        token = _in_request.set(True)
        try:
            return await generate(*args, **kwargs)
        finally:
            _in_request.reset(token)

    service._generate_image = in_request

    run = Database.run
    after_commit = {"reserve": "reserved", "complete": "complete_committed", "refund": "refund_committed"}

    async def paused_run(self: Database, work: Any) -> Any:
        name = getattr(work, "__name__", "")
        details = _closure(work) if name in after_commit else {}
        if name in ("complete", "refund") and _armed(f"{name}_uncommitted"):
            work = _pausing_inside(work, f"{name}_uncommitted", details)
        result = await run(self, work)
        point = after_commit.get(name)
        if point is not None and _armed(point):
            _pause(point, result=repr(result), **details)
        return result

    Database.run = paused_run  # type: ignore[method-assign]

    put = LocalStorage.put

    async def paused_put(self: LocalStorage, key: str, data: bytes, content_type: str) -> Any:
        stored = await put(self, key, data, content_type)
        if key.endswith("/thumb.webp") and _armed("stored"):
            _pause("stored", key=key)
        return stored

    LocalStorage.put = paused_put  # type: ignore[method-assign]


if _POINT:
    _install()
