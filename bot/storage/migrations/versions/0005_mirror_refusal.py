"""a platform's refusal to mirror a live session is recorded once, and not retried

Revision ID: 0005_mirror_refusal
Revises: 0004_conversation_refs
Create Date: 2026-11-30 16:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_mirror_refusal"
down_revision = "0004_conversation_refs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mirror_refused", sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("mirror_refused")
