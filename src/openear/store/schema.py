"""The store's tables (SQLAlchemy Core). Alembic migrations create them; a test keeps the two in step.

Times are stored as naive UTC. No table holds a raw handle, name, avatar or profile URL: authors exist only as
``posts.author_pseudonym``, and nothing groups by it.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
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
    text,
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
    Column("status", String(20), nullable=False),  # running, ok, partial, failed, interrupted
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

# -- web app (issue 6; migration 0003) ------------------------------------------------------------------------
# API tokens: only the SHA-256 of the token is kept; a token acts as its user with the role it was created for.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),  # the first characters, to tell tokens apart in lists
    Column("role", String(20), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("last_used_at", DateTime),
    Column("revoked_at", DateTime),
)

# Owner team membership (issue 6; migration 0006_user_teams): the teams (from the triage config) whose cases an
# owner sees and works. Other roles see all teams' cases (analyst, admin) or none (viewer).
user_teams = Table(
    "user_teams",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("team", String(100), primary_key=True),
)

# A user's saved searches: the query text and the explorer's filters (JSON). Never shared, never by author.
saved_searches = Table(
    "saved_searches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("query", Text, nullable=False),
    Column("filters", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
)
Index("ix_saved_searches_user", saved_searches.c.user_id)

# Settings changed from the admin page (retention_days, purpose); they win over openear.toml.
settings_overrides = Table(
    "settings_overrides",
    metadata,
    Column("key", String(50), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("updated_by", String(100), nullable=False),
)

# ---- triage (issue 5): cases, spike alerts, channel deliveries, report archive. Migration 0002_triage. --------
# Cases link posts and near-duplicate clusters, never authors (guardrail 5). Times are naive UTC.
cases = Table(
    "cases",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("title", String(300), nullable=False),
    Column("category", String(50)),
    Column("team", String(100), nullable=False),
    Column("assignee", String(100)),
    Column("status", String(20), nullable=False),  # new, investigating, escalated, resolved, dismissed
    Column("priority", String(10), nullable=False),  # low, normal, high, urgent
    Column("origin", String(100), nullable=False),  # "user:NAME", "rule:NAME" or "alert:ID"
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("progress_at", DateTime, nullable=False),  # the last step a person took: the SLA clock
    Column("escalated_at", DateTime),
    Column("closed_at", DateTime),
)
Index("ix_cases_status_team", cases.c.status, cases.c.team)

case_posts = Table(
    "case_posts",
    metadata,
    Column("case_id", Integer, ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True),
    Column("post_id", Integer, ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True),
    Column("added_at", DateTime, nullable=False),
)
Index("ix_case_posts_post", case_posts.c.post_id)

case_clusters = Table(
    "case_clusters",
    metadata,
    Column("case_id", Integer, ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True),
    Column("cluster_id", Integer, ForeignKey("clusters.id", ondelete="CASCADE"), primary_key=True),
    Column("added_at", DateTime, nullable=False),
)
Index("ix_case_clusters_cluster", case_clusters.c.cluster_id)

case_events = Table(
    "case_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", Integer, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
    Column("at", DateTime, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("kind", String(20), nullable=False),  # created, status, assigned, priority, note, linked, escalated
    Column("detail", Text),  # JSON
)
Index("ix_case_events_case", case_events.c.case_id)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dimension", String(20), nullable=False),  # category, source, lang
    Column("value", String(200), nullable=False),
    Column("granularity", String(10), nullable=False),  # hour, day
    Column("bucket_start", DateTime, nullable=False),
    Column("observed", Integer, nullable=False),
    Column("expected", Float, nullable=False),
    Column("score", Float, nullable=False),
    Column("status", String(20), nullable=False),  # open, acknowledged, closed
    Column("created_at", DateTime, nullable=False),
    Column("terms", Text),  # JSON list of the top terms
    Column("post_ids", Text),  # JSON list of the posts that drove it
    Column("cluster_ids", Text),  # JSON list of their clusters, largest first
    Column("case_id", Integer, ForeignKey("cases.id", ondelete="SET NULL")),
    UniqueConstraint("dimension", "value", "granularity", "bucket_start", name="uq_alerts_bucket"),
)
Index("ix_alerts_created", alerts.c.created_at)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime, nullable=False),
    Column("channel", String(20), nullable=False),  # email, webhook, none
    Column("team", String(100), nullable=False),
    Column("ref", String(100), nullable=False),  # case:ID, alert:ID, report:ID
    Column("subject", String(300), nullable=False),
    Column("status", String(20), nullable=False),  # sent, failed, skipped
    Column("attempts", Integer, nullable=False),
    Column("error", Text),
)
Index("ix_deliveries_at", deliveries.c.at)

report_archive = Table(
    "report_archive",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(20), nullable=False),  # daily, weekly, adhoc
    Column("audience", String(100), nullable=False),  # a team's name or the management group's
    Column("period_since", DateTime, nullable=False),
    Column("period_until", DateTime, nullable=False),
    Column("format", String(10), nullable=False),  # pdf, html
    Column("path", Text, nullable=False),  # relative to the workspace's reports/archive folder
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("kind", "audience", "period_since", "format", name="uq_report_archive_period"),
)
# ---- end of triage (issue 5) ----------------------------------------------------------------------------------

# ---- live sources (issue 4): migration 0004 ---------------------------------------------------------------------
# Health of each live source, for the dashboard: ok / failing / degraded (after 3 failures in a row), the last
# error (secrets redacted), and cumulative counts of items skipped for lack of consent (by reason, JSON) and of
# items deleted because the source deleted or removed them. Names no author.
source_status = Table(
    "source_status",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("state", String(20), nullable=False),
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    Column("last_attempt_at", DateTime),
    Column("last_ok_at", DateTime),
    Column("skipped", Text),
    Column("deleted", Integer, nullable=False, server_default="0"),
)

# ---- dashboard rollups (issue 6, issue 7 part 5): migration 0007_rollups -----------------------------------------
# Posts per UTC day and value of one dimension (category, sentiment, lang, source, kind), kept in the writing
# transaction by triggers on ``posts``; the overview reads whole days here instead of grouping every post.
post_rollups = Table(
    "post_rollups",
    metadata,
    Column("dim", String(10), primary_key=True),
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD (UTC)
    Column("value", String(200), primary_key=True),
    Column("n", Integer, nullable=False),
)
# ---- sign-in throttling: migration 0010_login_throttle ------------------------------------------------------------
# Failed sign-ins and lockouts per username or client address, as hashes (web.auth.LoginThrottle with a store).
login_failures = Table(
    "login_failures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(8), nullable=False),  # user | ip
    Column("key", String(64), nullable=False),  # sha256 of the casefolded username or the address
    Column("at", Float, nullable=False),  # seconds since the epoch
)
Index("ix_login_failures_key", login_failures.c.scope, login_failures.c.key, login_failures.c.at)
Index("ix_login_failures_at", login_failures.c.at)
login_locks = Table(
    "login_locks",
    metadata,
    Column("scope", String(8), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("until", Float, nullable=False),
)

# ---- cache invalidation: migration 0009_data_version ---------------------------------------------------------------
# One row whose ``n`` triggers move on every change to posts, clusters or guard_counts (see queries.data_version).
data_version = Table(
    "data_version",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("n", BigInteger, nullable=False),
)
# Clusters with 2+ posts by last and first post and size: the overview's clusters of a period (0011_cluster_span).
Index(
    "ix_clusters_multi_span",
    clusters.c.last_seen,
    clusters.c.first_seen,
    clusters.c.size,
    sqlite_where=text("size >= 2"),
    postgresql_where=text("size >= 2"),
)

# ---- analyst-trained models and emerging topics (issue 8): migration 0008_models ---------------------------------
# The registry of category models fitted by ``openear train`` (weights: plain files under the workspace's models/
# folder, ``path`` relative to it); at most one active.
models = Table(
    "models",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("kind", String(30), nullable=False),  # categories
    Column("created_at", DateTime, nullable=False),
    Column("created_by", String(100), nullable=False),
    Column("data_hash", String(64), nullable=False),  # SHA-256 of the training examples
    Column("data_source", Text, nullable=False),  # "store" or the JSON Lines file
    Column("n_examples", Integer, nullable=False),
    Column("classes", Text, nullable=False),  # JSON list
    Column("metrics", Text, nullable=False),  # JSON: cross-validated precision, recall, F1 per class, macro F1
    Column("path", Text, nullable=False),
    Column("active", Boolean, nullable=False, server_default="0"),
    Column("activated_at", DateTime),
)

# Emerging topics found each day among the posts no category explains: terms, counts, representative post ids
# (their text is read from ``posts`` when shown, so the purge and deletions at the source reach it). No author.
topics = Table(
    "topics",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("day", String(10), nullable=False),  # YYYY-MM-DD (UTC), the window's last day
    Column("rank", Integer, nullable=False),
    Column("window_days", Integer, nullable=False),
    Column("terms", Text, nullable=False),  # JSON list, strongest first
    Column("n_posts", Integer, nullable=False),  # near-duplicate groups in the window
    Column("n_previous", Integer, nullable=False),  # in the window before, scaled to the same length
    Column("score", Float, nullable=False),
    Column("post_ids", Text, nullable=False),  # JSON list of representative post ids
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("day", "rank", name="uq_topics_day_rank"),
)

# ---- scheduled jobs (issue 5): migration 0005_jobs ----------------------------------------------------------------
# The last run of each job of the scheduler in ``openear run`` (reports, escalation sweep, spike alerts, retention
# purge), so that a restart neither repeats a job nor forgets one that is due.
jobs = Table(
    "jobs",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("last_run_at", DateTime),  # the last successful run: when the next is due
    Column("last_attempt_at", DateTime),  # a failed attempt is retried after a while
    Column("last_ok_at", DateTime),
    Column("last_error", Text),
    Column("last_result", Text),  # a short summary of what the last run did
    Column("runs", Integer, nullable=False, server_default="0"),
    Column("failures", Integer, nullable=False, server_default="0"),
)
# Replaces ix_posts_cluster: a cluster's posts and their times without reading the rows (clusters of the period).
Index("ix_posts_cluster_created", posts.c.cluster_id, posts.c.created_at)
# The period aggregates' partial first and last days, grouped from the index alone.
Index(
    "ix_posts_created_dims",
    posts.c.created_at,
    posts.c.kind,
    posts.c.source,
    posts.c.lang,
    posts.c.sentiment,
    posts.c.category,
)

# ---- the store's own facts: migration 0013_store_meta ------------------------------------------------------------
# ``pseudonym_key``: the fingerprint (an HMAC of a constant, which reveals nothing about the key) of the key that
# pseudonymised the stored authors. Writers refuse another key, so one person never gets two pseudonyms unnoticed.
store_meta = Table(
    "store_meta",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("value", String(200), nullable=False),
    Column("updated_at", DateTime, nullable=False),
)
