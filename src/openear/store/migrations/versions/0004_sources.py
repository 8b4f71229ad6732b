"""Live sources: ``source_status`` (health, degraded state, last error, skipped and deleted counts).

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "source_status",
        sa.Column("source", sa.String(200), primary_key=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
        sa.Column("last_attempt_at", sa.DateTime),
        sa.Column("last_ok_at", sa.DateTime),
        sa.Column("skipped", sa.Text),
        sa.Column("deleted", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("source_status")
