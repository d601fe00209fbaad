"""Engines and sessions.

SQLite (embedded): WAL, and two engines: readers share a small pool and never block each other;
writers go through one connection that opens every transaction with `BEGIN IMMEDIATE`, so a write
transaction holds the write lock from its first statement and never fails half-way with
SQLITE_BUSY on lock upgrade. Other processes (the CLI) wait on `busy_timeout`.

PostgreSQL (scale-out): one engine for both; correctness under concurrency comes from conditional
UPDATEs and row locks, not from serialising writers.

Hot paths (credits, generations) use `Database.run(work)`: `work` is a synchronous function of Core
statements run as one transaction. On SQLite it runs on the plain sqlite3 driver in a worker thread
(one thread hop per transaction; through aiosqlite every statement costs three or four); on
PostgreSQL the same function runs on asyncpg through `run_sync`.

Services never commit: `Database.write()` and `Database.run()` commit when their block ends without
an exception and roll back otherwise.
"""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

T = TypeVar("T")


class Database:
    def __init__(self, url: str, *, pool_size: int = 5, max_overflow: int = 10) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._sync_writer: Engine | None = None
        self._sync_reader: Engine | None = None
        if self.is_sqlite:
            _ensure_sqlite_dir(url)
            self.write_engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=60)
            self.read_engine = create_async_engine(url, pool_size=4, max_overflow=4)
            _sqlite_pragmas(self.write_engine.sync_engine, immediate=True)
            _sqlite_pragmas(self.read_engine.sync_engine, immediate=False)
            # Hot paths run whole transactions as one call in a worker thread on the plain sqlite3
            # driver: one thread hop per transaction instead of three or four per statement.
            sync_url = make_url(url).set(drivername="sqlite")
            args = {"check_same_thread": False}
            self._sync_writer = create_engine(sync_url, pool_size=1, max_overflow=0, connect_args=args)
            self._sync_reader = create_engine(sync_url, pool_size=4, max_overflow=4, connect_args=args)
            _sqlite_pragmas(self._sync_writer, immediate=True)
            _sqlite_pragmas(self._sync_reader, immediate=False)
            self._writer_slot = CapacityLimiter(1)
            self._reader_slots = CapacityLimiter(4)
        else:
            self.write_engine = create_async_engine(
                url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True
            )
            self.read_engine = self.write_engine
        self._write_sessions = async_sessionmaker(self.write_engine, expire_on_commit=False)
        self._read_sessions = async_sessionmaker(self.read_engine, expire_on_commit=False)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """One short write transaction: commit on success, roll back on any exception."""
        async with self._write_sessions() as session, session.begin():
            yield session

    async def run(self, work: Callable[[Connection], T]) -> T:
        """Run `work` (synchronous Core statements) as one write transaction: committed if it returns,
        rolled back if it raises. For hot paths, where the ORM and per-statement driver round trips
        cost more than the SQL itself.

        Atomic under cancellation too: on SQLite a started transaction runs to its end in its thread
        (the caller sees the cancellation afterwards); on PostgreSQL a cancelled one rolls back."""
        if self._sync_writer is not None:
            return await anyio.to_thread.run_sync(
                _in_transaction, self._sync_writer, work, limiter=self._writer_slot
            )
        async with self.write_engine.begin() as conn:
            return await conn.run_sync(work)

    async def run_read(self, work: Callable[[Connection], T]) -> T:
        """Like `run`, for reads (never blocks or is blocked by writers on SQLite's WAL)."""
        if self._sync_reader is not None:
            return await anyio.to_thread.run_sync(
                _in_transaction, self._sync_reader, work, limiter=self._reader_slots
            )
        async with self.read_engine.connect() as conn:
            return await conn.run_sync(work)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._read_sessions() as session:
            yield session

    async def dispose(self) -> None:
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()
        for engine in (self._sync_writer, self._sync_reader):
            if engine is not None:
                engine.dispose()


def _in_transaction(engine: Engine, work: Callable[[Connection], T]) -> T:
    with engine.begin() as conn:
        return work(conn)


def _ensure_sqlite_dir(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _unicode_lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _sqlite_pragmas(engine: Engine, *, immediate: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Take over transaction control from the driver so that BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable with WAL except on power loss
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()
        # SQLite's own lower() folds ASCII only, so a search for "é" missed "CAFÉ" (PostgreSQL
        # finds it). Python's str.lower() folds the same letters PostgreSQL's lower() does.
        dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
