"""sender leases, per-learner lanes and the shared send budget

Revision ID: 0002_sender_leases
Revises: 0001
Create Date: 2026-11-30 12:35:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.storage.types

revision = "0002_sender_leases"
down_revision = "0001"
branch_labels = None
depends_on = None

LIVE = sa.text("state IN ('pending', 'sending')")
SENDING = sa.text("state = 'sending'")


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("lease_until", bot.storage.types.Instant(), nullable=True))
        batch_op.add_column(sa.Column("unsure", sa.Boolean(), nullable=False, server_default=sa.text("false")))
        batch_op.create_index(
            "ix_deliveries_lane", ["person_id", "id"], unique=False, sqlite_where=LIVE, postgresql_where=LIVE
        )
        batch_op.create_index(
            "ix_deliveries_lease", ["lease_until"], unique=False, sqlite_where=SENDING, postgresql_where=SENDING
        )
    op.create_table(
        "send_budget",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("next_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("send_budget")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_lease")
        batch_op.drop_index("ix_deliveries_lane")
        batch_op.drop_column("unsure")
        batch_op.drop_column("lease_until")
        batch_op.drop_column("claimed_by")
