"""Alembic environment. Migrations always run on a connection that `postengine.migrate` hands in."""

from alembic import context

from postengine.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `postengine db upgrade`, not the alembic command")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
