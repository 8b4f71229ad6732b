"""Dashboard rollups: ``post_rollups``, posts per UTC day and value of one dimension, kept by triggers.

Each stored post counts once under each dimension: ``category`` (``uncategorised`` when none), ``sentiment``
(``unknown`` when none), ``lang``, ``source`` and ``kind``. Triggers on ``posts`` keep the counts in the writing
transaction, whatever writes: the batch upsert, an analyst's label override, deletions at the source, the purge.
Rows whose count falls to 0 are deleted. Existing posts are counted by the migration.

Revision ID: 0007_rollups
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_rollups"
down_revision = "0001"
branch_labels = None
depends_on = None

# (dimension, SQL of its value over a posts row ``{r}``): what openear.store.queries groups by.
DIMENSIONS = (
    ("category", "coalesce({r}.category, 'uncategorised')"),
    ("sentiment", "coalesce({r}.sentiment, 'unknown')"),
    ("lang", "coalesce({r}.lang, 'unknown')"),
    ("source", "{r}.source"),
    ("kind", "{r}.kind"),
)
WATCHED = "created_at, category, sentiment, lang, source, kind"


def _day(dialect: str, r: str) -> str:
    if dialect == "postgresql":
        return f"to_char({r}.created_at, 'YYYY-MM-DD')"
    return f"strftime('%Y-%m-%d', {r}.created_at)"


def _keys(dialect: str, r: str, *extra: str) -> str:
    """A ``(dim, day, value, *extra)`` row per dimension of the posts row ``r``, as a VALUES list."""
    tail = "".join(f", {e}" for e in extra)
    return ", ".join(f"('{d}', {_day(dialect, r)}, {v.format(r=r)}{tail})" for d, v in DIMENSIONS)


def upgrade() -> None:
    op.create_table(
        "post_rollups",
        sa.Column("dim", sa.String(10), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("value", sa.String(200), primary_key=True),
        sa.Column("n", sa.Integer, nullable=False),
    )
    # Clusters with 2+ posts, by last post: the overview's candidates for "clusters of 2+ posts in the period".
    op.create_index(
        "ix_clusters_multi_last_seen",
        "clusters",
        ["last_seen"],
        sqlite_where=sa.text("size >= 2"),
        postgresql_where=sa.text("size >= 2"),
    )
    # A cluster's posts and their times from the index alone (replaces ix_posts_cluster), and the partial first and
    # last days of a period grouped by any dimension from the index alone.
    op.create_index("ix_posts_cluster_created", "posts", ["cluster_id", "created_at"])
    op.drop_index("ix_posts_cluster", table_name="posts")
    op.create_index("ix_posts_created_dims", "posts", ["created_at", "kind", "source", "lang", "sentiment", "category"])
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        _postgresql_triggers()
    else:
        _sqlite_triggers()
    union = " UNION ALL ".join(
        f"SELECT '{d}' AS dim, {_day(dialect, 'p')} AS day, {v.format(r='p')} AS value FROM posts AS p"
        for d, v in DIMENSIONS
    )
    op.execute(
        f"INSERT INTO post_rollups (dim, day, value, n) SELECT dim, day, value, count(*) FROM ({union}) AS k "
        "GROUP BY dim, day, value"
    )


def _sqlite_triggers() -> None:
    def add(r: str) -> str:
        return (
            f"INSERT INTO post_rollups (dim, day, value, n) VALUES {_keys('sqlite', r, '1')} "
            "ON CONFLICT (dim, day, value) DO UPDATE SET n = n + 1;"
        )

    def remove(r: str) -> str:
        keys = _keys("sqlite", r)
        return (
            f"UPDATE post_rollups SET n = n - 1 WHERE (dim, day, value) IN (VALUES {keys}); "
            f"DELETE FROM post_rollups WHERE n <= 0 AND (dim, day, value) IN (VALUES {keys});"
        )

    op.execute(f"CREATE TRIGGER post_rollups_ai AFTER INSERT ON posts BEGIN {add('NEW')} END")
    op.execute(f"CREATE TRIGGER post_rollups_ad AFTER DELETE ON posts BEGIN {remove('OLD')} END")
    op.execute(
        f"CREATE TRIGGER post_rollups_au AFTER UPDATE OF {WATCHED} ON posts BEGIN {remove('OLD')} {add('NEW')} END"
    )


def _pg_delta(rows: str, sign: int) -> str:
    keys = _keys("postgresql", "r")
    return (
        f"SELECT k.dim, k.day, k.value, {sign} AS n FROM {rows} AS r "
        f"CROSS JOIN LATERAL (VALUES {keys}) AS k(dim, day, value)"
    )


def _postgresql_triggers() -> None:
    """Statement triggers over transition tables: one grouped upsert per statement, as the search index does."""
    apply = (
        "INSERT INTO post_rollups (dim, day, value, n) SELECT dim, day, value, sum(n) FROM ({delta}) AS d "
        "GROUP BY dim, day, value HAVING sum(n) <> 0 ORDER BY dim, day, value "
        "ON CONFLICT (dim, day, value) DO UPDATE SET n = post_rollups.n + EXCLUDED.n; "
    )
    prune = (
        "DELETE FROM post_rollups AS p USING (SELECT DISTINCT dim, day, value FROM ({delta}) AS d) AS k "
        "WHERE p.dim = k.dim AND p.day = k.day AND p.value = k.value AND p.n <= 0; "
    )
    bodies = {
        "insert": apply.format(delta=_pg_delta("new_rows", 1)),
        "delete": apply.format(delta=_pg_delta("old_rows", -1)) + prune.format(delta=_pg_delta("old_rows", -1)),
        "update": apply.format(delta=f"{_pg_delta('new_rows', 1)} UNION ALL {_pg_delta('old_rows', -1)}")
        + prune.format(delta=_pg_delta("old_rows", -1)),
    }
    conn = op.get_bind()
    for name, body in bodies.items():
        conn.exec_driver_sql(
            f"CREATE FUNCTION openear_post_rollups_{name}() RETURNS trigger LANGUAGE plpgsql AS $oe$ BEGIN "
            f"{body} RETURN NULL; END $oe$"
        )
    conn.exec_driver_sql(
        "CREATE TRIGGER post_rollups_ai AFTER INSERT ON posts REFERENCING NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION openear_post_rollups_insert()"
    )
    conn.exec_driver_sql(
        "CREATE TRIGGER post_rollups_ad AFTER DELETE ON posts REFERENCING OLD TABLE AS old_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION openear_post_rollups_delete()"
    )
    # An UPDATE OF column list is not allowed with transition tables: the trigger fires on every update statement
    # of posts, and an update that changes none of the watched columns nets to nothing (HAVING sum(n) <> 0).
    conn.exec_driver_sql(
        "CREATE TRIGGER post_rollups_au AFTER UPDATE ON posts REFERENCING OLD TABLE AS old_rows "
        "NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION openear_post_rollups_update()"
    )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name in ("ai", "ad", "au"):
        op.execute(f"DROP TRIGGER IF EXISTS post_rollups_{name}" + (" ON posts" if dialect == "postgresql" else ""))
    if dialect == "postgresql":
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP FUNCTION IF EXISTS openear_post_rollups_{name}()")
    op.drop_index("ix_posts_created_dims", table_name="posts")
    op.create_index("ix_posts_cluster", "posts", ["cluster_id"])
    op.drop_index("ix_posts_cluster_created", table_name="posts")
    op.drop_index("ix_clusters_multi_last_seen", table_name="clusters")
    op.drop_table("post_rollups")
