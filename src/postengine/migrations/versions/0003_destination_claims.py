"""post_destinations.claims (never reset, unlike attempts); platform post id and URL as text

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 05:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # How many times the destination was ever claimed. `attempts` is the retry budget and goes back
    # to 0 on `POST /posts/{id}/retry`; the publisher's "may an earlier claim have sent it?" check
    # needs a count that never does.
    op.add_column(
        "post_destinations",
        sa.Column("claims", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    op.execute("UPDATE post_destinations SET claims = attempts")
    if op.get_bind().dialect.name == "postgresql":
        # A platform's id or URL longer than the old bounds failed the record on PostgreSQL only, and
        # the destination was claimed again after every lease. SQLite does not enforce lengths.
        op.alter_column("post_destinations", "platform_post_id", type_=sa.Text())
        op.alter_column("post_destinations", "platform_post_url", type_=sa.Text())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("post_destinations", "platform_post_url", type_=sa.String(length=500))
        op.alter_column("post_destinations", "platform_post_id", type_=sa.String(length=200))
    with op.batch_alter_table("post_destinations") as batch:
        batch.drop_column("claims")
