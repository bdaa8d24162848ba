"""the outbox's pending index is in claim order (due_at, priority, id), so a claim reads only its batch

Revision ID: 0006_claim_order_index
Revises: 0005_mirror_refusal
Create Date: 2026-11-30 20:05:00

The sender claims ``ORDER BY due_at, priority, id LIMIT n``. With the index on ``due_at`` alone, a burst (every row
due at the same instant) had to be read and sorted whole on every claim: a claim's cost grew with the backlog, and
draining a backlog of N rows cost N^2 / batch. In claim order, a claim reads its batch from the head of the index.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_claim_order_index"
down_revision = "0005_mirror_refusal"
branch_labels = None
depends_on = None

_PENDING = sa.text("state = 'pending'")


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_pending_due", sqlite_where=_PENDING, postgresql_where=_PENDING)
        batch_op.create_index(
            "ix_deliveries_pending_due",
            ["due_at", "priority", "id"],
            unique=False,
            sqlite_where=_PENDING,
            postgresql_where=_PENDING,
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_pending_due", sqlite_where=_PENDING, postgresql_where=_PENDING)
        batch_op.create_index(
            "ix_deliveries_pending_due", ["due_at"], unique=False, sqlite_where=_PENDING, postgresql_where=_PENDING
        )
