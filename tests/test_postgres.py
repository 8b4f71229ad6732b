"""PostgreSQL as the production store, and what every store must do alike (issue 7).

Tests with ``db_url`` run on SQLite and PostgreSQL; the others need PostgreSQL (``pg_server``): they skip with
"issue 7: no PostgreSQL at 127.0.0.1:5432" on a machine without one, and fail in CI.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from conftest import PgServer, Workspace, _pg_unavailable, pg_url, post_row
from openear import audit
from openear.enrich import Enrichment
from openear.models import Post
from openear.store import Store
from openear.store.schema import clusters, guard_seen, labels, posts

KEY = b"p" * 32
FROZEN_NOW = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)  # the clock of the retention tests: never datetime.now()


def enriched(items: list[tuple[str, str, datetime]], source: str = "src") -> list:
    from openear.guard import Guard

    guard = Guard(KEY)
    out = []
    for ext, body, created in items:
        verdict = guard.check(Post(source=source, external_id=ext, platform="reddit", kind="social",
                                   visibility="public", created_at=created, text=body, author_id=f"a{ext}"), "public")
        assert verdict.post is not None
        out.append(verdict.post)
    return Enrichment().enrich(out)


def index_entries(store: Store) -> int:
    with store.connect() as conn:
        table = "posts_fts" if store.dialect == "sqlite" else "posts_search"
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def search_ids(store: Store, q: str) -> list[str]:
    from openear.query import search

    with store.connect() as conn:
        return sorted(r["external_id"] for r in search(conn, q, limit=None))


# -- retention: a frozen clock, both stores ---------------------------------------------------------------------------
def test_retention_purge_with_a_frozen_clock(db_url: str) -> None:
    store = Store(db_url)
    store.migrate()
    old = FROZEN_NOW - timedelta(days=200)
    base = "Station wait was over two hours this morning and nobody from support could explain why"
    batch = enriched([
        ("old-1", base, old), ("old-2", base + " again", old + timedelta(hours=1)),
        ("edge", "Posted exactly at the retention limit about tips", FROZEN_NOW - timedelta(days=180)),
        ("new-1", "My tips were missing on three orders this week", FROZEN_NOW - timedelta(days=3)),
    ])
    store.write_batch(store.start_run("import", "src"), batch)
    from openear.guard import Guard

    rejection = Guard(KEY).check(Post(source="src", external_id="x", platform="reddit", kind="social",
                                      visibility="public", created_at=old, text="Everyone strike on Friday",
                                      author_id="z"), "public").rejection
    store.write_batch(store.start_run("import", "src"), [], rejections=[rejection])
    assert store.count() == 4 and index_entries(store) == 4 and search_ids(store, "station") == ["old-1", "old-2"]

    before = FROZEN_NOW - timedelta(days=180)  # retention 180 days, by the frozen clock
    posts_only = ("posts", "guard_digests", "clusters")  # derived data: tests/test_retention_derived.py
    assert {k: v for k, v in store.purge(before, dry_run=True).items() if k in posts_only} == {
        "posts": 2, "guard_digests": 1}
    assert store.count() == 4
    done = store.purge(before)
    assert {k: v for k, v in done.items() if k in posts_only} == {"posts": 2, "guard_digests": 1, "clusters": 1}
    assert store.count() == 2 and index_entries(store) == 2  # "edge" sits exactly on the limit: kept
    assert search_ids(store, "station") == [] and search_ids(store, "tips") == ["edge", "new-1"]
    with store.connect() as conn:
        live = set(conn.execute(select(posts.c.id)).scalars())
        assert set(conn.execute(select(labels.c.post_id)).scalars()) <= live
        assert conn.execute(select(func.count()).select_from(guard_seen)).scalar_one() == 0
        referenced = set(conn.execute(select(clusters.c.representative_post_id)).scalars())
        assert referenced <= live  # no cluster points at a purged post
    again = store.purge(before)
    assert {k: v for k, v in again.items() if k in posts_only} == {"posts": 0, "guard_digests": 0, "clusters": 0}
    store.close()


def test_deletions_reported_by_sources_are_applied(db_url: str) -> None:
    store = Store(db_url)
    store.migrate()
    created = FROZEN_NOW - timedelta(days=1)
    store.write_batch(store.start_run("collect", "src"), enriched([
        ("1", "The app crashes when I scan", created), ("2", "No tips this week again", created)]))
    assert store.delete_posts("src", ["1", "not-stored"]) == 1
    assert store.count() == 1 and index_entries(store) == 1
    assert search_ids(store, "crashes") == [] and search_ids(store, "tips") == ["2"]
    store.close()


def test_cli_purge_and_import_and_report(
    db_url: str, workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI on both stores: import (300 days ago, when all three posts were within the limit), report, purge
    (retention 180 days before the real now)."""
    from openear.cli import app

    runner = CliRunner()
    now = datetime.now(UTC)
    monkeypatch.setenv("OPENEAR_NOW", (now - timedelta(days=300)).isoformat())  # ingest's clock; purge's is real
    rows = [post_row(i, body, created_at=(now - timedelta(days=age)).strftime("%Y-%m-%dT%H:%M:%SZ"))
            for i, (body, age) in enumerate([("The app crashes on login", 2), ("No tips this week", 3),
                                              ("Me desactivaron la cuenta", 400)])]
    f = workspace.write_jsonl("p.jsonl", rows)

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, ["--home", str(workspace.home), *args], catch_exceptions=False)

    result = invoke("import", str(f), "--source", "s", "--visibility", "public", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["stored"] == 3
    out = tmp_path / "r.md"
    assert invoke("report", "--since", "30d", "--format", "md", "--output", str(out)).exit_code == 0
    assert "tips" in out.read_text(encoding="utf-8").lower()
    result = invoke("purge", "--dry-run")
    assert "Would delete 1 posts" in " ".join(result.output.split())
    assert invoke("purge").exit_code == 0
    assert workspace.store.count() == 2 and index_entries(workspace.store) == 2
    with workspace.store.connect() as conn:
        assert [e["action"] for e in audit.entries(conn)][-1] == "purge"


# -- PostgreSQL only --------------------------------------------------------------------------------------------------
@pytest.fixture
def pg_store(pg_server: PgServer) -> Store:
    store = Store(pg_server.reset_shared())
    yield store
    store.close()


def test_all_migrations_run_on_postgresql_from_an_empty_database(pg_database) -> None:  # type: ignore[no-untyped-def]
    store = Store(pg_database(migrated=False))
    assert store.revision() is None
    store.migrate()
    assert store.revision() == Store.script_heads()
    with store.connect() as conn:
        ext = conn.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_posts_search_doc'")).scalar()
    assert ext is not None and "gin" in ext
    store.close()


def test_search_words_are_folded_exactly_as_the_python_evaluator_folds_them(pg_store: Store) -> None:
    import random

    from openear.query.text import words

    rnd = random.Random(5)
    samples = ["Me llegó la DESACTIVACIÓN", "straße 1ª x²", "e-mail http://x.com/path don't", "ﬁ ǅ Ⅷ ½ İ ς Σ ẞ"]
    for _ in range(300):
        chars = [chr(rnd.choice([rnd.randint(1, 0x2FF), rnd.randint(1, 0xFFFF), rnd.randint(1, 0x2FFFF)]))
                 for _ in range(rnd.randint(0, 25))]
        samples.append("".join(c for c in chars if not 0xD800 <= ord(c) <= 0xDFFF))
    with pg_store.connect() as conn:
        got = conn.execute(text("SELECT openear_words(t) FROM unnest(CAST(:s AS text[])) AS t"), {"s": samples})
        assert [list(r[0]) for r in got] == [words(s) for s in samples]


# Characters that make folding and splitting hard: separators of all kinds, accents, combining marks (some fold to
# nothing, some are separators), letters that fold to other letters or stay, digits, emoji, CJK, astral letters.
_HARD_CHARS = (
    " \t\n-_'.,;!?¿¡—…/\u00a0\u2009\u3000\u200b\u2028aZz09ÁÉÍÓÚÑñüçÅøæœßẞİıǅǆﬁ½²ªº"
    "\u0300\u0301\u0303\u0308\u0327\u0332\u0345\u036f\u1dc0\u20dd\ufe0f\u200d"
    "ΣσςΩωДдЖж日本語한글العربيةहिन्दी😤👍🏽🇪🇸𝐀𝔞𐐀\U0001d7ce"
)


def _word_texts():  # type: ignore[no-untyped-def]
    from hypothesis import strategies as st

    from query._query_strategies import texts

    anything = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
    return st.one_of(
        st.just(""),
        texts(),
        st.text(st.sampled_from(_HARD_CHARS), max_size=40),
        st.text(st.characters(min_codepoint=1, max_codepoint=127), max_size=40),  # the ASCII-only path
        st.text(anything, max_size=40),
    )


def test_search_words_match_the_python_evaluator_on_any_text(pg_store: Store) -> None:
    """``openear_words`` (0012) gives word for word what :func:`openear.query.text.words` gives, on random text."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from openear.query.text import words

    with pg_store.connect() as conn:

        @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(st.lists(_word_texts(), min_size=1, max_size=12))
        def check(samples: list[str]) -> None:
            got = conn.execute(text("SELECT openear_words(t) FROM unnest(CAST(:s AS text[])) AS t"), {"s": samples})
            assert [list(r[0]) for r in got] == [words(s) for s in samples]

        check()
        assert conn.execute(text("SELECT openear_words(NULL)")).scalar() is None  # STRICT, as the trigger expects


def test_the_faster_words_migration_downgrades_to_the_same_words(pg_database) -> None:  # type: ignore[no-untyped-def]
    """0012's downgrade puts back 0001's functions, which give the same words and documents as 0012's."""
    import importlib.util

    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext

    from openear.query.text import words
    from openear.store import MIGRATIONS_DIR

    spec = importlib.util.spec_from_file_location("m0012", MIGRATIONS_DIR / "versions" / "0012_faster_words.py")
    assert spec is not None and spec.loader is not None
    faster = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(faster)
    samples = ["Me llegó la DESACTIVACIÓN", "straße 1ª x²", "e-mail http://x.com don't", "cafe\u0301 \u0301 x",
               "ﬁ ǅ Ⅷ ½ İ ς Σ ẞ", "", "   ", "Waited 45 minutes 😤", "日本語のテキスト", "x" * 600 + " y"]
    query = text("SELECT openear_words(t), openear_doc(openear_words(t))::text, "
                 "pg_get_functiondef('openear_words(text)'::regprocedure) FROM unnest(CAST(:s AS text[])) AS t")
    store = Store(pg_database())
    with store.begin() as conn, Operations.context(MigrationContext.configure(conn)):
        new = conn.execute(query, {"s": samples}).all()
        faster.downgrade()
        old = conn.execute(query, {"s": samples}).all()
        faster.upgrade()
        again = conn.execute(query, {"s": samples}).all()
    assert [list(r[0]) for r in new] == [words(s) for s in samples]
    assert [r[:2] for r in old] == [r[:2] for r in new] == [r[:2] for r in again]
    assert "ORDER BY i" in old[0][2] and "ORDER BY i" not in new[0][2] and again[0][2] == new[0][2]
    assert new[-1][1] == "'" + "x" * 500 + "' 'y'"  # lexemes are still cut to 500 characters
    store.close()


def test_the_index_follows_updates_and_kind(pg_store: Store) -> None:
    from sqlalchemy import update

    created = FROZEN_NOW - timedelta(days=1)
    pg_store.write_batch(pg_store.start_run("import", "src"), enriched([("1", "Support never answers", created)]))
    assert search_ids(pg_store, "answers") == ["1"]
    with pg_store.begin() as conn:
        conn.execute(update(posts).values(text="Support finally answered", title="Good news", kind="news"))
    assert search_ids(pg_store, "answers") == [] and search_ids(pg_store, "answered") == ["1"]
    assert search_ids(pg_store, "title:good") == ["1"]


def test_a_very_long_word_is_still_found(pg_store: Store) -> None:
    word = "x" * 3000
    pg_store.write_batch(pg_store.start_run("import", "src"),
                         enriched([("1", f"see {word} here", FROZEN_NOW), ("2", f"see {word}y here", FROZEN_NOW)]))
    assert search_ids(pg_store, word) == ["1"]
    assert search_ids(pg_store, f'"see {word}"') == ["1"]
    from openear.store.queries import PostFilter, search_posts

    with pg_store.connect() as conn:
        assert search_posts(conn, PostFilter(q=word))[1] == 1


def test_concurrent_writers_lose_and_duplicate_nothing(pg_store: Store) -> None:
    """Four threads write overlapping batches (same posts, same clusters, same guard counts) at once."""
    created = FROZEN_NOW - timedelta(days=1)
    batches = [enriched([(str(i), f"Station {i % 7} wait was over two hours again today", created)
                         for i in range(k, k + 40)]) for k in (0, 20, 0, 20)]
    errors: list[BaseException] = []
    stores = [Store(pg_store.url) for _ in batches]

    def write(store: Store, batch: list) -> None:
        try:
            store.write_batch(store.start_run("import", "src"), batch)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=pair) for pair in zip(stores, batches, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert errors == []
    assert pg_store.count() == 60 and index_entries(pg_store) == 60
    with pg_store.connect() as conn:
        sizes = conn.execute(select(func.sum(clusters.c.size))).scalar_one()
    assert sizes == 60


def test_audit_chain_stays_intact_under_concurrent_writers(pg_store: Store) -> None:
    """The advisory-lock path of openear.audit: writers in other processes (here: threads with their own
    connections, past the in-process lock) still chain one after another."""
    stores = [Store(pg_store.url) for _ in range(4)]

    def append(store: Store, n: int) -> None:
        for i in range(15):
            with store.begin() as conn:
                audit._append(conn, f"writer-{n}", "test", f"t{i}", None)

    threads = [threading.Thread(target=append, args=(s, n)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    with pg_store.connect() as conn:
        entries = list(audit.entries(conn))
        assert len(entries) == 60
        assert audit.verify(conn)


def test_a_server_restart_costs_no_batch(pg_store: Store, pg_server: PgServer) -> None:
    """Connections killed under the pool (as by a restart) are replaced before use (pool_pre_ping)."""
    pg_store.write_batch(pg_store.start_run("import", "src"), enriched([("1", "first post here", FROZEN_NOW)]))
    pg_server.admin(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{pg_url(pg_server.shared).rsplit('/', 1)[1]}' AND pid <> pg_backend_pid()"
    )
    pg_store.write_batch(pg_store.start_run("import", "src"), enriched([("2", "second post here", FROZEN_NOW)]))
    assert pg_store.count() == 2


def test_without_a_server_the_tests_skip_with_the_reason_or_fail_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"issue 7: no PostgreSQL at 127\.0\.0\.1:5432"):
        _pg_unavailable("refused")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="issue 7"):
        _pg_unavailable("refused")
