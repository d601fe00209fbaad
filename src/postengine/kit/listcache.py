"""A short-lived cache of list pages (`GET /posts`, `GET /media`), per list, organisation and query:
the lists are the hot read paths (clients poll them) and a page is 20 objects.

Freshness: every change this process makes to an organisation's items (the API's writes, the
embedded publisher's records, generated images) drops that organisation's pages of that list at
once, so a client always reads its own writes. Changes made by a `postengine worker` next to an
embedded server show after at most `ttl` seconds. Single objects (`GET /posts/{id}`) are never cached.

Several API processes (scale-out, `serve --workers N` or many machines) turn the cache off
(`disable`): a client's next request may reach another process, which could not know about the
write yet, and reading your own writes matters more than the saved query.

A page is kept already serialised (`orjson.Fragment`), so a hit costs a dict lookup. A miss is
computed once however many requests ask for the same page at that moment (`page`): when a popular
page expires under load, one query runs and the others wait for it instead of repeating it.
"""

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable

import orjson

from postengine.db import Database

POSTS = "posts"
MEDIA = "media"
DEFAULT_TTL_SECONDS = 1.0
MAX_ENTRIES = 512


class ListCache:
    def __init__(
        self, ttl: float = DEFAULT_TTL_SECONDS, max_entries: int = MAX_ENTRIES, *, enabled: bool = True
    ) -> None:
        self.enabled = enabled
        self.ttl = ttl
        self.max_entries = max_entries
        self._versions: dict[str, int] = {}
        self._pages: dict[tuple[str, Hashable], tuple[int, float, orjson.Fragment]] = {}
        self._pending: dict[tuple[str, Hashable], tuple[int, asyncio.Task[orjson.Fragment]]] = {}

    async def page(
        self, org_id: str, query: Hashable, compute: Callable[[], Awaitable[orjson.Fragment]]
    ) -> orjson.Fragment:
        """The cached page, or `compute()`'s, shared with every request for it meanwhile. A request
        that arrives after a change does not share a computation that started before it."""
        if not self.enabled:
            return await compute()
        hit = self.get(org_id, query)
        if hit is not None:
            return hit
        key, version = (org_id, query), self.version(org_id)
        pending = self._pending.get(key)
        if pending is None or pending[0] != version:
            # A task of its own: a client that goes away does not cancel the others' page.
            pending = (version, asyncio.ensure_future(self._fill(key, version, compute)))
            self._pending[key] = pending
        return await asyncio.shield(pending[1])

    async def _fill(
        self, key: tuple[str, Hashable], version: int, compute: Callable[[], Awaitable[orjson.Fragment]]
    ) -> orjson.Fragment:
        try:
            page = await compute()
            self.put(key[0], key[1], version, page)
            return page
        finally:
            current = self._pending.get(key)
            if current is not None and current[1] is asyncio.current_task():
                del self._pending[key]

    def version(self, org_id: str) -> int:
        return self._versions.get(org_id, 0)

    def get(self, org_id: str, query: Hashable) -> orjson.Fragment | None:
        entry = self._pages.get((org_id, query))
        if entry is None:
            return None
        version, expires, page = entry
        if version != self.version(org_id) or expires < time.monotonic():
            return None
        return page

    def put(self, org_id: str, query: Hashable, version: int, page: orjson.Fragment) -> None:
        """Store a page computed when the organisation was at `version`: a change made while it was
        being computed has moved the version on, and the page is never served."""
        if len(self._pages) >= self.max_entries:
            self._pages.clear()
        self._pages[(org_id, query)] = (version, time.monotonic() + self.ttl, page)

    def invalidate(self, org_id: str) -> None:
        self._versions[org_id] = self.version(org_id) + 1


# One set of caches per database (that is, per running app or worker), each list by its name.
_caches: "weakref.WeakKeyDictionary[Database, dict[str, ListCache]]" = weakref.WeakKeyDictionary()


def for_db(db: Database, name: str) -> ListCache:
    caches = _caches.get(db)
    if caches is None:
        caches = _caches[db] = {}
    cache = caches.get(name)
    if cache is None:
        cache = caches[name] = ListCache()
    return cache


def disable(db: Database) -> None:
    """No list cache for this database in this process: every page is read from the database."""
    _caches[db] = {POSTS: ListCache(enabled=False), MEDIA: ListCache(enabled=False)}


def invalidate(db: Database, name: str, org_id: str) -> None:
    cache = _caches.get(db, {}).get(name)
    if cache is not None:
        cache.invalidate(org_id)
