"""The explorer's search plans (FTS5 count, newest-first index walk, sorting every match) give the same page and
total as the query evaluator, on both stores, for frequent and rare words, with and without facets."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, insert

from openear.query import Document, parse
from openear.store import Store
from openear.store import queries as q
from openear.store.schema import labels, posts
from openear.web import search
from openear.web.search import find_posts, make_filter

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


@pytest.mark.parametrize(("walk_rows", "count_rows"), [(0, 10**12), (10**12, 0)], ids=["sort,rows", "walk,index"])
@pytest.mark.parametrize("text", QUERIES)
def test_search_pages_and_totals_match_the_evaluator(
    store: Store, text: str, walk_rows: int, count_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search, "WALK_ROWS", walk_rows)  # pick the plans the size of the store would not
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
