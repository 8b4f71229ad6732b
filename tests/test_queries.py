"""The read side (openear.store.queries) on a small known data set stored through the real write path."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection

from openear.enrich import Enrichment, content_hash
from openear.errors import ConfigError
from openear.guard import Guard
from openear.models import EnrichedPost, GuardedPost, Label, Post, RunStats
from openear.store import Store
from openear.store import queries as q
from openear.store.queries import Period, PostFilter

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
CRASH = "The app keeps crashing when I scan packages at the station"

# (external id, source, kind, created, text, title, url, visibility, lang, category, sentiment)
SOCIAL: list[tuple[Any, ...]] = [
    ("p1", datetime(2026, 11, 10, 9), CRASH, "en", "app_issue", "negative"),
    ("p2", datetime(2026, 11, 10, 15), CRASH, "en", "app_issue", "negative"),
    ("p3", datetime(2026, 11, 11, 8), CRASH + "!", "en", "app_issue", "neutral"),
    ("p4", datetime(2026, 11, 11, 10), "Me llegó la desactivación de la cuenta sin aviso", "es", "account_status",
     "negative"),
    ("p5", datetime(2026, 11, 12, 10), "Tips were great this week, write me at jane@example.com", "en", "pay_tips",
     "positive"),
    ("p6", datetime(2026, 11, 12, 11), "<script>alert(1)</script> the route planner is fine", "en", "other",
     "neutral"),
    ("p7", datetime(2026, 9, 1, 10), "Old post about the navigation being wrong", "en", "app_issue", "negative"),
]


def _post(ext: str, created: datetime, text: str, *, source: str = "reddit-flex", kind: str = "social",
          visibility: str = "public", title: str | None = None, url: str | None = None) -> Post:
    return Post(source=source, external_id=ext, platform="reddit" if kind == "social" else "rss", kind=kind,  # type: ignore[arg-type]
                visibility=visibility, created_at=created.replace(tzinfo=UTC), text=text, title=title, url=url,  # type: ignore[arg-type]
                author_id=f"author-{ext}")


def enrich(batch: list[GuardedPost]) -> list[EnrichedPost]:
    """The real enrichers where they load; the caller replaces labels and cluster keys, so that a changing model
    cannot move the expected numbers. Falls back to a bare EnrichedPost while an enricher is not shipped yet."""
    try:
        return Enrichment().enrich(batch)
    except (ConfigError, ValueError):  # sentiment model not trained yet / deduper vs datasketch 2 (in progress)
        return [EnrichedPost(p, (), "en", None, None, content_hash(p)) for p in batch]


def _cluster_key(post: GuardedPost) -> str:
    """Near-duplicates of CRASH share the cluster of p1; every other post is its own cluster."""
    ext = "p1" if post.text.startswith(CRASH) else post.external_id
    return f"{post.source}\x1f{ext}"


def seed(store: Store) -> None:
    """Seven social posts (three near-duplicates, one old), one news item, one withheld, one rejected."""
    guard = Guard(key=b"k" * 32)
    store.declare_source("reddit-flex", connector="reddit", visibility="public", kind="social", country="US")
    store.declare_source("news-el-pais", connector="rss", visibility="public", kind="news", country="ES")
    store.declare_source("driver-forum", connector="files", visibility="consented", kind="social")

    def write(source: str, items: list[tuple[Post, str, str, str]]) -> None:
        run = store.start_run("import", source)
        guarded, rejections, wanted = [], [], []
        for post, lang, cat, sent in items:
            verdict = guard.check(post, "public")
            if verdict.rejection is not None:
                rejections.append(verdict.rejection)
            else:
                guarded.append(verdict.post)
                wanted.append((lang, cat, sent))
        batch = [
            dataclasses.replace(
                e, lang=lang, category=cat, sentiment=sent, cluster_key=_cluster_key(e.post),
                labels=(Label("lang", lang, 0.99, "test@1"), Label("primary", cat, 0.8, "test@1"),
                        Label("category", cat, 0.8, "test@1"), Label("sentiment", sent, 0.7, "test@1")),
            )
            for e, (lang, cat, sent) in zip(enrich(guarded), wanted, strict=True)
        ]
        store.write_batch(run, batch, rejections=rejections)
        store.finish_run(run, RunStats())

    social = [(_post(ext, created, text), lang, cat, sent) for ext, created, text, lang, cat, sent in SOCIAL]
    social.append((_post("w1", datetime(2026, 11, 12, 9), "We are all going on strike next Monday"), "en", "x", "x"))
    social.append((_post("r1", datetime(2026, 11, 13, 9), "From a closed group", visibility="private"), "en", "x",
                   "x"))
    write("reddit-flex", social)
    news = _post("n1", datetime(2026, 11, 13, 7), "Cientos de repartidores convocan una huelga por las propinas.",
                 source="news-el-pais", kind="news", title="Repartidores en huelga",
                 url="https://news.example/repartidores")
    write("news-el-pais", [(news, "es", "media_coverage", "neutral")])


@pytest.fixture(scope="module")
def store(module_db_url: str) -> Iterator[Store]:
    s = Store(module_db_url)  # SQLite and PostgreSQL (conftest, issue 7)
    s.migrate()
    seed(s)
    yield s
    s.close()


@pytest.fixture
def conn(store: Store) -> Iterator[Connection]:
    with store.connect() as c:
        yield c


PERIOD = Period.parse_since("30d", now=NOW)
ALL = Period(datetime(2020, 1, 1, tzinfo=UTC), NOW)


# -- periods -------------------------------------------------------------------------------------------------
def test_parse_since_relative_and_absolute() -> None:
    assert Period.parse_since("30d", now=NOW) == Period(NOW - timedelta(days=30), NOW)
    assert Period.parse_since("12h", now=NOW).since == NOW - timedelta(hours=12)
    assert Period.parse_since("2w", now=NOW).since == NOW - timedelta(days=14)
    p = Period.parse_since("2026-11-01", now=NOW)
    assert p.since == datetime(2026, 11, 1, tzinfo=UTC) and p.until == NOW
    assert Period.parse_since("2026-11-01T06:00:00Z", now=NOW).since == datetime(2026, 11, 1, 6, tzinfo=UTC)
    naive_now = Period.parse_since("1d", now=datetime(2026, 11, 20, 12))
    assert naive_now.until.tzinfo is not None
    for bad in ("", "abc", "0d", "30x", "2027-01-01"):
        with pytest.raises(ValueError):
            Period.parse_since(bad, now=NOW)


def test_period_days_are_the_utc_days_it_touches() -> None:
    p = Period(datetime(2026, 11, 1, 12, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC))
    assert p.days == ["2026-11-01", "2026-11-02"]


# -- aggregates ------------------------------------------------------------------------------------------------
def test_totals(conn: Connection) -> None:
    assert q.totals(conn, PERIOD) == {
        "posts": 7, "news": 1, "social": 6, "clusters": 1, "sources": 2,
        "withheld": 1, "rejected": 1, "scrubbed": 1,
    }
    assert q.totals(conn, ALL)["posts"] == 8
    empty = Period(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC))
    assert q.totals(conn, empty) == dict.fromkeys(
        ("posts", "news", "social", "clusters", "sources", "withheld", "rejected", "scrubbed"), 0
    )


def test_volume_by_category_in_daily_buckets(conn: Connection) -> None:
    assert q.volume_by_category(conn, PERIOD) == [
        ("2026-11-10", "app_issue", 2),
        ("2026-11-11", "account_status", 1),
        ("2026-11-11", "app_issue", 1),
        ("2026-11-12", "other", 1),
        ("2026-11-12", "pay_tips", 1),
        ("2026-11-13", "media_coverage", 1),
    ]


def test_period_is_half_open(conn: Connection) -> None:
    p = Period(datetime(2026, 11, 10, 9, tzinfo=UTC), datetime(2026, 11, 10, 15, tzinfo=UTC))
    assert q.totals(conn, p)["posts"] == 1  # p1 at 09:00 in, p2 at 15:00 out


def test_splits(conn: Connection) -> None:
    assert q.sentiment_split(conn, PERIOD) == {"negative": 3, "neutral": 3, "positive": 1}
    assert q.language_split(conn, PERIOD) == {"en": 5, "es": 2}
    assert q.source_split(conn, PERIOD) == {"reddit-flex": 6, "news-el-pais": 1}
    assert q.category_split(conn, PERIOD) == {
        "app_issue": 3, "account_status": 1, "media_coverage": 1, "other": 1, "pay_tips": 1,
    }
    assert list(q.sentiment_split(conn, PERIOD)) == ["negative", "neutral", "positive"]  # largest first, then key


def test_top_clusters(conn: Connection) -> None:
    (top,) = q.top_clusters(conn, PERIOD)
    assert top["size"] == 3 and top["total_size"] == 3
    assert top["category"] == "app_issue" and top["sentiment"] == "negative"
    assert top["first_seen"] == datetime(2026, 11, 10, 9, tzinfo=UTC)
    assert top["last_seen"] == datetime(2026, 11, 11, 8, tzinfo=UTC)
    assert top["excerpt"] == CRASH
    assert "author_pseudonym" not in top
    narrow = Period(datetime(2026, 11, 10, tzinfo=UTC), datetime(2026, 11, 11, tzinfo=UTC))
    (two,) = q.top_clusters(conn, narrow)
    assert two["size"] == 2 and two["total_size"] == 3
    only_one = Period(datetime(2026, 11, 11, tzinfo=UTC), NOW)
    assert q.top_clusters(conn, only_one) == []  # size within the period is 1
    assert q.top_clusters(conn, PERIOD, limit=0) == []


def test_excerpt_is_bounded() -> None:
    text = "word " * 200
    ex = q._excerpt(text)
    assert len(ex) <= q.EXCERPT_CHARS and ex.endswith("…")


def test_media_coverage(conn: Connection) -> None:
    assert q.media_coverage(conn, PERIOD) == [
        {
            "id": q.media_coverage(conn, PERIOD)[0]["id"],
            "title": "Repartidores en huelga",
            "url": "https://news.example/repartidores",
            "source": "news-el-pais",
            "created_at": datetime(2026, 11, 13, 7, tzinfo=UTC),
            "category": "media_coverage",
            "lang": "es",
            "excerpt": "Cientos de repartidores convocan una huelga por las propinas.",
        }
    ]
    assert q.media_coverage(conn, Period(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 13, tzinfo=UTC))) == []


def test_guard_summary(conn: Connection) -> None:
    assert q.guard_summary(conn, PERIOD) == {
        "withheld": {"collective_action": 1},
        "rejected": {"private": 1},
        "scrubbed": {"email": 1},
        "by_source": [{"source": "reddit-flex", "withheld": 1, "rejected": 1, "scrubbed": 1}],
    }
    before = Period(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 12, tzinfo=UTC))
    assert q.guard_summary(conn, before) == {"withheld": {}, "rejected": {}, "scrubbed": {}, "by_source": []}
    last_day = Period(datetime(2026, 11, 12, 23, tzinfo=UTC), datetime(2026, 11, 13, 0, 30, tzinfo=UTC))
    assert q.guard_summary(conn, last_day)["rejected"] == {"private": 1}  # days the period touches


# -- search ----------------------------------------------------------------------------------------------------
def _texts(rows: list[dict[str, Any]]) -> list[str]:
    return [r["text"] for r in rows]


def test_search_newest_first_with_total_and_paging(conn: Connection) -> None:
    rows, total = q.search_posts(conn, PostFilter())
    assert total == 8
    created = [r["created_at"] for r in rows]
    assert created == sorted(created, reverse=True)
    page, total2 = q.search_posts(conn, PostFilter(), limit=3, offset=3)
    assert total2 == 8 and [r["id"] for r in page] == [r["id"] for r in rows[3:6]]
    assert all("author_pseudonym" not in r for r in rows)


def test_search_full_text_is_accent_and_case_insensitive(conn: Connection) -> None:
    rows, total = q.search_posts(conn, PostFilter(q="DESACTIVACION"))
    assert total == 1 and "desactivación" in rows[0]["text"]
    rows, total = q.search_posts(conn, PostFilter(q="desactivación cuenta"))
    assert total == 1
    assert q.search_posts(conn, PostFilter(q="desactivacion banana"))[1] == 0  # words are ANDed
    assert q.search_posts(conn, PostFilter(q="huelga"))[1] == 1  # title and text of the news item
    assert q.search_posts(conn, PostFilter(q="crashing"))[1] == 3


def test_search_title_is_searched(conn: Connection) -> None:
    rows, total = q.search_posts(conn, PostFilter(q="en huelga repartidores"))
    assert total == 1 and rows[0]["title"] == "Repartidores en huelga"


@pytest.mark.parametrize(
    "text", ['"', "AND (", "*", "NEAR", "NEAR(a b)", "app AND", "OR", "-app", "a:b", "^x", "'; DROP TABLE posts;--",
             "app\" OR \"x", "(((", "col:text", "{text}", "", "   ", "\x00"]
)
def test_search_fts_hostile_input_never_errors(conn: Connection, text: str) -> None:
    rows, total = q.search_posts(conn, PostFilter(q=text))
    assert total == len(rows) or total > len(rows)


def test_search_hostile_words_are_plain_words(conn: Connection) -> None:
    assert q.fts_match_string('app" OR "x') == '"app" "OR" "x"'
    assert q.fts_match_string("NEAR(scan packages)") == '"NEAR" "scan" "packages"'
    assert q.fts_match_string("*") is None
    assert q.search_posts(conn, PostFilter(q="app AND"))[1] == 0  # "and" is not in any post
    assert q.search_posts(conn, PostFilter(q='"'))[1] == 8  # no words: no text filter


def test_search_filters(conn: Connection) -> None:
    assert q.search_posts(conn, PostFilter(category="app_issue"))[1] == 4
    assert q.search_posts(conn, PostFilter(category="app_issue", since=PERIOD.since))[1] == 3
    assert q.search_posts(conn, PostFilter(sentiment="positive"))[1] == 1
    assert q.search_posts(conn, PostFilter(lang="es"))[1] == 2
    assert q.search_posts(conn, PostFilter(source="news-el-pais"))[1] == 1
    assert q.search_posts(conn, PostFilter(kind="news", q="propinas"))[1] == 1
    assert q.search_posts(conn, PostFilter(kind="social", q="propinas"))[1] == 0
    until = datetime(2026, 11, 10, 15, tzinfo=UTC)
    rows, total = q.search_posts(conn, PostFilter(since=datetime(2026, 11, 10, tzinfo=UTC), until=until))
    assert total == 1 and rows[0]["created_at"] == datetime(2026, 11, 10, 9, tzinfo=UTC)


def test_scrubbed_text_is_what_is_stored(conn: Connection) -> None:
    rows, _ = q.search_posts(conn, PostFilter(sentiment="positive"))
    assert "[email]" in rows[0]["text"] and "jane@example.com" not in rows[0]["text"]
    assert q.search_posts(conn, PostFilter(q="jane"))[1] == 0


def test_withheld_and_rejected_items_are_not_searchable(conn: Connection) -> None:
    assert q.search_posts(conn, PostFilter(q="strike"))[1] == 0
    assert q.search_posts(conn, PostFilter(q="closed group"))[1] == 0


# -- single posts and sources ------------------------------------------------------------------------------------
def test_get_post_and_labels(conn: Connection) -> None:
    (row,), _ = q.search_posts(conn, PostFilter(q="desactivacion"))
    post = q.get_post(conn, row["id"])
    assert post is not None
    assert post["text"] == "Me llegó la desactivación de la cuenta sin aviso"
    assert post["author_pseudonym"].startswith("p_") and post["cluster_size"] == 1
    assert post["created_at"] == datetime(2026, 11, 11, 10, tzinfo=UTC)
    assert q.post_labels(conn, row["id"]) == [
        {"name": "category", "value": "account_status", "score": 0.8, "enricher": "test@1"},
        {"name": "lang", "value": "es", "score": 0.99, "enricher": "test@1"},
        {"name": "primary", "value": "account_status", "score": 0.8, "enricher": "test@1"},
        {"name": "sentiment", "value": "negative", "score": 0.7, "enricher": "test@1"},
    ]
    assert q.get_post(conn, 10_000) is None
    assert q.post_labels(conn, 10_000) == []


def test_get_post_cluster_size(conn: Connection) -> None:
    rows, _ = q.search_posts(conn, PostFilter(q="crashing"))
    assert {q.get_post(conn, r["id"])["cluster_size"] for r in rows} == {3}  # type: ignore[index]


def test_list_sources(conn: Connection) -> None:
    got = q.list_sources(conn)
    assert [(s["name"], s["connector"], s["visibility"], s["kind"], s["country"], s["posts"]) for s in got] == [
        ("driver-forum", "files", "consented", "social", None, 0),
        ("news-el-pais", "rss", "public", "news", "ES", 1),
        ("reddit-flex", "reddit", "public", "social", "US", 7),
    ]
    assert got[0]["last_run_at"] is None
    assert got[2]["last_run_at"].tzinfo is not None


def test_no_query_groups_filters_or_sorts_by_author() -> None:
    """Guardrail 5: the read side never names the pseudonym except to return it on a single post."""
    import inspect

    src = inspect.getsource(q)
    assert src.count("posts.c.author_pseudonym") == 1
    assert "posts.c.author_pseudonym" in inspect.getsource(q.get_post)
    assert not hasattr(PostFilter(), "author") and not hasattr(PostFilter(), "author_pseudonym")


def test_day_bucket_sql_per_dialect() -> None:
    from sqlalchemy.dialects import postgresql, sqlite

    from openear.store.schema import posts

    class Fake:
        def __init__(self, d: Any) -> None:
            self.dialect = d

    pg = q.day_bucket(Fake(postgresql.dialect()), posts.c.created_at)  # type: ignore[arg-type]
    assert "to_char" in str(pg.compile(dialect=postgresql.dialect()))
    lite = q.day_bucket(Fake(sqlite.dialect()), posts.c.created_at)  # type: ignore[arg-type]
    assert "strftime" in str(lite.compile(dialect=sqlite.dialect()))
    fts = q.fts_condition(Fake(postgresql.dialect()), "desactivación")  # type: ignore[arg-type]
    assert "posts_search.doc @@" in str(fts.compile(dialect=postgresql.dialect()))
