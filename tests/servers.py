"""Real `postengine serve` processes in tests: wait until one answers, stop one."""

import os
import signal
import subprocess
import time
from collections.abc import Callable

import httpx


def wait_until_serving(
    proc: subprocess.Popen[bytes] | subprocess.Popen[str],
    url: str,
    *,
    seconds: float = 90.0,
    output: Callable[[], str] = lambda: "",
) -> None:
    """Poll `url` until it answers 200 (uvicorn answers once the app's lifespan, start-up sweep
    included, has run). Fails with `output()` (the server's log) if the process exits first, and
    after `seconds` if it never answers."""
    deadline = time.monotonic() + seconds
    while True:
        assert proc.poll() is None, f"postengine serve exited at start-up:\n{output()}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"postengine serve did not answer within {seconds:g} s"
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes] | subprocess.Popen[str], *, group: bool = False, seconds: float = 30.0) -> None:
    """SIGTERM (to the process's whole session with `group`, for one started with
    `start_new_session=True`), then `reap`."""
    if proc.poll() is None:
        if group:
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.terminate()
    reap(proc, group=group, seconds=seconds)


def reap(proc: subprocess.Popen[bytes] | subprocess.Popen[str], *, group: bool = False, seconds: float = 30.0) -> None:
    """Wait for a process told to stop; SIGKILL it if it has not exited within `seconds`."""
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
        proc.wait()
