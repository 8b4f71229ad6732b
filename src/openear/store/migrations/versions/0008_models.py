"""Analyst-trained category models and emerging topics (issue 8 parts 4 and 5): ``models`` and ``topics``.

``models`` is the registry of the category models ``openear train`` fitted: their weights are plain files under the
workspace's ``models/`` folder; at most one row is active. ``topics`` holds the emerging topics found each day:
top terms, counts and the ids of representative posts (never their text, so the retention purge and deletions at
the source reach them; never an author).

Revision ID: 0008_models
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_models"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("data_hash", sa.String(64), nullable=False),
        sa.Column("data_source", sa.Text, nullable=False),
        sa.Column("n_examples", sa.Integer, nullable=False),
        sa.Column("classes", sa.Text, nullable=False),
        sa.Column("metrics", sa.Text, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("activated_at", sa.DateTime),
    )
    op.create_table(
        "topics",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("window_days", sa.Integer, nullable=False),
        sa.Column("terms", sa.Text, nullable=False),
        sa.Column("n_posts", sa.Integer, nullable=False),
        sa.Column("n_previous", sa.Integer, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("post_ids", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("day", "rank", name="uq_topics_day_rank"),
    )


def downgrade() -> None:
    op.drop_table("topics")
    op.drop_table("models")
