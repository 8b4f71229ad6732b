"""The store: migrations match the schema, WAL, FTS5, idempotent upserts, run ids, clusters, guard counts.

Every test with ``store`` runs on SQLite and on PostgreSQL (``db_url`` in conftest, issue 7).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text

from openear.enrich import Enrichment
from openear.guard import Guard
from openear.models import Post
from openear.store import Store
from openear.store.schema import guard_counts, labels, metadata, posts

KEY = b"s" * 32


@pytest.fixture(scope="module")
def enrichment() -> Enrichment:
    return Enrichment()


@pytest.fixture
def store(db_url: str) -> Store:
    s = Store(db_url)
    s.migrate()
    yield s
    s.close()


def index_hits(store: Store, word: str) -> int:
    """Posts whose full-text index entry holds ``word`` (FTS5 on SQLite, ``posts_search`` on PostgreSQL)."""
    with store.connect() as conn:
        if store.dialect == "sqlite":
            return len(conn.execute(text("SELECT rowid FROM posts_fts WHERE posts_fts MATCH :w"), {"w": word}).all())
        return int(conn.execute(text("SELECT count(*) FROM posts_search WHERE doc @@ CAST(:w AS tsquery)"),
                                {"w": word}).scalar_one())


def guarded(text: str, ext: str = "1", source: str = "src", **kw: object):
    post = Post(source=source, external_id=ext, platform="reddit", kind=kw.pop("kind", "social"),  # type: ignore[arg-type]
                visibility=kw.pop("visibility", "public"),  # type: ignore[arg-type]
                created_at=datetime(2026, 11, 2, 9, tzinfo=UTC), text=text, author_id=f"a{ext}", **kw)  # type: ignore[arg-type]
    verdict = Guard(KEY).check(post, "public")
    return verdict


def test_migrations_create_exactly_the_declared_schema(store: Store) -> None:
    with store.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"include_name": lambda name, kind, _p: not (
                kind == "table" and name.startswith(("posts_fts", "posts_search")))}
        )
        diff = compare_metadata(ctx, metadata)
    assert diff == []
    assert store.revision() == Store.script_heads()


def test_migrate_twice_is_a_no_op(store: Store) -> None:
    store.migrate()
    assert store.revision() == Store.script_heads()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.migrate()
    with store.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_upsert_is_idempotent_and_records_the_run(store: Store, enrichment: Enrichment) -> None:
    batch = enrichment.enrich([guarded("The app crashes when I scan", "1").post,
                               guarded("No tips this week again", "2").post])
    run1 = store.start_run("import", "src")
    assert store.write_batch(run1, batch).stored == 2
    run2 = store.start_run("import", "src")
    again = store.write_batch(run2, enrichment.enrich([v.post for v in (guarded("The app crashes when I scan", "1"),
                                                                         guarded("No tips this week again", "2"))]))
    assert (again.stored, again.unchanged) == (0, 2)
    with store.connect() as conn:
        assert conn.execute(select(posts.c.run_id)).scalars().all() == [run1, run1]
        n_labels = conn.execute(select(labels.c.id)).scalars().all()
    assert store.count() == 2
    assert len(n_labels) == len(batch[0].labels) + len(batch[1].labels)


def test_a_changed_post_is_updated_in_place_with_its_new_run(store: Store, enrichment: Enrichment) -> None:
    run1 = store.start_run("import", "src")
    store.write_batch(run1, enrichment.enrich([guarded("Support never answers", "7").post]))
    run2 = store.start_run("import", "src")
    res = store.write_batch(run2, enrichment.enrich([guarded("Support never answers my emails", "7").post]))
    assert res.stored == 1
    with store.connect() as conn:
        rows = conn.execute(select(posts.c.text, posts.c.run_id)).all()
    assert rows == [("Support never answers my emails", run2)]
    assert index_hits(store, "emails") == 1


def test_analyst_overrides_survive_a_changed_redelivery(store: Store, enrichment: Enrichment) -> None:
    run1 = store.start_run("import", "src")
    store.write_batch(run1, enrichment.enrich([guarded("Support never answers", "8").post]))
    with store.begin() as conn:
        pid = conn.execute(select(posts.c.id)).scalar_one()
        conn.execute(labels.insert().values(post_id=pid, name="sentiment", value="positive", score=1.0,
                                            enricher="analyst@ana"))
        conn.execute(posts.update().values(sentiment="positive"))
    run2 = store.start_run("import", "src")
    store.write_batch(run2, enrichment.enrich([guarded("Support never answers, ever", "8").post]))
    with store.connect() as conn:
        kept = conn.execute(select(labels.c.value).where(labels.c.enricher == "analyst@ana")).scalars().all()
        sentiment = conn.execute(select(posts.c.sentiment)).scalar_one()
    assert kept == ["positive"] and sentiment == "positive"


def test_a_duplicate_inside_one_batch_is_stored_once(store: Store, enrichment: Enrichment) -> None:
    run = store.start_run("import", "src")
    batch = enrichment.enrich([guarded("Same post", "9").post, guarded("Same post", "9").post])
    res = store.write_batch(run, batch)
    assert (res.stored, res.unchanged, store.count()) == (1, 1, 1)


def test_two_versions_of_a_post_in_one_batch_store_the_last(store: Store, enrichment: Enrichment) -> None:
    run = store.start_run("import", "src")
    batch = enrichment.enrich([guarded("App crashed at pickup", "10").post,
                               guarded("App crashed at pickup, again and again", "10").post])
    res = store.write_batch(run, batch)
    assert (res.stored, res.unchanged, store.count()) == (1, 1, 1)
    with store.connect() as conn:
        assert conn.execute(select(posts.c.text)).scalar_one() == "App crashed at pickup, again and again"
        assert conn.execute(select(labels.c.post_id).where(labels.c.post_id < 0)).all() == []
    assert index_hits(store, "again") == 1


def test_full_text_index_is_accent_insensitive(store: Store, enrichment: Enrichment) -> None:
    run = store.start_run("import", "src")
    store.write_batch(run, enrichment.enrich([guarded("Me llegó la desactivación de la cuenta", "1").post]))
    assert index_hits(store, "desactivacion") == 1


def test_deleting_a_post_removes_it_from_the_index_and_labels(store: Store, enrichment: Enrichment) -> None:
    run = store.start_run("import", "src")
    store.write_batch(run, enrichment.enrich([guarded("Dog bit me on the route", "1").post]))
    with store.begin() as conn:
        conn.execute(posts.delete())
    assert index_hits(store, "dog") == 0
    with store.connect() as conn:
        assert conn.execute(select(labels.c.id)).all() == []


def test_near_duplicates_share_a_cluster(store: Store) -> None:
    enrichment = Enrichment()
    base = "Amazon Flex app keeps crashing after the latest update every time I try to scan a package"
    batch = enrichment.enrich([guarded(base, "1").post, guarded(base + " today", "2").post,
                               guarded("Completely different: my tips were missing on three orders", "3").post])
    run = store.start_run("import", "src")
    store.write_batch(run, batch)
    with store.connect() as conn:
        clusters = dict(conn.execute(select(posts.c.external_id, posts.c.cluster_id)).all())
        size = conn.execute(text("SELECT size FROM clusters WHERE id = :c"), {"c": clusters["1"]}).scalar()
    assert clusters["1"] == clusters["2"] != clusters["3"]
    assert size == 2


def test_clusters_carry_over_between_runs(store: Store) -> None:
    base = "Station wait was over two hours this morning and nobody from support could explain why"
    first = Enrichment()
    run = store.start_run("import", "src")
    store.write_batch(run, first.enrich([guarded(base, "1").post]))
    second = Enrichment()  # a new process: learns signatures from the store
    second.warm_deduper(store.recent_signatures(datetime(2026, 1, 1, tzinfo=UTC)))
    store.write_batch(run, second.enrich([guarded(base + " again", "2").post]))
    with store.connect() as conn:
        ids = conn.execute(select(posts.c.cluster_id)).scalars().all()
    assert len(set(ids)) == 1


def test_guard_counts_count_each_item_once(store: Store) -> None:
    rejections = [guarded("x", "1", visibility="private").rejection,
                  guarded("Join the union", "2").rejection]
    run = store.start_run("import", "src")
    store.write_batch(run, [], rejections=rejections)  # type: ignore[arg-type]
    store.write_batch(run, [], rejections=rejections)  # type: ignore[arg-type]  # re-delivered
    with store.connect() as conn:
        rows = conn.execute(select(guard_counts.c.action, guard_counts.c.reason, guard_counts.c.n)).all()
    assert sorted(rows) == [("rejected", "private", 1), ("withheld", "collective_action", 1)]


def test_cursor_commits_with_its_batch(store: Store, enrichment: Enrichment) -> None:
    run = store.start_run("collect", "src")
    store.write_batch(run, enrichment.enrich([guarded("hello there drivers", "1").post]), cursor=("src", "c-1"))
    assert store.get_cursor("src") == "c-1"
    with pytest.raises(TypeError):
        store.write_batch(run, ["not a post"], cursor=("src", "c-2"))  # type: ignore[list-item]
    assert store.get_cursor("src") == "c-1"


def test_purge_deletes_old_posts_labels_index_and_empty_clusters(store: Store, enrichment: Enrichment) -> None:
    from openear.store.schema import clusters

    run = store.start_run("import", "src")
    store.write_batch(run, enrichment.enrich([guarded("Old complaint about the station wait", "1").post]))
    assert store.purge(datetime(2026, 11, 1, tzinfo=UTC), dry_run=True)["posts"] == 0
    assert store.purge(datetime(2026, 12, 1, tzinfo=UTC), dry_run=True)["posts"] == 1
    assert store.count() == 1  # a dry run deletes nothing
    done = store.purge(datetime(2026, 12, 1, tzinfo=UTC))
    assert done["posts"] == 1 and done["clusters"] == 1
    assert index_hits(store, "station") == 0
    with store.connect() as conn:
        assert conn.execute(select(labels.c.id)).all() == []
        assert conn.execute(select(clusters.c.id)).all() == []


def test_pipeline_saves_cursor_marks_with_their_batch(db_url: str) -> None:
    """Items before a mark commit with it; a failure after the mark leaves the mark's batch and cursor intact."""
    from openear.models import CursorMark, RawItem
    from openear.pipeline import Pipeline
    from openear.settings import SourceSpec

    store = Store(db_url)
    store.migrate()
    pipe = Pipeline(store, Guard(KEY), Enrichment(), batch_size=2)
    spec = SourceSpec("live", connector="test", visibility="public")

    def normalise(raw: RawItem) -> Post:
        if raw.payload.get("boom"):
            raise RuntimeError("source died mid-stream")
        return Post(source="live", external_id=raw.payload["id"], platform="test", kind="social",
                    visibility="public", created_at=datetime(2026, 11, 2, tzinfo=UTC),
                    text=f"post number {raw.payload['id']}", author_id="a")

    def stream(fail: bool):
        yield RawItem("live", {"id": "1"})
        yield RawItem("live", {"id": "2"})
        yield CursorMark("after-2")
        yield RawItem("live", {"id": "3"})
        if fail:
            yield RawItem("live", {"boom": True})
        yield CursorMark("after-3")

    with pytest.raises(RuntimeError):
        pipe.run(spec, stream(fail=True), normalise, kind="collect")
    assert store.get_cursor("live") == "after-2"
    assert store.count() == 2
    _, stats = pipe.run(spec, stream(fail=False), normalise, kind="collect")
    assert store.get_cursor("live") == "after-3"
    assert store.count() == 3 and (stats.stored, stats.unchanged) == (1, 2)


def _item(enrichment: Enrichment, ext: str, body: str, hours: int, cluster: str):
    """An enriched post of source ``src`` created ``hours`` after 2026-11-02 00:00 UTC, in cluster ``cluster``."""
    from dataclasses import replace
    from datetime import timedelta

    post = Post(source="src", external_id=ext, platform="reddit", kind="social", visibility="public",
                created_at=datetime(2026, 11, 2, tzinfo=UTC) + timedelta(hours=hours), text=body, author_id=f"a{ext}")
    verdict = Guard(KEY).check(post, "public")
    assert verdict.post is not None
    return replace(enrichment.enrich([verdict.post])[0], cluster_key=cluster)


def _snapshot(store: Store) -> dict[str, object]:
    """Everything a batch writes, by natural key (no row ids): posts, their labels, clusters, guard counts."""
    from openear.store.schema import clusters

    with store.connect() as conn:
        by_id = {pid: ext for pid, ext in conn.execute(select(posts.c.id, posts.c.external_id))}
        keys = dict(conn.execute(select(clusters.c.id, clusters.c.key)).all())
        rows = {r.external_id: (r.text, r.category, r.sentiment, r.lang, r.content_hash, keys.get(r.cluster_id),
                                r.created_at) for r in conn.execute(select(posts))}
        lbls: dict[str, list[tuple[str, str, str]]] = {}
        for pid, name, value, enricher in conn.execute(
                select(labels.c.post_id, labels.c.name, labels.c.value, labels.c.enricher).order_by(labels.c.id)):
            lbls.setdefault(by_id[pid], []).append((name, value, enricher))
        reps = {r.key: (r.size, r.first_seen, r.last_seen, by_id.get(r.representative_post_id))
                for r in conn.execute(select(clusters))}
        counts = sorted(conn.execute(select(guard_counts)).all())
    return {"posts": rows, "labels": {k: sorted(v) for k, v in lbls.items()}, "clusters": reps, "counts": counts}


def test_a_mixed_batch_stores_the_last_versions_and_keeps_clusters_labels_counts_and_index_exact(
    store: Store, enrichment: Enrichment
) -> None:
    """New, changed, unchanged and superseded posts in one batch, checked against a fresh read of the store."""
    first = [
        _item(enrichment, "1", "alpha pay was cut", 0, "k1"),
        _item(enrichment, "2", "bravo support is silent", 1, "k1"),
        _item(enrichment, "3", "charlie app crash", 2, "k2"),
        _item(enrichment, "4", "delta station wait", 3, "k2"),
        _item(enrichment, "5", "echo write me at jo@example.com", 4, "k3"),
    ]
    store.write_batch(store.start_run("import", "src"), first)
    with store.begin() as conn:  # an analyst recategorises post 2: the override must outlive its re-delivery
        pid2 = conn.execute(select(posts.c.id).where(posts.c.external_id == "2")).scalar_one()
        conn.execute(labels.insert().values(post_id=pid2, name="primary", value="safety", score=1.0,
                                            enricher="analyst@ana"))
        conn.execute(posts.update().where(posts.c.id == pid2).values(category="safety"))
    mixed = [
        _item(enrichment, "1", "alpha pay was cut", 0, "k9"),  # unchanged (another cluster key: stays in k1)
        _item(enrichment, "3", "charlie app crash twice", 2, "k2"),  # superseded by the next
        _item(enrichment, "3", "charlie app crash foxtrot", 5, "k1"),  # changed: leaves k2 for k1, later
        _item(enrichment, "2", "bravo support is silent for weeks", 1, "k1"),  # changed, keeps the override
        _item(enrichment, "5", "echo write me at jo@example.com golf", 6, "k3"),  # changed, same cluster
        _item(enrichment, "6", "hotel call me on +44 7700 900123", 7, "k4"),  # new, scrubbed
        _item(enrichment, "7", "india kilo", 8, "k4"),  # new, superseded by the next
        _item(enrichment, "7", "india juliet", 9, "k4"),
    ]
    before = _snapshot(store)
    res = store.write_batch(store.start_run("import", "src"), mixed)
    assert (res.stored, res.unchanged) == (5, 3)

    snap = _snapshot(store)
    stored = {i.post.external_id: i for i in first}
    stored.update({i.post.external_id: i for i in mixed[1:]})  # the last version of each post
    assert {ext: row[0] for ext, row in snap["posts"].items()} == {ext: i.post.text for ext, i in stored.items()}
    assert snap["posts"]["2"][1] == "safety"
    assert {ext: row[5] for ext, row in snap["posts"].items()} == {
        "1": "k1", "2": "k1", "3": "k1", "4": "k2", "5": "k3", "6": "k4", "7": "k4"}
    assert snap["posts"]["4"] == before["posts"]["4"]  # not in the batch
    expected_labels = {ext: sorted((lb.name, lb.value, lb.enricher) for lb in i.labels) for ext, i in stored.items()}
    expected_labels["2"] = sorted([*expected_labels["2"], ("primary", "safety", "analyst@ana")])
    assert snap["labels"] == expected_labels
    with store.connect() as conn:
        created = {r.external_id: (r.id, r.created_at) for r in conn.execute(select(posts))}

    def cluster(*exts: str) -> tuple[int, datetime, datetime, str]:
        times = [created[e][1] for e in exts]
        return len(exts), min(times), max(times), min(exts, key=lambda e: created[e][0])

    assert {k: v for k, v in snap["clusters"].items() if k != "k9"} == {
        "k1": cluster("1", "2", "3"), "k2": cluster("4"), "k3": cluster("5"), "k4": cluster("6", "7")}
    assert snap["clusters"]["k9"][0] == 0  # made for the unchanged post's new key, and empty
    # Scrubs count per stored version: post 5's email twice (stored, then changed), post 6's phone once.
    scrubbed = {(r.reason, r.n) for r in snap["counts"] if r.action == "scrubbed"}  # type: ignore[attr-defined]
    assert scrubbed == {("email", 2), ("phone", 1)}
    words = {"twice": 0, "foxtrot": 1, "weeks": 1, "golf": 1, "delta": 1, "kilo": 0, "juliet": 1, "alpha": 1}
    assert {w: index_hits(store, w) for w in words} == words

    again = store.write_batch(store.start_run("import", "src"), mixed)  # re-delivered: nothing changes
    assert (again.stored, again.unchanged) == (0, 8)
    assert _snapshot(store) == snap


def test_scrub_counts_add_up_over_batches(store: Store, enrichment: Enrichment) -> None:
    run = store.start_run("import", "src")
    store.write_batch(run, [_item(enrichment, "1", "mail jo@example.com", 1, "a")])
    store.write_batch(run, [_item(enrichment, "2", "mail al@example.com", 2, "b"),
                            _item(enrichment, "3", "mail bo@example.com", 3, "c")])
    with store.connect() as conn:
        rows = conn.execute(select(guard_counts.c.day, guard_counts.c.action, guard_counts.c.reason,
                                   guard_counts.c.n)).all()
    assert rows == [("2026-11-02", "scrubbed", "email", 3)]
