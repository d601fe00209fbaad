"""The error of a rate-limit store that cannot decide (docs/scale-out.md, "Rate limits (Redis)")."""

from postengine.errors import ApiError
from postengine.ratelimit.rules import RateLimitScope

_SCOPE_LABEL = {
    RateLimitScope.API: "API",
    RateLimitScope.POSTS: "Post creation",
    RateLimitScope.AI: "AI generation",
}


class RateLimitUnavailable(ApiError):
    """503: the shared rate-limit store is unreachable and this request's limits must hold across
    every process (the `ai` and `posts` scopes), so it is refused rather than let through unlimited.
    `retryable` is true (503); `Retry-After` says when to try again."""

    status, code = 503, "rate_limit_unavailable"

    def __init__(self, scope: RateLimitScope, retry_after: int) -> None:
        super().__init__(
            f"{_SCOPE_LABEL[scope]} requests are refused for now: the server cannot check their rate "
            f"limits (its rate-limit store is unreachable). Retry after {retry_after} "
            f"second{'s' if retry_after != 1 else ''}.",
            fields={"retry_after": retry_after},
            details={"scope": str(scope)},
            headers={"Retry-After": str(retry_after)},
        )
