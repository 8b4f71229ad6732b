"""The store's tables (SQLAlchemy Core). Alembic migrations create them; a test keeps the two in step.

Times are stored as naive UTC. No table holds a raw handle, name, avatar or profile URL: authors exist only as
``posts.author_pseudonym``, and nothing groups by it.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

sources = Table(
    "sources",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("connector", String(50), nullable=False),
    Column("visibility", String(20), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("country", String(8)),
    Column("first_seen_at", DateTime, nullable=False),
    Column("last_run_at", DateTime),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(30), nullable=False),  # import, collect, demo, reenrich
    Column("source", String(200)),
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Column("status", String(20), nullable=False),  # running, ok, partial, failed
    Column("stats", Text),  # JSON of RunStats
)

clusters = Table(
    "clusters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(500), nullable=False, unique=True),
    Column("size", Integer, nullable=False, server_default="0"),
    Column("first_seen", DateTime),
    Column("last_seen", DateTime),
    Column("representative_post_id", Integer),
)

posts = Table(
    "posts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(200), nullable=False),
    Column("external_id", String(500), nullable=False),
    Column("platform", String(50), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("visibility", String(20), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("text", Text, nullable=False),
    Column("title", Text),
    Column("url", Text),
    Column("author_pseudonym", String(64)),
    Column("lang", String(8), nullable=False),
    Column("country", String(8)),
    Column("sentiment", String(10)),
    Column("category", String(50)),
    Column("content_hash", String(64), nullable=False),
    Column("cluster_id", Integer, ForeignKey("clusters.id", ondelete="SET NULL")),
    Column("minhash", LargeBinary),
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False),
    Column("stored_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    UniqueConstraint("source", "external_id", name="uq_posts_source_external_id"),
)
Index("ix_posts_created_at", posts.c.created_at)
Index("ix_posts_category_created", posts.c.category, posts.c.created_at)
Index("ix_posts_cluster", posts.c.cluster_id)

labels = Table(
    "labels",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("post_id", Integer, ForeignKey("posts.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(30), nullable=False),  # lang, category, subcategory, primary, sentiment
    Column("value", String(100), nullable=False),
    Column("score", Float, nullable=False),
    Column("enricher", String(100), nullable=False),  # name@version
)
Index("ix_labels_post", labels.c.post_id)
Index("ix_labels_name_value", labels.c.name, labels.c.value)

guard_counts = Table(
    "guard_counts",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD (UTC)
    Column("action", String(20), primary_key=True),  # rejected, withheld, scrubbed
    Column("reason", String(50), primary_key=True),
    Column("n", Integer, nullable=False),
)

# Keyed digests of items the guard rejected or withheld, so a re-delivered item is not counted twice. Holds no
# content, author, reason or source: only HMAC(key, source:external_id), its day, for the retention purge.
guard_seen = Table(
    "guard_seen",
    metadata,
    Column("digest", String(32), primary_key=True),
    Column("day", String(10), nullable=False),
)

cursors = Table(
    "cursors",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(100), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("role", String(20), nullable=False),  # viewer, analyst, owner, admin
    Column("disabled", Boolean, nullable=False, server_default="0"),
    Column("created_at", DateTime, nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),  # SHA-256 of the cookie's random id
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("last_seen_at", DateTime, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("action", String(50), nullable=False),
    Column("target", Text),
    Column("detail", Text),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)
