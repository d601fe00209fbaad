"""The rate-limit rules of API.md §3, as data."""

from dataclasses import dataclass, field
from enum import StrEnum


class RateLimitScope(StrEnum):
    API = "api"
    POSTS = "posts"
    AI = "ai"


@dataclass(frozen=True, slots=True)
class RateLimitWindow:
    scope: RateLimitScope
    limit: int
    seconds: int
    name: str = field(init=False, compare=False)  # in the `RateLimit-Policy` header, e.g. `ai-5m`

    def __post_init__(self) -> None:
        name = f"{self.scope}-{self.seconds}s"
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if self.seconds % size == 0:
                name = f"{self.scope}-{self.seconds // size}{unit}"
                break
        object.__setattr__(self, "name", name)

    def describe(self) -> str:
        """`50 requests per 5 minutes`, `60 requests per minute`."""
        for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
            if self.seconds % size == 0:
                count = self.seconds // size
                per = unit if count == 1 else f"{count} {unit}s"
                return f"{self.limit} requests per {per}"
        raise AssertionError("unreachable")


RULES: dict[RateLimitScope, tuple[RateLimitWindow, ...]] = {
    RateLimitScope.API: (
        RateLimitWindow(RateLimitScope.API, 60, 60),
        RateLimitWindow(RateLimitScope.API, 1_000, 3_600),
        RateLimitWindow(RateLimitScope.API, 10_000, 86_400),
    ),
    RateLimitScope.POSTS: (
        RateLimitWindow(RateLimitScope.POSTS, 20, 60),
        RateLimitWindow(RateLimitScope.POSTS, 100, 3_600),
        RateLimitWindow(RateLimitScope.POSTS, 500, 86_400),
    ),
    RateLimitScope.AI: (
        RateLimitWindow(RateLimitScope.AI, 50, 300),
        RateLimitWindow(RateLimitScope.AI, 200, 3_600),
    ),
}


def windows_for(*scopes: RateLimitScope) -> tuple[RateLimitWindow, ...]:
    return tuple(window for scope in scopes for window in RULES[scope])
