"""Initial schema: posts (with full-text index), labels, clusters, runs, guard_counts, users, audit_log.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

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
    if op.get_bind().dialect.name == "postgresql":
        _postgresql_search()


# -- PostgreSQL full-text search (issue 7) ----------------------------------------------------------------------
# ``posts_search`` holds, per post, the words of its text and of its title exactly as the query language sees them
# (``openear.query.text.words``: FTS5 unicode61 with remove_diacritics 2, so SQLite and PostgreSQL agree word for
# word), and a ``tsvector`` of all of them under a GIN index: ``doc @@ tsquery`` narrows a search to candidates,
# then the word arrays decide phrases, wildcards and NEAR exactly (functions below). Triggers keep it in step with
# ``posts`` (any writer, any statement); deleting a post cascades. Folding is a ``translate()`` over the same
# unicode61 table rather than ``unaccent``, which folds differently (``ß`` -> ``ss``) and would make the stores
# disagree. Lexemes are cut to 500 characters (a tsvector lexeme holds at most 2,047 bytes); the word arrays are
# not, so matching stays exact.
def _pg_regex_char(code: int) -> str:
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _postgresql_search() -> None:
    from openear.query._unicode61 import FOLD, SEPARATORS

    seps = "".join(
        _pg_regex_char(max(a, 1)) if max(a, 1) == b else f"{_pg_regex_char(max(a, 1))}-{_pg_regex_char(b)}"
        for a, b in SEPARATORS
    )
    kept = [(k, v) for k, v in sorted(FOLD.items()) if v]
    dropped = [k for k, v in sorted(FOLD.items()) if not v]
    src = "".join(chr(k) for k, _ in kept) + "".join(chr(k) for k in dropped)
    dst = "".join(v for _, v in kept)
    upper = "".join(chr(k) for k, _ in kept if k < 128)  # ASCII folds by case only (A-Z -> a-z)
    lower = "".join(v for k, v in kept if k < 128)
    for chars in (src, dst, seps):
        assert "'" not in chars and ":" not in chars and "%" not in chars and "\x00" not in chars
    conn = op.get_bind()
    # Split on the unicode61 separators of the original text, then fold each word, dropping words that fold to
    # nothing (combining marks only): openear.query.text.words, step for step. translate() scans its whole
    # table for every character it does not map, so the full table is used on words with non-ASCII only.
    conn.exec_driver_sql(
        "CREATE FUNCTION openear_words(t text) RETURNS text[] LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $oe$ "
        "SELECT coalesce(array_agg(f ORDER BY i) FILTER (WHERE f <> ''), '{}') FROM ("
        f"SELECT i, CASE WHEN w ~ '[^\\u0001-\\u007f]' THEN translate(w, '{src}', '{dst}') "
        f"ELSE translate(w, '{upper}', '{lower}') END AS f "
        f"FROM unnest(regexp_split_to_array(t, '[{seps}]+')) WITH ORDINALITY AS x(w, i)) AS y $oe$"
    )
    conn.exec_driver_sql(
        "CREATE FUNCTION openear_doc(w text[]) RETURNS tsvector LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS "
        "$oe$ SELECT array_to_tsvector(ARRAY(SELECT DISTINCT left(x, 500) FROM unnest(w) AS x)) $oe$"
    )
    # Start positions (1-based) in ``w`` of a phrase of LIKE patterns.
    conn.exec_driver_sql(
        "CREATE FUNCTION openear_phrase_starts(w text[], pats text[]) RETURNS SETOF integer LANGUAGE sql IMMUTABLE "
        "PARALLEL SAFE AS $oe$ SELECT i FROM generate_subscripts(w, 1) AS i WHERE NOT EXISTS ("
        "SELECT 1 FROM generate_subscripts(pats, 1) AS k WHERE NOT coalesce(w[i + k - 1] LIKE pats[k], false)) $oe$"
    )
    conn.exec_driver_sql(
        "CREATE FUNCTION openear_has_phrase(w text[], pats text[]) RETURNS boolean LANGUAGE sql IMMUTABLE "
        "PARALLEL SAFE AS $oe$ SELECT EXISTS (SELECT 1 FROM openear_phrase_starts(w, pats)) $oe$"
    )
    # FTS5's NEAR rule, as openear.query.evaluate has it: the earlier phrase ends at most n words before the later
    # one starts (overlap allowed); ordered: the left one ends before the right one starts, at most n words between.
    conn.exec_driver_sql(
        "CREATE FUNCTION openear_near(w text[], l text[], r text[], n integer, ordered boolean) RETURNS boolean "
        "LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $oe$ SELECT EXISTS (SELECT 1 FROM openear_phrase_starts(w, l) AS a, "
        "openear_phrase_starts(w, r) AS b WHERE CASE WHEN ordered THEN b - a - cardinality(l) BETWEEN 0 AND n "
        "WHEN a <= b THEN b - a - cardinality(l) <= n ELSE a - b - cardinality(r) <= n END) $oe$"
    )
    op.create_table(
        "posts_search",
        sa.Column("post_id", sa.Integer, sa.ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True,
                  autoincrement=False),
        sa.Column("is_news", sa.Boolean, nullable=False),
        sa.Column("text_words", sa.ARRAY(sa.Text), nullable=False),
        sa.Column("title_words", sa.ARRAY(sa.Text), nullable=False),
        sa.Column("doc", postgresql.TSVECTOR, nullable=False),
    )
    op.execute("CREATE INDEX ix_posts_search_doc ON posts_search USING gin (doc)")
    conn.exec_driver_sql(
        "CREATE FUNCTION openear_posts_search_insert() RETURNS trigger LANGUAGE plpgsql AS $oe$ BEGIN "
        "INSERT INTO posts_search (post_id, is_news, text_words, title_words, doc) "
        "SELECT n.id, n.kind = 'news', w.t, w.h, openear_doc(w.t || w.h) FROM new_rows AS n CROSS JOIN LATERAL "
        "(SELECT openear_words(n.text) AS t, coalesce(openear_words(n.title), '{}') AS h) AS w; "
        "RETURN NULL; END $oe$"
    )
    conn.exec_driver_sql(
        "CREATE TRIGGER posts_search_ai AFTER INSERT ON posts REFERENCING NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION openear_posts_search_insert()"
    )
    conn.exec_driver_sql(
        "CREATE FUNCTION openear_posts_search_update() RETURNS trigger LANGUAGE plpgsql AS $oe$ "
        "DECLARE t text[] := openear_words(NEW.text); h text[] := coalesce(openear_words(NEW.title), '{}'); BEGIN "
        "UPDATE posts_search SET is_news = NEW.kind = 'news', text_words = t, title_words = h, "
        "doc = openear_doc(t || h) WHERE post_id = NEW.id; RETURN NULL; END $oe$"
    )
    conn.exec_driver_sql(
        "CREATE TRIGGER posts_search_au AFTER UPDATE OF text, title, kind ON posts "
        "FOR EACH ROW EXECUTE FUNCTION openear_posts_search_update()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS posts_fts")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TABLE IF EXISTS posts_search")
        for fn in ("openear_posts_search_update()", "openear_posts_search_insert()", "openear_near(text[], text[], "
                   "text[], integer, boolean)", "openear_has_phrase(text[], text[])",
                   "openear_phrase_starts(text[], text[])", "openear_doc(text[])", "openear_words(text)"):
            op.execute(f"DROP FUNCTION IF EXISTS {fn} CASCADE")
    for name in ("audit_log", "sessions", "users", "cursors", "guard_seen", "guard_counts", "labels", "posts",
                 "clusters", "runs", "sources"):
        op.drop_table(name)
