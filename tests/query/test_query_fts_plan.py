"""``fts_search``: the one-FTS5-expression plan behind the explorer's fast search on SQLite (count by the index,
newest-first walk) selects exactly the posts ``to_sql`` selects."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.dialects import sqlite

from openear.query import parse, to_sql
from openear.query.sql import fts_search
from openear.store import Store
from openear.store.schema import posts

ROW_DEFAULTS = {"platform": "test", "visibility": "public", "content_hash": "h", "source": "s", "lang": "en"}
POSTS = [  # (kind, text, title)
    ("social", "pay tips late", None),
    ("social", "pay only", "tips in the title"),  # a social title is never searched
    ("social", "tips only", "pay day"),
    ("news", "pay", "tips for couriers"),  # a news title is
    ("news", "nothing here", "pay and tips"),
    ("social", "tipping pay", None),
    ("social", "zebra", None),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    s = Store(f"sqlite:///{Path(tmp_path_factory.mktemp('fts')) / 'db.sqlite'}")
    s.migrate()
    now = datetime(2026, 3, 1)
    run_id = s.start_run("test", None)
    with s.begin() as conn:
        for i, (kind, text, title) in enumerate(POSTS * 20, 1):
            conn.execute(insert(posts).values(
                id=i, external_id=str(i), run_id=run_id, stored_at=now, updated_at=now, kind=kind, text=text,
                title=title, created_at=now + timedelta(minutes=i % 9), **ROW_DEFAULTS,
            ))
    yield s
    s.close()


def _sql(cond: object) -> str:
    return str(cond.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))  # type: ignore[attr-defined]


@pytest.mark.parametrize("text", ["pay AND tips", "pay", '"pay tips"', "tip*", "pay OR zebra", "title:pay", "tips app"])
def test_fts_search_is_what_to_sql_compiles(text: str) -> None:
    node = parse(text).root
    found = fts_search(node)
    assert found is not None
    assert _sql(found.condition()) == _sql(to_sql(node, "sqlite"))


@pytest.mark.parametrize("text", ["pay NOT tips", "lang:en", "pay AND lang:en", "t?ps", "NOT pay"])
def test_queries_one_fts5_expression_cannot_say_have_no_fts_search(text: str) -> None:
    assert fts_search(parse(text).root) is None


@pytest.mark.parametrize("text", ["pay AND tips", "pay", '"pay tips"', "tip*", "pay OR zebra", "title:pay", "zebra"])
def test_index_count_less_rejected_is_the_count_and_the_walk_finds_the_same_rows(store: Store, text: str) -> None:
    node = parse(text).root
    found = fts_search(node)
    assert found is not None
    order = (posts.c.created_at.desc(), posts.c.id.desc())
    with store.connect() as conn:
        want = [r.id for r in conn.execute(select(posts.c.id).where(to_sql(node, "sqlite")).order_by(*order))]
        hits = conn.execute(found.hits()).scalar_one()
        rejected = conn.execute(select(func.count()).select_from(posts).where(found.rejected())).scalar_one()
        walked = [r.id for r in conn.execute(select(posts.c.id).where(found.condition(walk=True)).order_by(*order))]
    assert hits - rejected == len(want)
    assert walked == want


def test_social_titles_make_the_index_count_too_high(store: Store) -> None:
    """Without subtracting the rejected matches, the FTS5 count would include social posts matched on their title."""
    found = fts_search(parse("pay AND tips").root)
    assert found is not None
    with store.connect() as conn:
        rejected = conn.execute(select(func.count()).select_from(posts).where(found.rejected())).scalar_one()
    assert rejected == 2 * 20  # the two social posts with one word in the title, 20 times each


def test_the_walk_reads_the_created_at_index_newest_first(store: Store) -> None:
    found = fts_search(parse("pay AND tips").root)
    assert found is not None
    order = (posts.c.created_at.desc(), posts.c.id.desc())
    plans = {}
    with store.connect() as conn:
        for walk in (True, False):
            stmt = select(posts.c.id).where(found.condition(walk)).order_by(*order).limit(25)
            sql = _sql(stmt)
            plans[walk] = " ".join(r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
    assert "USING INDEX ix_posts_created_at" in plans[True] and "TEMP B-TREE" not in plans[True]
    assert "INTEGER PRIMARY KEY" in plans[False]
