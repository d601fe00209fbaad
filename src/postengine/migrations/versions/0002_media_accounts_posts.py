"""media uploads, social accounts, posts, destinations, sandbox outbox

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 03:12:08.310613
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "posts",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=28), nullable=False),
        sa.Column("api_key_id", sa.String(length=28), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("platform_content", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_posts_org_id_organizations"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_posts")),
    )
    with op.batch_alter_table("posts", schema=None) as batch_op:
        batch_op.create_index("ix_posts_org_id_created_at", ["org_id", "created_at"], unique=False)
        batch_op.create_index("ix_posts_org_id_scheduled_for", ["org_id", "scheduled_for"], unique=False)

    op.create_table(
        "social_accounts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.String(length=28), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("account_name", sa.String(length=200), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("avatar_url", sa.String(length=500), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("is_sandbox", sa.Boolean(), nullable=False),
        sa.Column("health_status", sa.String(length=16), nullable=False),
        sa.Column("health_message", sa.Text(), nullable=True),
        sa.Column("token_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_social_accounts_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_social_accounts")),
        sa.UniqueConstraint(
            "org_id", "platform", "account_name", name="uq_social_accounts_org_platform_name"
        ),
    )
    with op.batch_alter_table("social_accounts", schema=None) as batch_op:
        batch_op.create_index("ix_social_accounts_org_id_created_at", ["org_id", "created_at"], unique=False)

    op.create_table(
        "post_destinations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("post_id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=28), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("platform_post_id", sa.String(length=200), nullable=True),
        sa.Column("platform_post_url", sa.String(length=500), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["social_accounts.id"],
            name=op.f("fk_post_destinations_account_id_social_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_post_destinations_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["post_id"], ["posts.id"], name=op.f("fk_post_destinations_post_id_posts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_post_destinations")),
    )
    with op.batch_alter_table("post_destinations", schema=None) as batch_op:
        batch_op.create_index("ix_post_destinations_account_id", ["account_id"], unique=False)
        batch_op.create_index("ix_post_destinations_post_id", ["post_id"], unique=False)
        batch_op.create_index("ix_post_destinations_status_due_at", ["status", "due_at"], unique=False)

    op.create_table(
        "post_media",
        sa.Column("post_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("media_id", sa.String(length=28), nullable=False),
        sa.ForeignKeyConstraint(
            ["media_id"], ["media.id"], name=op.f("fk_post_media_media_id_media"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["post_id"], ["posts.id"], name=op.f("fk_post_media_post_id_posts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("post_id", "position", name=op.f("pk_post_media")),
    )
    with op.batch_alter_table("post_media", schema=None) as batch_op:
        batch_op.create_index("ix_post_media_media_id", ["media_id"], unique=False)

    op.create_table(
        "sandbox_outbox",
        sa.Column("destination_id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("platform_post_id", sa.String(length=64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("media", sa.JSON(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["social_accounts.id"],
            name=op.f("fk_sandbox_outbox_account_id_social_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("destination_id", name=op.f("pk_sandbox_outbox")),
    )
    with op.batch_alter_table("sandbox_outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sandbox_outbox_account_id"), ["account_id"], unique=False)

    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.add_column(sa.Column("thumbnail_key", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("duration", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("upload_expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.drop_column("upload_expires_at")
        batch_op.drop_column("duration")
        batch_op.drop_column("thumbnail_key")

    with op.batch_alter_table("sandbox_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sandbox_outbox_account_id"))

    op.drop_table("sandbox_outbox")
    with op.batch_alter_table("post_media", schema=None) as batch_op:
        batch_op.drop_index("ix_post_media_media_id")

    op.drop_table("post_media")
    with op.batch_alter_table("post_destinations", schema=None) as batch_op:
        batch_op.drop_index("ix_post_destinations_status_due_at")
        batch_op.drop_index("ix_post_destinations_post_id")
        batch_op.drop_index("ix_post_destinations_account_id")

    op.drop_table("post_destinations")
    with op.batch_alter_table("social_accounts", schema=None) as batch_op:
        batch_op.drop_index("ix_social_accounts_org_id_created_at")

    op.drop_table("social_accounts")
    with op.batch_alter_table("posts", schema=None) as batch_op:
        batch_op.drop_index("ix_posts_org_id_scheduled_for")
        batch_op.drop_index("ix_posts_org_id_created_at")

    op.drop_table("posts")
