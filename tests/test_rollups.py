"""Dashboard rollups (migration 0007_rollups): the aggregates read from ``post_rollups`` equal grouping the posts.

Random sequences of batch writes (new posts and re-deliveries that change category, sentiment, language, day or
cluster), analyst label overrides, deletions at the source and purges run on SQLite and on PostgreSQL; after each
step every overview aggregate and the explorer's counts are compared with the same figures computed from the
``posts`` rows themselves, for periods that start and end mid-day, on midnight, or within one day.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from openear.guard import Guard
from openear.models import EnrichedPost, Label, Post, Rejection
from openear.store import MIGRATIONS_DIR, Store
from openear.store import queries as q
from openear.store.schema import clusters, labels, post_rollups, posts
from openear.web.labeling import override_label

KEY = b"r" * 32
GUARD = Guard(KEY)
T0 = datetime(2026, 10, 1)
SOURCES = ("forum", "news-desk", "social-a")
CATEGORIES = ("pay_tips", "app_issue", "safety", None)
SENTIMENTS = ("negative", "neutral", "positive", None)
LANGS = ("en", "es")
ALLOWED = {"primary": ["pay_tips", "app_issue", "safety", "support"], "sentiment": ["negative", "neutral", "positive"]}
PERIODS = (
    (T0, T0 + timedelta(days=30)),  # midnight to midnight: rollups only
    (T0 + timedelta(hours=5, minutes=7), T0 + timedelta(days=6, hours=13)),  # partial first and last days
    (T0 + timedelta(days=2, hours=1), T0 + timedelta(days=2, hours=20)),  # within one day
    (T0 + timedelta(days=1, hours=23), T0 + timedelta(days=3)),  # an hour, then one whole day
    (datetime(1970, 1, 1), datetime(2100, 1, 1)),  # everything, as the explorer's facets ask
    (T0 + timedelta(days=7, hours=3), datetime.now(UTC).replace(tzinfo=None)),  # to now, as the overview asks
)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    s.migrate()
    for name in SOURCES:
        s.declare_source(name, connector="files", visibility="public", kind="news" if "news" in name else "social")
    yield s
    s.close()


# -- building posts through the real write path ----------------------------------------------------------------
def enriched(
    source: str, ext: int, hours: int, cat: str | None, sent: str | None, lang: str, cluster: int, version: int
) -> EnrichedPost:
    post = Post(
        source=source,
        external_id=str(ext),
        platform="forum",
        kind="news" if "news" in source else "social",
        visibility="public",
        created_at=(T0 + timedelta(hours=hours)).replace(tzinfo=UTC),
        text=f"post {ext} version {version} about pay and tips",
        author_id=f"a{ext}",
    )
    verdict = GUARD.check(post, "public")
    assert verdict.post is not None
    lbls = [Label("lang", lang, 0.9, "lang@1")]
    if cat:
        lbls.append(Label("primary", cat, 0.8, "rules@1"))
    if sent:
        lbls.append(Label("sentiment", sent, 0.7, "sent@1"))
    return EnrichedPost(
        post=verdict.post,
        labels=tuple(lbls),
        lang=lang,
        sentiment=sent,
        category=cat,
        content_hash=f"{ext}:{version}",
        cluster_key=f"cluster-{cluster}",
    )


post_spec = st.tuples(
    st.sampled_from(SOURCES),
    st.integers(0, 11),  # external id: repeats are re-deliveries
    st.integers(0, 24 * 8),  # hours after T0
    st.sampled_from(CATEGORIES),
    st.sampled_from(SENTIMENTS),
    st.sampled_from(LANGS),
    st.integers(0, 3),  # cluster
    st.integers(0, 2),  # version: a new one changes the stored post
)
step = st.one_of(
    st.tuples(st.just("write"), st.lists(post_spec, min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.sampled_from(SOURCES), st.lists(st.integers(0, 11), max_size=4)),
    st.tuples(st.just("override"), st.integers(0, 40), st.sampled_from(("primary", "sentiment")), st.integers(0, 3)),
    st.tuples(st.just("purge"), st.integers(0, 24 * 8)),
)


def apply(store: Store, op: tuple[Any, ...], run_id: int) -> None:
    if op[0] == "write":
        # One item per post in a batch, as the collector sends them (the last delivery wins).
        latest = {(spec[0], spec[1]): spec for spec in op[1]}
        store.write_batch(run_id, [enriched(*spec) for spec in latest.values()])
    elif op[0] == "delete":
        store.delete_posts(op[1], [str(i) for i in op[2]])
    elif op[0] == "override":
        _, n, name, choice = op
        with store.begin() as conn:
            ids = conn.execute(select(posts.c.id).order_by(posts.c.id)).scalars().all()
            if ids:
                values = ALLOWED[name]
                override_label(conn, ids[n % len(ids)], name, values[choice % len(values)], "ana", ALLOWED)
    else:
        store.purge(T0 + timedelta(hours=op[1]))


# -- the same figures from the posts rows ------------------------------------------------------------------------
def rows(store: Store) -> list[Any]:
    with store.connect() as conn:
        return conn.execute(
            select(
                posts.c.id,
                posts.c.source,
                posts.c.kind,
                posts.c.created_at,
                posts.c.category,
                posts.c.sentiment,
                posts.c.lang,
                posts.c.cluster_id,
            )
        ).all()


def expected(all_rows: list[Any], since: datetime, until: datetime) -> dict[str, Any]:
    inside = [r for r in all_rows if since <= r.created_at < until]
    per_cluster: dict[int, list[Any]] = {}
    for r in inside:
        if r.cluster_id is not None:
            per_cluster.setdefault(r.cluster_id, []).append(r)
    multi = {cid: rs for cid, rs in per_cluster.items() if len(rs) >= 2}
    top = sorted(multi.items(), key=lambda kv: (-len(kv[1]), -max(r.created_at for r in kv[1]).timestamp(), kv[0]))
    return {
        "posts": len(inside),
        "news": sum(r.kind == "news" for r in inside),
        "social": sum(r.kind == "social" for r in inside),
        "sources": len({r.source for r in inside}),
        "clusters": len(multi),
        "volume": sorted(
            Counter((r.created_at.strftime("%Y-%m-%d"), r.category or q.UNCATEGORISED) for r in inside).items()
        ),
        "category": dict(Counter(r.category or q.UNCATEGORISED for r in inside)),
        "sentiment": dict(Counter(r.sentiment or q.UNKNOWN for r in inside)),
        "lang": dict(Counter(r.lang for r in inside)),
        "source": dict(Counter(r.source for r in inside)),
        "top": [(cid, len(rs), min(r.id for r in rs)) for cid, rs in top[:5]],
    }


def actual(conn: Any, since: datetime, until: datetime) -> dict[str, Any]:
    period = q.Period(since, until)
    totals = q.totals(conn, period)
    return {
        **{k: totals[k] for k in ("posts", "news", "social", "sources", "clusters")},
        "volume": [((d, c), n) for d, c, n in q.volume_by_category(conn, period)],
        "category": q.category_split(conn, period),
        "sentiment": q.sentiment_split(conn, period),
        "lang": q.language_split(conn, period),
        "source": q.source_split(conn, period),
        "top": [(c["id"], c["size"], c["post_id"]) for c in q.top_clusters(conn, period, 5)],
    }


def check_all(store: Store) -> None:
    all_rows = rows(store)
    with store.connect() as conn:
        for since, until in PERIODS:
            assert actual(conn, since, until) == expected(all_rows, since, until), (since, until)
            assert q.cluster_count(conn, q.Period(since, until)) == expected(all_rows, since, until)["clusters"]
        per_source = {s["name"]: s["posts"] for s in q.list_sources(conn)}
        assert per_source == {name: sum(r.source == name for r in all_rows) for name in SOURCES}
        for flt, keep in filters():
            assert q.count_posts(conn, flt) == sum(keep(r) for r in all_rows), flt
        assert q.search_posts(conn, q.PostFilter(), limit=1)[1] == len(all_rows)


def filters() -> list[tuple[q.PostFilter, Any]]:
    day = timedelta(days=1)
    since, until = T0 + 2 * day, T0 + 5 * day
    mid = T0 + timedelta(days=1, hours=7)
    return [
        (q.PostFilter(), lambda r: True),
        (q.PostFilter(category="pay_tips"), lambda r: r.category == "pay_tips"),
        (
            q.PostFilter(sentiment="negative", since=since),
            lambda r: r.sentiment == "negative" and r.created_at >= since,
        ),
        (
            q.PostFilter(source="forum", since=since, until=until),
            lambda r: r.source == "forum" and since <= r.created_at < until,
        ),
        (q.PostFilter(kind="news", since=mid, until=until), lambda r: r.kind == "news" and mid <= r.created_at < until),
        (q.PostFilter(lang="es", until=mid), lambda r: r.lang == "es" and r.created_at < mid),
        (q.PostFilter(lang="en", category="safety"), lambda r: r.lang == "en" and r.category == "safety"),
        (
            q.PostFilter(since=mid, until=mid + timedelta(hours=3)),
            lambda r: mid <= r.created_at < mid + timedelta(hours=3),
        ),
        (q.PostFilter(since=until, until=since), lambda r: False),
    ]


def empty(store: Store) -> None:
    """Delete every post (the rollups must empty with them) and the clusters."""
    with store.begin() as conn:
        conn.execute(delete(labels))
        conn.execute(delete(posts))
        assert conn.execute(select(post_rollups.c.dim)).first() is None
        conn.execute(delete(clusters))


# -- tests ---------------------------------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=8))
def test_rollup_aggregates_equal_grouping_the_posts(store: Store, steps: list[tuple[Any, ...]]) -> None:
    run_id = store.start_run("test", None)
    try:
        for op in steps:
            apply(store, op, run_id)
            check_all(store)
    finally:
        empty(store)


def test_redelivery_override_delete_and_purge_move_the_counts(store: Store) -> None:
    run_id = store.start_run("test", None)
    store.write_batch(
        run_id,
        [
            enriched("forum", 1, 10, "pay_tips", "negative", "en", 0, 0),
            enriched("forum", 2, 30, "app_issue", "neutral", "es", 0, 0),
            enriched("news-desk", 3, 34, None, None, "en", 1, 0),
        ],
    )
    check_all(store)
    # A re-delivery that changes category, sentiment, day and language.
    store.write_batch(run_id, [enriched("forum", 1, 60, "safety", "positive", "es", 1, 1)])
    check_all(store)
    with store.begin() as conn:
        pid = conn.execute(select(posts.c.id).where(posts.c.external_id == "2")).scalar_one()
        override_label(conn, pid, "primary", "support", "ana", ALLOWED)
    check_all(store)
    with store.connect() as conn:
        assert q.category_split(conn, q.Period(T0, T0 + timedelta(days=3)))["support"] == 1
    # Re-delivered again: the analyst's category survives, and the rollups agree.
    store.write_batch(run_id, [enriched("forum", 2, 30, "pay_tips", "negative", "es", 0, 1)])
    check_all(store)
    assert store.delete_posts("forum", ["1"]) == 1
    check_all(store)
    store.purge(T0 + timedelta(hours=31))
    check_all(store)
    with store.connect() as conn:
        assert {(r.dim, r.value) for r in conn.execute(select(post_rollups))} == {
            ("category", q.UNCATEGORISED),
            ("sentiment", q.UNKNOWN),
            ("lang", "en"),
            ("source", "news-desk"),
            ("kind", "news"),
        }


def _migration(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, MIGRATIONS_DIR / "versions" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_migration_counts_posts_stored_before_it(store: Store) -> None:
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext

    run_id = store.start_run("test", None)
    store.write_batch(
        run_id,
        [
            enriched(s, i, i * 7, CATEGORIES[i % 4], SENTIMENTS[i % 3], LANGS[i % 2], i % 3, 0)
            for i in range(12)
            for s in SOURCES
        ],
    )
    with store.connect() as conn:
        before = sorted(tuple(r) for r in conn.execute(select(post_rollups)))
    rollups, span = (_migration(name) for name in ("0007_rollups", "0011_cluster_span"))  # 0011 revises 0007
    with store.begin() as conn, Operations.context(MigrationContext.configure(conn)):
        span.downgrade()
        rollups.downgrade()
        conn.execute(delete(labels).where(labels.c.post_id.in_(select(posts.c.id).where(posts.c.source == "forum"))))
        conn.execute(delete(posts).where(posts.c.source == "forum"))  # no triggers now: nothing to keep in step
        rollups.upgrade()
        span.upgrade()
    with store.connect() as conn:
        after = sorted(tuple(r) for r in conn.execute(select(post_rollups)))
    assert after and after != before and not [r for r in after if r[2] == "forum"]
    check_all(store)  # the backfill counted the posts stored before it, as grouping them does
    store.write_batch(run_id, [enriched("forum", 99, 3, "safety", "neutral", "en", 2, 0)])  # triggers are back
    check_all(store)


# -- the dashboard's cache follows the data ------------------------------------------------------------------------
def test_every_kind_of_write_moves_the_data_version_and_refreshes_cached_figures(store: Store) -> None:
    """The overview reuses figures while ``data_version`` stands still: each write path must move it."""
    period = q.Period(datetime(1970, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    cache = q.AggregateCache()

    def figures() -> tuple[int, dict[str, int]]:
        with store.connect() as conn:
            return cache.get(conn, "all", lambda: (q.totals(conn, period)["posts"], q.category_split(conn, period)))

    run = store.start_run("import", SOURCES[0])
    ops: list[tuple[Any, ...]] = [
        ("write", [(SOURCES[0], 1, 5, "pay_tips", "negative", "en", 0, 0)]),
        ("write", [(SOURCES[0], 2, 6, "app_issue", "neutral", "en", 0, 0)]),  # joins cluster 0: clusters change
        ("write", [(SOURCES[0], 1, 5, "app_issue", "negative", "en", 0, 1)]),  # a changed re-delivery
        ("override", 0, "primary", 2),
        ("delete", SOURCES[0], [2]),
        ("purge", 24 * 30),
    ]
    for op in ops:
        with store.connect() as conn:
            before = q.current_data_version(conn)
        apply(store, op, run)
        with store.connect() as conn:
            after = q.current_data_version(conn)
            fresh = (q.totals(conn, period)["posts"], q.category_split(conn, period))
        assert after != before, f"{op[0]} did not move the data version"
        assert figures() == fresh, f"cached figures are stale after {op[0]}"
    assert figures() == fresh and cache.hits >= 1  # nothing changed: served from the cache
    with store.connect() as conn:
        before = q.current_data_version(conn)
    store.write_batch(run, [], rejections=[Rejection(SOURCES[0], "2026-01-01", "withheld", "collective_action")])
    with store.connect() as conn:
        assert q.current_data_version(conn) != before  # guard counts alone move it too


def test_requests_that_miss_the_same_figures_at_once_compute_them_once(store: Store) -> None:
    """At the minute's turn or after a write, every concurrent view misses the cache at once; one computes."""
    cache = q.AggregateCache()
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        started.set()
        release.wait(10)
        return len(calls)

    def view(out: list[int]) -> None:
        with store.connect() as conn:
            out.append(cache.get(conn, "overview", compute))

    results: list[int] = []
    first = threading.Thread(target=view, args=(results,))
    first.start()
    assert started.wait(10)
    others = [threading.Thread(target=view, args=(results,)) for _ in range(3)]
    for t in others:
        t.start()
    time.sleep(0.3)  # room for a second computation to start, were the others not waiting for the first
    release.set()
    for t in [first, *others]:
        t.join(10)
    assert calls == [1] and results == [1, 1, 1, 1]
