"""Owner team membership: ``user_teams`` (the teams whose cases an owner sees and works).

Revision ID: 0006_user_teams
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_user_teams"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_teams",
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("team", sa.String(100), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("user_teams")
