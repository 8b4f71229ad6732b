"""Triage: cases (with linked posts, clusters and history), spike alerts, channel deliveries, report archive.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("category", sa.String(50)),
        sa.Column("team", sa.String(100), nullable=False),
        sa.Column("assignee", sa.String(100)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("priority", sa.String(10), nullable=False),
        sa.Column("origin", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("progress_at", sa.DateTime, nullable=False),
        sa.Column("escalated_at", sa.DateTime),
        sa.Column("closed_at", sa.DateTime),
    )
    op.create_index("ix_cases_status_team", "cases", ["status", "team"])
    op.create_table(
        "case_posts",
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("post_id", sa.Integer, sa.ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("added_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_case_posts_post", "case_posts", ["post_id"])
    op.create_table(
        "case_clusters",
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("cluster_id", sa.Integer, sa.ForeignKey("clusters.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("added_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_case_clusters_cluster", "case_clusters", ["cluster_id"])
    op.create_table(
        "case_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("detail", sa.Text),
    )
    op.create_index("ix_case_events_case", "case_events", ["case_id"])
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("dimension", sa.String(20), nullable=False),
        sa.Column("value", sa.String(200), nullable=False),
        sa.Column("granularity", sa.String(10), nullable=False),
        sa.Column("bucket_start", sa.DateTime, nullable=False),
        sa.Column("observed", sa.Integer, nullable=False),
        sa.Column("expected", sa.Float, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("terms", sa.Text),
        sa.Column("post_ids", sa.Text),
        sa.Column("cluster_ids", sa.Text),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id", ondelete="SET NULL")),
        sa.UniqueConstraint("dimension", "value", "granularity", "bucket_start", name="uq_alerts_bucket"),
    )
    op.create_index("ix_alerts_created", "alerts", ["created_at"])
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("team", sa.String(100), nullable=False),
        sa.Column("ref", sa.String(100), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_deliveries_at", "deliveries", ["at"])
    op.create_table(
        "report_archive",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("audience", sa.String(100), nullable=False),
        sa.Column("period_since", sa.DateTime, nullable=False),
        sa.Column("period_until", sa.DateTime, nullable=False),
        sa.Column("format", sa.String(10), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("kind", "audience", "period_since", "format", name="uq_report_archive_period"),
    )


def downgrade() -> None:
    for name in ("report_archive", "deliveries", "alerts", "case_events", "case_clusters", "case_posts", "cases"):
        op.drop_table(name)
