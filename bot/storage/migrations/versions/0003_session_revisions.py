"""live sessions can be moved and cancelled: a revision number, a cancellation instant, the mirrored revision

Revision ID: 0003_session_revisions
Revises: 0002_sender_leases
Create Date: 2026-11-30 15:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.storage.types

revision = "0003_session_revisions"
down_revision = "0002_sender_leases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sequence", sa.Integer(), nullable=False, server_default=sa.text("0")))
        batch_op.add_column(sa.Column("cancelled_at", bot.storage.types.Instant(), nullable=True))
        batch_op.add_column(
            sa.Column("mirrored_sequence", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )


def downgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("mirrored_sequence")
        batch_op.drop_column("cancelled_at")
        batch_op.drop_column("sequence")
