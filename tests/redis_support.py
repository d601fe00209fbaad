"""The real Redis of the tests (PE_TEST_REDIS_URL, default 127.0.0.1:6379): `require_redis()` returns
its URL, or skips with a reason when it is absent, except in CI (`CI` set), where that is a failure."""

import os

import pytest
import redis

REDIS_URL = os.environ.get("PE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_redis() -> str:
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2) as probe:
            probe.ping()
    except (redis.RedisError, OSError) as exc:
        reason = f"Redis is not reachable at {REDIS_URL} ({type(exc).__name__})"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the Redis tests")
        pytest.skip(f"{reason} (set CI=1 to make this a failure)")
    return REDIS_URL
