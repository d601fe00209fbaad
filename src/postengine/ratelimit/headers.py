"""Rate-limit response headers (API.md §3) and the 429 error built from an admission."""

import math
from functools import cache

from postengine.errors import RateLimitExceeded
from postengine.ratelimit.rules import RateLimitScope, RateLimitWindow
from postengine.ratelimit.store import Admission, WindowState


def _tightest(admission: Admission) -> WindowState:
    if not admission.admitted:
        return max(admission.blocking, key=lambda s: s.retry_at or 0.0)
    return min(admission.states, key=lambda s: (s.remaining, -s.reset_at))


@cache
def _policy(windows: tuple[RateLimitWindow, ...]) -> str:
    return ", ".join(f'"{w.name}";q={w.limit};w={w.seconds}' for w in windows)


def rate_limit_headers(admission: Admission) -> dict[str, str]:
    tight = _tightest(admission)
    reset_at = tight.retry_at if tight.retry_at is not None else tight.reset_at
    policy = _policy(tuple(s.window for s in admission.states))
    current = ", ".join(
        f'"{s.window.name}";r={s.remaining};t={max(0, math.ceil(s.reset_at - admission.now))}'
        for s in admission.states
    )
    headers = {
        "X-RateLimit-Limit": str(tight.window.limit),
        "X-RateLimit-Remaining": str(tight.remaining),
        "X-RateLimit-Reset": str(math.ceil(reset_at)),
        "RateLimit-Policy": policy,
        "RateLimit": current,
    }
    if not admission.admitted:
        headers["Retry-After"] = str(admission.retry_after)
    return headers


_SCOPE_LABEL = {RateLimitScope.API: "API", RateLimitScope.POSTS: "Posts", RateLimitScope.AI: "AI"}


def rate_limit_error(admission: Admission) -> RateLimitExceeded:
    tight = _tightest(admission)
    retry_after = admission.retry_after
    window = tight.window
    return RateLimitExceeded(
        f"{_SCOPE_LABEL[window.scope]} rate limit exceeded: {window.describe()}. "
        f"Retry after {retry_after} second{'s' if retry_after != 1 else ''}.",
        fields={"retry_after": retry_after},
        details={"scope": str(window.scope), "limit": window.limit, "window_seconds": window.seconds},
        headers=rate_limit_headers(admission),
    )
