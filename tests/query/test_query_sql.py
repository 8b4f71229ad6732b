"""The SQL path (FTS5 + exact fallback) returns exactly the posts the Python evaluator matches."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from _query_strategies import (
    CATEGORIES,
    CLUSTERS,
    COUNTRIES,
    LANGS,
    SENTIMENTS,
    SEPARATORS,
    SOURCES,
    START,
    VOCAB,
    trees,
)
from _query_strategies import posts as post_dicts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select

from openear.errors import OpenearError
from openear.query import Document, Query, format_query, parse, search, to_sql
from openear.store import Store
from openear.store.schema import clusters, labels, posts

ROW_DEFAULTS = {"platform": "test", "visibility": "public", "content_hash": "h"}


@pytest.fixture(scope="module")
def store(module_db_url: str) -> Store:
    s = Store(module_db_url)  # SQLite (FTS5 backend) and PostgreSQL (posts_search backend), see conftest
    s.migrate()
    yield s
    s.close()


def load(store: Store, items: list[dict]) -> list[Document]:
    """Replace every post with ``items`` (rows inserted directly, so labels and clusters are exactly as given)."""
    now = datetime(2026, 3, 1)
    run_id = store.start_run("test", None)
    with store.begin() as conn:
        conn.execute(delete(labels))
        conn.execute(delete(posts))
        have = set(conn.execute(select(clusters.c.id)).scalars())
        for c in CLUSTERS:  # the clusters posts may be in (a post's cluster_id must name one)
            if c not in have:
                conn.execute(insert(clusters).values(id=c, key=f"test-{c}", size=0))
        for i, p in enumerate(items, 1):
            row = {k: v for k, v in p.items() if k != "categories"}
            conn.execute(insert(posts).values(id=i, external_id=str(i), run_id=run_id, stored_at=now, updated_at=now,
                                              **ROW_DEFAULTS, **row))
            for c in sorted(p["categories"]):
                conn.execute(insert(labels).values(post_id=i, name="category", value=c, score=1.0, enricher="t@1"))
    return [Document.from_row(p, p["categories"]) for p in items]


def sql_ids(store: Store, q: Query) -> set[int]:
    with store.connect() as conn:
        return {r.id for r in search(conn, q, limit=None)}


def py_ids(docs: list[Document], q: Query) -> set[int]:
    return {i for i, d in enumerate(docs, 1) if q.matches(d)}


def random_post(rnd: random.Random) -> dict:
    """A post like ``_query_strategies.posts`` draws, from a seeded generator (a fixed corpus for many queries)."""

    def text(n: int) -> str:
        parts = [rnd.choice(SEPARATORS) for _ in range(rnd.randint(0, 1))]
        for _ in range(rnd.randint(0, n)):
            parts += [rnd.choice(VOCAB), rnd.choice(SEPARATORS)]
        return "".join(parts)

    cats = set(rnd.sample(CATEGORIES, rnd.randint(0, 2)))
    return {
        "kind": rnd.choice(["social", "social", "news"]),
        "text": text(14),
        "title": rnd.choice([None, text(6)]),
        "lang": rnd.choice(LANGS),
        "source": rnd.choice(SOURCES),
        "category": rnd.choice([None, *sorted(cats)]),
        "categories": cats,
        "sentiment": rnd.choice([None, *SENTIMENTS]),
        "country": rnd.choice([None, *COUNTRIES]),
        "cluster_id": rnd.choice([None, *CLUSTERS]),
        "created_at": START + timedelta(minutes=rnd.randint(0, 60 * 24 * 60)),
    }


@pytest.fixture(scope="module")
def corpus(store: Store) -> list[Document]:
    rnd = random.Random(7)
    return load(store, [random_post(rnd) for _ in range(400)])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=trees())
def test_random_queries_on_a_fixed_corpus_agree(store: Store, corpus: list[Document], tree) -> None:
    q = parse(format_query(tree))
    assert sql_ids(store, q) == py_ids(corpus, q), format_query(tree)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(post_dicts(), min_size=1, max_size=8), tree=trees())
def test_random_posts_and_random_queries_agree(store: Store, items: list[dict], tree) -> None:
    docs = load(store, items)
    q = parse(format_query(tree))
    assert sql_ids(store, q) == py_ids(docs, q), format_query(tree)


def test_posts_through_the_real_write_path(db_url: str) -> None:
    """Guard -> enrichers -> Store.write_batch, then queries: SQL and Python agree on what was stored."""
    from openear.enrich import Enrichment
    from openear.guard import Guard
    from openear.models import Post

    s = Store(db_url)
    s.migrate()
    rnd = random.Random(3)
    guard = Guard(b"k" * 32)
    guarded = []
    for i in range(120):
        p = random_post(rnd)
        post = Post(source=p["source"], external_id=str(i), platform="reddit", kind=p["kind"], visibility="public",
                    created_at=p["created_at"].replace(tzinfo=UTC), text=p["text"] or "empty", title=p["title"],
                    author_id=f"a{i}", country=p["country"])
        verdict = guard.check(post, "public")
        if verdict.post is not None:
            guarded.append(verdict.post)
    batch = Enrichment().enrich(guarded)
    s.write_batch(s.start_run("test", None), batch)
    with s.connect() as conn:
        cats: dict[int, set[str]] = {}
        for pid, value in conn.execute(select(labels.c.post_id, labels.c.value).where(labels.c.name == "category")):
            cats.setdefault(pid, set()).add(value)
        docs = {r.id: Document.from_row(r._mapping, cats.get(r.id, set())) for r in conn.execute(select(posts))}
    assert len(docs) > 100
    in_clusters = sorted({d.cluster_id for d in docs.values() if d.cluster_id is not None})
    assert in_clusters  # the deduper put the stored posts in clusters
    queries = [
        "tips", "Propinas", "desactivacion", "tip*", "t?ps", '"missing tips"',
        "(tip OR tips) NEAR/3 (missing OR stolen)",
        "tips NEAR/5f app", "title:app", "kind:news -title:app", "lang:es propinas", "lang:en OR lang:es",
        "category:pay_tips", "NOT category:pay_tips", "after:2026-02-01 before:2026-02-15",
        "country:GB -sentiment:negative",
        "straße", "1ª", "pro*nas NEAR/2 (app OR pago)",
        f"cluster:{in_clusters[0]}", f"-cluster:{in_clusters[-1]} lang:en", f"cluster:{in_clusters[-1] + 1}",
    ]
    for text in queries:
        q = parse(text)
        with s.connect() as conn:
            got = {r.id for r in search(conn, q, limit=None)}
        assert got == {i for i, d in docs.items() if q.matches(d)}, text
    s.close()


def test_search_orders_newest_first_and_limits(store: Store) -> None:
    items = [
        {"kind": "social", "text": f"tips {i}", "title": None, "lang": "en", "source": "s", "category": None,
         "categories": set(), "sentiment": None, "country": None, "cluster_id": None,
         "created_at": datetime(2026, 1, 1) + timedelta(days=i)}
        for i in range(5)
    ]
    load(store, items)
    with store.connect() as conn:
        rows = search(conn, "tips", limit=3)
    assert [r["text"] for r in rows] == ["tips 4", "tips 3", "tips 2"]


def test_where_clause_uses_one_fts5_query_per_word_test() -> None:
    monotone = str(to_sql(parse("(tip OR tips) NEAR/3 (missing OR stolen) app lang:en")))
    assert monotone.count("MATCH") == 1
    assert str(to_sql(parse("tips NEAR/3 app -refund"))).count("MATCH") == 3  # candidates, exact, and for the UDF
    assert "oe_match" in str(to_sql(parse("tips NEAR/3f app")))


def test_postgresql_uses_the_gin_index_then_the_word_arrays() -> None:
    from sqlalchemy.dialects import postgresql

    sql = str(to_sql(parse("(tip OR tips) NEAR/3 (missing OR stolen) -refund lang:en"), "postgresql")
              .compile(dialect=postgresql.dialect()))
    assert "posts_search.doc @@" in sql and "openear_near" in sql and "MATCH" not in sql
    assert "@@" not in str(to_sql(parse("lang:es"), "postgresql"))  # field filters need no text backend
    cluster = str(to_sql(parse("cluster:7"), "postgresql").compile(dialect=postgresql.dialect()))
    assert "posts.cluster_id" in cluster and "@@" not in cluster
    with pytest.raises(OpenearError, match="unsupported database"):
        to_sql(parse("tips"), "oracle")


def test_cluster_selects_exactly_one_clusters_posts(store: Store) -> None:
    """``cluster:ID`` is the posts whose cluster_id is ID, on both stores and in Python; its negation keeps posts
    in no cluster; the canonical form drops leading zeros."""
    items = [
        {"kind": "social", "text": f"tips {i}", "title": None, "lang": "en", "source": "s", "category": None,
         "categories": set(), "sentiment": None, "country": None, "cluster_id": cid,
         "created_at": datetime(2026, 1, 1) + timedelta(days=i)}
        for i, cid in enumerate([1, 2, None, 1, 3])
    ]
    docs = load(store, items)
    expected = {
        "cluster:1": {1, 4}, "cluster:0002": {2}, "cluster:4": set(), "-cluster:1": {2, 3, 5},
        "cluster:1 OR cluster:3": {1, 4, 5}, "tips cluster:3": {5}, '"4" -cluster:2': {5},
    }
    for text, ids in expected.items():
        q = parse(text)
        assert sql_ids(store, q) == ids, text
        assert py_ids(docs, q) == ids, text
    assert format_query(parse("cluster:0002")) == "cluster:2"
