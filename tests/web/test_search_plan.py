"""The explorer's search plans (FTS5 count, newest-first index walk, sorting every match) give the same page and
total as the query evaluator, on both stores, for frequent and rare words, with and without facets."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, insert, select

from openear.query import Document, parse, to_sql
from openear.query.sql import fts_search
from openear.store import Store
from openear.store import queries as q
from openear.store.schema import labels, posts
from openear.web import search
from openear.web.search import FtsPlan, find_posts, make_filter

START = datetime(2026, 3, 1)
ROW_DEFAULTS = {"platform": "test", "visibility": "public", "content_hash": "h", "source": "s"}
WORDS = ["pay", "pay", "tips", "tips", "app", "late", "order", "paid", "tipping"]


def _post(rnd: random.Random) -> dict[str, Any]:
    def text(n: int) -> str:
        return " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(0, n)))

    kind = rnd.choice(["social", "social", "news"])
    words = text(6) + (" zebra" if rnd.random() < 0.01 else "")
    return {
        "kind": kind,
        "text": words,
        # news posts have titles; a few social posts do too, and their title is never searched
        "title": text(4) if kind == "news" or rnd.random() < 0.3 else None,
        "lang": rnd.choice(["en", "es"]),
        "category": rnd.choice([None, "pay_tips", "safety"]),
        "created_at": START + timedelta(hours=rnd.randint(0, 96)),  # many posts share a time: id breaks the tie
    }


@pytest.fixture(scope="module")
def store(module_db_url: str) -> Iterator[Store]:
    s = Store(module_db_url)
    s.migrate()
    rnd = random.Random(11)
    items = [_post(rnd) for _ in range(400)]
    items[17]["text"] += " zebra"  # at least one post holds the rare word
    now = datetime(2026, 3, 10)
    run_id = s.start_run("test", None)
    with s.begin() as conn:
        conn.execute(delete(labels))
        conn.execute(delete(posts))
        for i, p in enumerate(items, 1):
            conn.execute(insert(posts).values(id=i, external_id=str(i), run_id=run_id, stored_at=now, updated_at=now,
                                              **ROW_DEFAULTS, **p))
    s.items = items  # type: ignore[attr-defined]
    yield s
    s.close()


def expected(items: list[dict[str, Any]], text: str, flt: q.PostFilter) -> list[int]:
    """The ids the evaluator matches, with the facets applied, newest first (id breaks ties)."""
    query = parse(text)
    since = flt.since.replace(tzinfo=None) if flt.since else None
    until = flt.until.replace(tzinfo=None) if flt.until else None
    hits = [
        (p["created_at"], i)
        for i, p in enumerate(items, 1)
        if query.matches(Document.from_row({**p, "source": "s"}))
        and all(getattr(flt, f) in (None, p[f]) for f in ("category", "lang", "kind"))
        and (since is None or p["created_at"] >= since)
        and (until is None or p["created_at"] < until)
    ]
    return [i for _, i in sorted(hits, reverse=True)]


QUERIES = [
    "pay AND tips",  # frequent: the index walk
    "pay",
    "tips app",
    '"pay tips"',
    "tip*",
    "pay OR zebra",
    "zebra",  # rare: every match sorted
    "title:pay",  # never matches a social post: each FTS5 match is checked
    "pay NOT tips",  # not one FTS5 expression: the general plan
    "pay AND lang:es",
    "nosuchword",
]
FILTERS = [
    make_filter(),
    make_filter(lang="en"),
    make_filter(category="pay_tips", kind="news"),
    make_filter(since=date(2026, 3, 2), until=date(2026, 3, 3)),
]


@pytest.mark.parametrize(
    ("walk_rows", "sort_entries", "count_rows"),
    [(0, 10, 10**12), (10**12, 10, 0), (60, 0, 0), (60, 0, 10**12)],
    ids=["sort,rows", "walk,index", "capped walk,index", "capped walk,rows"],  # some pages fill within 60, some not
)
@pytest.mark.parametrize("text", QUERIES)
def test_search_pages_and_totals_match_the_evaluator(
    store: Store, text: str, walk_rows: int, sort_entries: int, count_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search, "WALK_ROWS", walk_rows)  # pick the plans the size of the store would not
    monkeypatch.setattr(search, "SORT_ENTRIES", sort_entries)
    monkeypatch.setattr(search, "COUNT_ROWS", count_rows)
    for flt in FILTERS:
        want = expected(store.items, text, flt)  # type: ignore[attr-defined]
        for limit, offset in [(25, 0), (25, 25), (7, 3), (25, 10_000)]:
            with store.connect() as conn:
                rows, total = find_posts(conn, text, flt, limit, offset)
            assert total == len(want), (text, flt)
            assert [r["id"] for r in rows] == want[offset : offset + limit], (text, flt, offset)
            assert all(r["created_at"].tzinfo is UTC for r in rows)


def test_the_rare_word_and_social_titles_are_in_the_fixture(store: Store) -> None:
    """The cases the plans differ on are present: a rare word, and social posts whose title alone holds a word."""
    items = store.items  # type: ignore[attr-defined]
    assert 0 < len(expected(items, "zebra", make_filter())) < 10
    title_only = [p for p in items if p["kind"] == "social" and p["title"] and "pay" in p["title"].split()
                  and "pay" not in p["text"].split()]
    assert title_only
    assert len(expected(items, "pay AND tips", make_filter())) > 50


# -- a word frequent among old posts only: the walk stops at WALK_ROWS entries, then every match is sorted --------
OLD, NEW, CAP = 300, 300, 100  # the 300 oldest posts hold "legacy", the 300 newer ones do not; the walk reads 100
PAGES = [(25, 0), (25, 25), (7, 140), (25, 1000)]  # (limit, offset)


@pytest.fixture(scope="module")
def old_word_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path_factory.mktemp('old') / 'db.sqlite'}")
    s.migrate()
    now = datetime(2026, 3, 10)
    run_id = s.start_run("test", None)
    with s.begin() as conn:
        for i in range(1, OLD + NEW + 1):
            text = "legacy pay" if i <= OLD else ("pay tips" if i % 3 else "late order")
            conn.execute(insert(posts).values(
                id=i, external_id=str(i), run_id=run_id, stored_at=now, updated_at=now, kind="social", text=text,
                title=None, lang="en", created_at=START + timedelta(minutes=i // 2), **ROW_DEFAULTS,  # pairs tie
            ))
    yield s
    s.close()


def _pages(store: Store, text: str) -> list[tuple[list[int], int, FtsPlan]]:
    found = fts_search(parse(text).root)
    assert found is not None
    out = []
    for limit, offset in PAGES:
        with store.connect() as conn:
            rows, total, plan = search._find_fts(conn, found, limit, offset)
        out.append(([r["id"] for r in rows], total, plan))
    return out


def _want(store: Store, text: str) -> list[int]:
    """The ids the plain plan (``to_sql``, sorting every match) finds, newest first."""
    with store.connect() as conn:
        stmt = select(posts.c.id).where(to_sql(parse(text).root, "sqlite"))
        return [r.id for r in conn.execute(stmt.order_by(posts.c.created_at.desc(), posts.c.id.desc()))]


def test_a_word_only_in_old_posts_stops_the_walk_at_the_cap(
    old_word_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walk stops at the CAP-th newest entry, then every match is sorted: sorting the 300 matches (at 1 entry
    each) costs less than walking all 600 entries."""
    monkeypatch.setattr(search, "WALK_ROWS", CAP)
    monkeypatch.setattr(search, "SORT_ENTRIES", 1)
    monkeypatch.setattr(search, "COUNT_ROWS", 0)
    want = _want(old_word_store, "legacy")
    assert want == list(range(OLD, 0, -1))  # the evaluator's matches: the oldest posts, newest first
    edge = (START + timedelta(minutes=(OLD + NEW + 1 - CAP) // 2), OLD + NEW + 1 - CAP)  # the CAP-th newest post
    walks = 0
    for (ids, total, plan), (limit, offset) in zip(_pages(old_word_store, "legacy"), PAGES, strict=True):
        assert total == OLD
        assert ids == want[offset : offset + limit]
        if (limit + offset) * (OLD + NEW) <= CAP * OLD:  # frequent enough to walk, but no match within CAP entries
            assert plan == FtsPlan(OLD, ("capped walk", "sort"), edge)
            walks += 1
        else:  # a deep page: every match sorted, no walk
            assert plan == FtsPlan(OLD, ("sort",))
    assert walks == 2


@pytest.mark.parametrize(("walk_rows", "sort_entries"), [(10**6, 1), (CAP, 10)], ids=["no cap", "sorting costs more"])
def test_the_walk_is_not_capped_without_posts_past_the_cap_or_when_sorting_would_cost_more(
    old_word_store: Store, monkeypatch: pytest.MonkeyPatch, walk_rows: int, sort_entries: int
) -> None:
    """The plans the cap test tells apart: the same page from one walk down to the old posts, when the store holds
    fewer posts than the cap, or when sorting every match (300 at 10 entries each) would cost more than walking all
    600 entries."""
    monkeypatch.setattr(search, "COUNT_ROWS", 0)
    monkeypatch.setattr(search, "WALK_ROWS", walk_rows)
    monkeypatch.setattr(search, "SORT_ENTRIES", sort_entries)
    ids, total, plan = _pages(old_word_store, "legacy")[0]
    assert (ids, total) == (_want(old_word_store, "legacy")[:25], OLD)
    assert plan == FtsPlan(OLD, ("walk",))


def test_a_word_spread_over_time_fills_its_page_within_the_cap(
    old_word_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search, "WALK_ROWS", CAP)
    monkeypatch.setattr(search, "SORT_ENTRIES", 1)
    want = _want(old_word_store, "pay")
    ids, total, plan = _pages(old_word_store, "pay")[0]
    assert (ids, total) == (want[:25], len(want))
    assert plan.steps == ("capped walk",) and plan.walk_edge is not None


def test_the_capped_walk_is_a_range_of_the_created_at_index(old_word_store: Store) -> None:
    """SQLite reads ``ix_posts_created_at`` newest first down to the edge and stops there: a range, not a scan."""
    found = fts_search(parse("legacy").root)
    assert found is not None
    edge = (START + timedelta(minutes=250), 501)
    stmt = select(posts.c.id).where(found.condition(walk=True), search._walk_bound(edge))
    stmt = stmt.order_by(posts.c.created_at.desc(), posts.c.id.desc()).limit(25)
    with old_word_store.connect() as conn:
        sql = str(stmt.compile(conn, compile_kwargs={"literal_binds": True}))
        plan = " ".join(r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
        walked = [r.id for r in conn.execute(stmt.limit(None))]
        newest = [r.id for r in conn.execute(select(posts.c.id).order_by(posts.c.id.desc()).limit(100))]
    assert "USING INDEX ix_posts_created_at (created_at>?)" in plan and "TEMP B-TREE" not in plan, plan
    assert walked == [] and newest[-1] == 501  # no "legacy" among the 100 newest posts, down to the edge
