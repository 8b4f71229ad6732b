"""``ix_clusters_multi_span``: the overview's clusters of a period from the index alone.

Replaces ``ix_clusters_multi_last_seen`` (0007_rollups) with a partial index on ``(last_seen, first_seen, size)``
of the clusters with 2+ posts. :func:`openear.store.queries.clusters_page` counts the clusters whose posts all fall
in the period, and ranks them by size, without reading their rows; only the few that straddle the period's edges
are grouped from their posts. That needs each cluster's ``size``, ``first_seen`` and ``last_seen`` equal to its
posts', as every write path now keeps them (before, a re-delivery that moved a post to another cluster left the
old one's overstated): the migration recomputes them once from the posts, and gives clusters without posts size 0.

Revision ID: 0011_cluster_span
Revises: 0007_rollups
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_cluster_span"
down_revision = "0007_rollups"
branch_labels = None
depends_on = None

MULTI = sa.text("size >= 2")
STATS = (
    "SELECT cluster_id, count(*) AS n, min(created_at) AS first_at, max(created_at) AS last_at, min(id) AS rep "
    "FROM posts WHERE cluster_id IS NOT NULL GROUP BY cluster_id"
)


def upgrade() -> None:
    op.create_index(
        "ix_clusters_multi_span",
        "clusters",
        ["last_seen", "first_seen", "size"],
        sqlite_where=MULTI,
        postgresql_where=MULTI,
    )
    op.drop_index("ix_clusters_multi_last_seen", table_name="clusters")
    # Only rows that differ, so the data_version triggers (0009) fire for those alone.
    op.execute(
        f"UPDATE clusters SET size = s.n, first_seen = s.first_at, last_seen = s.last_at, representative_post_id = "
        f"s.rep FROM ({STATS}) AS s WHERE clusters.id = s.cluster_id AND NOT (clusters.size = s.n AND "
        "clusters.first_seen = s.first_at AND clusters.last_seen = s.last_at AND "
        "coalesce(clusters.representative_post_id, 0) = s.rep)"
    )
    op.execute(
        "UPDATE clusters SET size = 0 WHERE size <> 0 AND NOT EXISTS "
        "(SELECT 1 FROM posts WHERE posts.cluster_id = clusters.id)"
    )


def downgrade() -> None:
    op.create_index(
        "ix_clusters_multi_last_seen", "clusters", ["last_seen"], sqlite_where=MULTI, postgresql_where=MULTI
    )
    op.drop_index("ix_clusters_multi_span", table_name="clusters")
