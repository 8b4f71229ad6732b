"""The SQL path (FTS5 + exact fallback) returns exactly the posts the Python evaluator matches."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _strategies import CATEGORIES, COUNTRIES, LANGS, SENTIMENTS, SEPARATORS, SOURCES, START, VOCAB
from _strategies import posts as post_dicts
from _strategies import trees
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select

from openear.errors import OpenearError
from openear.query import Document, Query, format_query, parse, search, to_sql
from openear.store import Store
from openear.store.schema import labels, posts

ROW_DEFAULTS = {"platform": "test", "visibility": "public", "content_hash": "h"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    s = Store(f"sqlite:///{tmp_path_factory.mktemp('q') / 'db.sqlite'}")
    s.migrate()
    yield s
    s.close()


def load(store: Store, items: list[dict]) -> list[Document]:
    """Replace every post with ``items`` (rows inserted directly, so labels are exactly as given)."""
    now = datetime(2026, 3, 1)
    run_id = store.start_run("test", None)
    with store.begin() as conn:
        conn.execute(delete(labels))
        conn.execute(delete(posts))
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
    """A post like ``_strategies.posts`` draws, from a seeded generator (a fixed corpus for many queries)."""

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
