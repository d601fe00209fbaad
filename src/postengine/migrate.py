"""Apply Alembic migrations programmatically (`postengine db upgrade`, and `serve` on start)."""

from importlib.resources import files
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from postengine.db import Database

# Any constant: serialises concurrent `upgrade` calls from several processes on PostgreSQL.
_PG_MIGRATION_LOCK = 0x70656E67


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(files("postengine") / "migrations"))
    return cfg


async def upgrade(database: Database, revision: str = "head") -> None:
    cfg = _config()
    async with database.write_engine.begin() as conn:
        if not database.is_sqlite:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        await conn.run_sync(_run, cfg, revision)


def _run(connection: Any, cfg: Config, revision: str) -> None:
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


async def pending(database: Database) -> list[str]:
    """Revisions not yet applied to this database, oldest first."""
    script = ScriptDirectory.from_config(_config())
    async with database.read_engine.connect() as conn:
        current = await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_heads())
    revisions = script.iterate_revisions("heads", current[0] if current else "base")
    return [rev.revision for rev in reversed(list(revisions)) if rev.revision not in current]
