"""Initial schema: posts (with full-text index), labels, clusters, runs, guard_counts, users, audit_log.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("connector", sa.String(50), nullable=False),
        sa.Column("visibility", sa.String(20), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("country", sa.String(8)),
        sa.Column("first_seen_at", sa.DateTime, nullable=False),
        sa.Column("last_run_at", sa.DateTime),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("source", sa.String(200)),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("stats", sa.Text),
    )
    op.create_table(
        "clusters",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(500), nullable=False, unique=True),
        sa.Column("size", sa.Integer, nullable=False, server_default="0"),
        sa.Column("first_seen", sa.DateTime),
        sa.Column("last_seen", sa.DateTime),
        sa.Column("representative_post_id", sa.Integer),
    )
    op.create_table(
        "posts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("external_id", sa.String(500), nullable=False),
        sa.Column("platform", sa.String(50), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("visibility", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("title", sa.Text),
        sa.Column("url", sa.Text),
        sa.Column("author_pseudonym", sa.String(64)),
        sa.Column("lang", sa.String(8), nullable=False),
        sa.Column("country", sa.String(8)),
        sa.Column("sentiment", sa.String(10)),
        sa.Column("category", sa.String(50)),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("cluster_id", sa.Integer, sa.ForeignKey("clusters.id", ondelete="SET NULL")),
        sa.Column("minhash", sa.LargeBinary),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("stored_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("source", "external_id", name="uq_posts_source_external_id"),
    )
    op.create_index("ix_posts_created_at", "posts", ["created_at"])
    op.create_index("ix_posts_category_created", "posts", ["category", "created_at"])
    op.create_index("ix_posts_cluster", "posts", ["cluster_id"])
    op.create_table(
        "labels",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("post_id", sa.Integer, sa.ForeignKey("posts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(30), nullable=False),
        sa.Column("value", sa.String(100), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("enricher", sa.String(100), nullable=False),
    )
    op.create_index("ix_labels_post", "labels", ["post_id"])
    op.create_index("ix_labels_name_value", "labels", ["name", "value"])
    op.create_table(
        "guard_counts",
        sa.Column("source", sa.String(200), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("action", sa.String(20), primary_key=True),
        sa.Column("reason", sa.String(50), primary_key=True),
        sa.Column("n", sa.Integer, nullable=False),
    )
    op.create_table(
        "guard_seen",
        sa.Column("digest", sa.String(32), primary_key=True),
        sa.Column("day", sa.String(10), nullable=False),
    )
    op.create_table(
        "cursors",
        sa.Column("source", sa.String(200), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(100), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("last_seen_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("target", sa.Text),
        sa.Column("detail", sa.Text),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    if op.get_bind().dialect.name == "sqlite":
        # External-content FTS5 index on the post text and title, kept in step by triggers.
        op.execute(
            "CREATE VIRTUAL TABLE posts_fts USING fts5(text, title, content='posts', content_rowid='id', "
            "tokenize='unicode61 remove_diacritics 2')"
        )
        op.execute(
            "CREATE TRIGGER posts_fts_ai AFTER INSERT ON posts BEGIN "
            "INSERT INTO posts_fts(rowid, text, title) VALUES (new.id, new.text, new.title); END"
        )
        op.execute(
            "CREATE TRIGGER posts_fts_ad AFTER DELETE ON posts BEGIN "
            "INSERT INTO posts_fts(posts_fts, rowid, text, title) VALUES('delete', old.id, old.text, old.title); END"
        )
        op.execute(
            "CREATE TRIGGER posts_fts_au AFTER UPDATE OF text, title ON posts BEGIN "
            "INSERT INTO posts_fts(posts_fts, rowid, text, title) VALUES('delete', old.id, old.text, old.title); "
            "INSERT INTO posts_fts(rowid, text, title) VALUES (new.id, new.text, new.title); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS posts_fts")
    for name in ("audit_log", "sessions", "users", "cursors", "guard_seen", "guard_counts", "labels", "posts", "clusters",
                 "runs", "sources"):
        op.drop_table(name)
