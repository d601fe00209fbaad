"""For tests that run postengine in other OS processes: synchronous reads of their database from
the test (the database itself: conftest's `process_database_url`)."""

import asyncio
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine


class Probe:
    """Synchronous reads of the processes' database from the test, on an event loop of its own."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.engine = create_async_engine(url)

    def rows(self, statement: Any) -> list[Any]:
        """A statement's rows; a string is taken as SQL text."""
        query = text(statement) if isinstance(statement, str) else statement

        async def run() -> list[Any]:
            async with self.engine.connect() as conn:
                return list((await conn.execute(query)).all())

        return self.loop.run_until_complete(run())

    def close(self) -> None:
        self.loop.run_until_complete(self.engine.dispose())
        self.loop.close()
