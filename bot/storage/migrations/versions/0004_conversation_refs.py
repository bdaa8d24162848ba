"""conversation references: where a platform that needs a stored address reaches a person or a channel

Revision ID: 0004_conversation_refs
Revises: 0003_session_revisions
Create Date: 2026-11-30 15:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.storage.types

revision = "0004_conversation_refs"
down_revision = "0003_session_revisions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversation_refs",
        sa.Column("platform", sa.String(length=20), nullable=False),
        sa.Column("workspace", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("conversation_id", sa.String(length=300), nullable=False),
        sa.Column("service_url", sa.String(length=300), nullable=False),
        sa.Column("reference", sa.JSON(), nullable=True),
        sa.Column("updated_at", bot.storage.types.Instant(), nullable=False),
        sa.PrimaryKeyConstraint("platform", "workspace", "kind", "key"),
    )
    with op.batch_alter_table("conversation_refs", schema=None) as batch_op:
        batch_op.create_index("ix_conversation_refs_conversation", ["platform", "conversation_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("conversation_refs", schema=None) as batch_op:
        batch_op.drop_index("ix_conversation_refs_conversation")
    op.drop_table("conversation_refs")
