"""Real Redis for the readiness tests (PE_TEST_REDIS_URL, default 127.0.0.1:6379): skipped with a
reason when absent, except in CI (`CI` set), where its absence is a failure."""


import pytest

from tests.redis_support import require_redis


@pytest.fixture(scope="session")
def redis_url() -> str:
    return require_redis()
