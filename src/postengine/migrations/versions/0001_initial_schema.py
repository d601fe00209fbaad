"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 01:21:52.874402
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "organizations",
        sa.Column("id", sa.String(length=28), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("plan", sa.String(length=20), nullable=False),
        sa.Column("subscription_status", sa.String(length=20), nullable=False),
        sa.Column("storage_used_bytes", sa.BigInteger(), nullable=False),
        sa.Column("is_demo", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organizations")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=28), nullable=False),
        sa.Column("org_id", sa.String(length=28), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("key_prefix", sa.String(length=16), nullable=False),
        sa.Column("scopes", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_api_keys_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index("ix_api_keys_org_id", ["org_id"], unique=False)

    op.create_table(
        "credit_accounts",
        sa.Column("org_id", sa.String(length=28), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("allowance", sa.Integer(), nullable=False),
        sa.Column("allowance_used", sa.Integer(), nullable=False),
        sa.Column("bonus", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "allowance_used >= 0 AND allowance_used <= allowance",
            name=op.f("ck_credit_accounts_allowance_in_range"),
        ),
        sa.CheckConstraint("bonus >= 0", name=op.f("ck_credit_accounts_bonus_non_negative")),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_credit_accounts_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_credit_accounts")),
    )
    op.create_table(
        "credit_ledger",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.String(length=28), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("allowance_delta", sa.Integer(), nullable=False),
        sa.Column("bonus_delta", sa.Integer(), nullable=False),
        sa.Column("generation_id", sa.String(length=28), nullable=True),
        sa.Column("note", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_credit_ledger_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_ledger")),
    )
    with op.batch_alter_table("credit_ledger", schema=None) as batch_op:
        batch_op.create_index("ix_credit_ledger_org_id_id", ["org_id", "id"], unique=False)
        batch_op.create_index("uq_credit_ledger_generation_kind", ["generation_id", "kind"], unique=True)

    op.create_table(
        "generations",
        sa.Column("id", sa.String(length=28), nullable=False),
        sa.Column("org_id", sa.String(length=28), nullable=False),
        sa.Column("api_key_id", sa.String(length=28), nullable=True),
        sa.Column("model", sa.String(length=40), nullable=False),
        sa.Column("aspect_ratio", sa.String(length=8), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("credits", sa.Integer(), nullable=False),
        sa.Column("allowance_part", sa.Integer(), nullable=False),
        sa.Column("bonus_part", sa.Integer(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("media_id", sa.String(length=28), nullable=True),
        sa.Column("provider", sa.String(length=40), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_generations_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_generations")),
    )
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.create_index("ix_generations_org_id_created_at", ["org_id", "created_at"], unique=False)
        batch_op.create_index("ix_generations_status_deadline_at", ["status", "deadline_at"], unique=False)

    op.create_table(
        "media",
        sa.Column("id", sa.String(length=28), nullable=False),
        sa.Column("org_id", sa.String(length=28), nullable=False),
        sa.Column("type", sa.String(length=12), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("source", sa.String(length=12), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=80), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("storage_key", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("ai_model", sa.String(length=40), nullable=True),
        sa.Column("ai_prompt", sa.Text(), nullable=True),
        sa.Column("ai_aspect_ratio", sa.String(length=8), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_media_org_id_organizations"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media")),
    )
    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.create_index("ix_media_org_id_created_at", ["org_id", "created_at"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.drop_index("ix_media_org_id_created_at")

    op.drop_table("media")
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.drop_index("ix_generations_status_deadline_at")
        batch_op.drop_index("ix_generations_org_id_created_at")

    op.drop_table("generations")
    with op.batch_alter_table("credit_ledger", schema=None) as batch_op:
        batch_op.drop_index("uq_credit_ledger_generation_kind")
        batch_op.drop_index("ix_credit_ledger_org_id_id")

    op.drop_table("credit_ledger")
    op.drop_table("credit_accounts")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_api_keys_org_id")

    op.drop_table("api_keys")
    op.drop_table("organizations")
