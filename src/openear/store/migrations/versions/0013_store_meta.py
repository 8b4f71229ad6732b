"""``store_meta``: facts about the store itself, first the fingerprint of the pseudonym key its authors were
pseudonymised with (writers refuse another key; ``openear key accept`` records a new one on purpose).

Revision ID: 0013_store_meta
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_store_meta"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "store_meta",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("value", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("store_meta")
