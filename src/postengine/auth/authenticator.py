"""Turning an `Authorization` header into a `Caller`, without a database query per request.

Lookups are cached by keyed hash for `ttl` seconds. Revocation is still immediate: every command
that changes keys replaces the *auth epoch* file next to the database, and each authentication
compares that file's identity (a `stat` at most every 50 ms) with the one the cache was built
under; when it differs the cache is dropped. With Redis the same commands also increment a counter
there, which every server process follows (`kit.epoch.follow_remote`), so servers on other machines
drop their caches too. Without Redis, a CLI on another machine than the server (possible only with
PostgreSQL) does not reach the file; there the cache TTL bounds how long a revoked key keeps working.
"""

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from postengine.auth import keys
from postengine.auth.scopes import Scope, parse_scopes
from postengine.config import Settings
from postengine.db import Database
from postengine.errors import Unauthorized
from postengine.kit.clock import Clock, to_datetime
from postengine.kit.crypto import same
from postengine.kit.epoch import REMOTE_KEY, Epoch, EpochCache, bump_remote

log = logging.getLogger("postengine.auth")

MISSING_KEY = "Missing API key. Send it as: Authorization: Bearer pe_live_…"
INVALID_KEY = "Invalid or expired API key"


@dataclass(frozen=True, slots=True)
class Caller:
    key_id: str
    org_id: str
    key_name: str
    key_prefix: str
    scopes: frozenset[Scope]
    created_at: datetime
    expires_at: datetime | None


def bump_epoch(settings: Settings) -> None:
    """Tell every server that keys, organisations or credits changed: those sharing this data
    directory through the epoch file, and with Redis every server of the deployment."""
    Epoch(settings.epoch_path).bump()
    if settings.redis_url:
        import redis

        client = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
        try:
            bump_remote(client, settings.redis_prefix + REMOTE_KEY)
        except redis.RedisError as exc:
            log.warning(
                "could not tell the other servers through Redis (%s): they see the change within %g s",
                type(exc).__name__,
                settings.auth_cache_seconds,
            )
        finally:
            client.close()


class Authenticator:
    def __init__(
        self, database: Database, secret_key: bytes, epoch_path: Path, ttl: float, clock: Clock
    ) -> None:
        self._db = database
        self._secret_key = secret_key
        self._clock = clock
        self._cache: EpochCache[str, Caller | None] = EpochCache(Epoch(epoch_path), ttl)
        self.last_used: dict[str, float] = {}  # key id → Unix time, flushed to the database in batches

    async def authenticate(self, authorization: str | None) -> Caller:
        if not authorization:
            raise Unauthorized(MISSING_KEY)
        scheme, _, secret = authorization.partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not keys.KEY_PATTERN.fullmatch(secret):
            raise Unauthorized(INVALID_KEY)
        key_hash = keys.hash_key(self._secret_key, secret)

        cached = self._cache.lookup(key_hash)
        if cached is not None:
            (caller,) = cached
        else:
            caller = await self._load(key_hash)
            self._cache.store(key_hash, caller)

        now = self._clock.time()
        if caller is None or (caller.expires_at is not None and caller.expires_at <= to_datetime(now)):
            raise Unauthorized(INVALID_KEY)
        self.last_used[caller.key_id] = now
        return caller

    async def _load(self, key_hash: str) -> Caller | None:
        async with self._db.read() as session:
            key = await keys.find_by_hash(session, key_hash)
        # The lookup is by keyed hash, so its timing says nothing about the secret; the explicit
        # constant-time comparison is defence in depth should the lookup ever change.
        if key is None or key.revoked_at is not None or not same(key.key_hash, key_hash):
            return None
        return Caller(
            key_id=key.id,
            org_id=key.org_id,
            key_name=key.name,
            key_prefix=key.key_prefix,
            scopes=parse_scopes(key.scopes),
            created_at=key.created_at,
            expires_at=key.expires_at,
        )

    async def flush_last_used(self) -> None:
        if not self.last_used:
            return
        pending, self.last_used = self.last_used, {}
        async with self._db.write() as session:
            await keys.record_last_used(session, {key_id: to_datetime(at) for key_id, at in pending.items()})
