"""Guardrail 6 reaches what was derived from posts: the retention purge (``openear purge`` and the scheduled job, on
both stores) also deletes archived reports (rows and files, never outside the archive folder), closed cases with
their events, links and deliveries, alerts no longer open, topics and old deliveries; it keeps open cases and open
alerts whatever their age, reports whose period is within the limit, the per-day rollups and the audit log."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from typer.testing import CliRunner

from conftest import Workspace
from openear import audit
from openear.enrich import Enrichment
from openear.guard import Guard
from openear.models import Post
from openear.retention import archive_dir, delete_archive_files, purge_expired
from openear.scheduler import JOBS, JobContext
from openear.store import Store
from openear.store.schema import (
    alerts,
    audit_log,
    case_clusters,
    case_events,
    case_posts,
    cases,
    deliveries,
    post_rollups,
    posts,
    report_archive,
    topics,
)

KEY = b"r" * 32
NOW = datetime(2027, 6, 1, 3, 0)  # the scheduler's clock (naive UTC); the retention limit is the default 180 days
CUTOFF = NOW - timedelta(days=180)


@pytest.fixture
def ws(db_url: str, workspace: Workspace) -> Workspace:
    workspace.store.migrate()
    return workspace


def _write_posts(store: Store, items: list[tuple[str, datetime]]) -> dict[str, int]:
    guard = Guard(KEY)
    batch = []
    for ext, created in items:
        verdict = guard.check(Post(source="src", external_id=ext, platform="reddit", kind="social",
                                   visibility="public", created_at=created.replace(tzinfo=UTC),
                                   text=f"The station wait was long again ({ext})", author_id=f"a{ext}"), "public")
        assert verdict.post is not None
        batch.append(verdict.post)
    store.write_batch(store.start_run("import", "src"), Enrichment().enrich(batch))
    with store.connect() as conn:
        return {r.external_id: r.id for r in conn.execute(select(posts.c.external_id, posts.c.id))}


def seed(store: Store, home: Path, cutoff: datetime) -> dict[str, Any]:
    """Derived data on both sides of ``cutoff`` (naive UTC); returns the ids, paths and counts to check."""
    post_ids = _write_posts(store, [("old", cutoff - timedelta(days=10)), ("new", cutoff + timedelta(days=10))])
    with store.connect() as conn:
        new_cluster = conn.execute(select(posts.c.cluster_id).where(posts.c.id == post_ids["new"])).scalar_one()
    root = archive_dir(home)
    (root / "daily").mkdir(parents=True)
    outside = home / "outside.txt"  # a file of the workspace that an archive row names with "..": never deleted
    outside.write_text("not a report", encoding="utf-8")
    ids: dict[str, Any] = {"outside": outside, "root": root, "cutoff": cutoff}

    def report(name: str, until: datetime, fmt: str, path: str, *, write: bool = True) -> int:
        if write:
            (root / path).write_text(f"report quoting the station wait ({name})", encoding="utf-8")
        with store.begin() as conn:
            return int(conn.execute(insert(report_archive).values(
                kind="daily", audience=name, period_since=until - timedelta(days=1), period_until=until,
                format=fmt, path=path, created_at=until)).inserted_primary_key[0])

    ids["report_old_html"] = report("old", cutoff - timedelta(days=1), "html", "daily/old.html")
    ids["report_old_pdf"] = report("old", cutoff - timedelta(days=1), "pdf", "daily/old.pdf")
    ids["report_edge"] = report("edge", cutoff, "html", "daily/edge.html")  # ends exactly at the cutoff: deleted
    ids["report_gone"] = report("gone", cutoff - timedelta(days=2), "html", "daily/gone.html", write=False)
    ids["report_escape"] = report("escape", cutoff - timedelta(days=3), "html", "../../outside.txt", write=False)
    ids["report_new"] = report("new", cutoff + timedelta(days=1), "html", "daily/new.html")  # within retention

    def case(name: str, status: str, created: datetime, closed: datetime | None) -> int:
        with store.begin() as conn:
            cid = int(conn.execute(insert(cases).values(
                title=f"The station wait was long again ({name})", category="delays", team="ops", status=status,
                priority="normal", origin="user:ana", created_at=created, updated_at=closed or created,
                progress_at=closed or created, closed_at=closed)).inserted_primary_key[0])
            conn.execute(insert(case_events), [
                {"case_id": cid, "at": created, "actor": "ana", "kind": "created",
                 "detail": json.dumps({"title": f"The station wait was long again ({name})"})},
                {"case_id": cid, "at": created, "actor": "ana", "kind": "note", "detail": '{"note": "called"}'}])
            conn.execute(insert(case_posts).values(case_id=cid, post_id=post_ids["new"], added_at=created))
            conn.execute(insert(case_clusters).values(case_id=cid, cluster_id=new_cluster, added_at=created))
        return cid

    old = cutoff - timedelta(days=100)
    ids["case_resolved"] = case("resolved", "resolved", old, cutoff - timedelta(days=5))
    ids["case_dismissed"] = case("dismissed", "dismissed", old, cutoff - timedelta(days=50))
    ids["case_open"] = case("open", "investigating", old, None)  # work in progress: kept whatever its age
    ids["case_closed_late"] = case("closed late", "resolved", old, cutoff + timedelta(days=1))  # closed since
    ids["case_reopened"] = case("reopened", "new", old, cutoff - timedelta(days=60))  # open: a stale closed_at
    ids["case_recent"] = case("recent", "new", cutoff + timedelta(days=2), None)  # open, not from before then

    def alert(name: str, status: str, bucket: datetime, case_id: int | None = None) -> int:
        with store.begin() as conn:
            return int(conn.execute(insert(alerts).values(
                dimension="category", value=name, granularity="hour", bucket_start=bucket, observed=9, expected=1.0,
                score=5.0, status=status, created_at=bucket, terms='["station", "wait"]',
                post_ids=json.dumps([post_ids["old"]]), cluster_ids="[]", case_id=case_id)).inserted_primary_key[0])

    ids["alert_closed"] = alert("closed", "closed", cutoff - timedelta(hours=1))
    ids["alert_ack"] = alert("ack", "acknowledged", cutoff - timedelta(days=30))
    ids["alert_open"] = alert("open", "open", cutoff - timedelta(days=30), ids["case_open"])  # kept
    ids["alert_new"] = alert("new", "closed", cutoff + timedelta(hours=1), ids["case_resolved"])  # its case goes
    ids["alert_recent"] = alert("recent", "open", cutoff + timedelta(hours=2))  # open, not from before then

    with store.begin() as conn:
        for day, rank in ((cutoff - timedelta(days=1), 1), (cutoff, 1)):
            conn.execute(insert(topics).values(
                day=f"{day:%Y-%m-%d}", rank=rank, window_days=7, terms='["station"]', n_posts=3, n_previous=0,
                score=2.0, post_ids=json.dumps([post_ids["old"]]), created_at=day))
        conn.execute(insert(post_rollups).values(dim="kind", day=f"{old:%Y-%m-%d}", value="news", n=7))
        later = cutoff + timedelta(days=1)
        rows = [
            (cutoff - timedelta(days=1), f"case:{ids['case_open']}", "deleted: old"),
            (later, f"case:{ids['case_resolved']}", "deleted: its case"),
            (later, f"alert:{ids['alert_ack']}", "deleted: its alert"),
            (later, f"report:{ids['report_old_html']}", "deleted: its report"),
            (later, f"case:{ids['case_open']}", "kept"),
            (later, f"alert:{ids['alert_open']}", "kept"),
            (later, f"report:{ids['report_new']}", "kept"),
        ]
        conn.execute(insert(deliveries), [
            {"at": at, "channel": "email", "team": "ops", "ref": ref, "subject": subject, "status": "sent",
             "attempts": 1} for at, ref, subject in rows])
    audit.log(store, "ana", "case.view", f"case:{ids['case_resolved']}")  # the audit log keeps it
    return ids


def counts(store: Store) -> dict[str, int]:
    with store.connect() as conn:
        return {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                for t in (report_archive, cases, case_events, case_posts, case_clusters, alerts, topics, deliveries,
                          post_rollups, audit_log)}


EXPECTED = {"reports": 5, "report_files": 3, "cases": 2, "case_events": 4, "alerts": 2, "topics": 1,
            "deliveries": 4, "open_cases_kept": 2, "open_alerts_kept": 1}
KEPT_CASES = ("case_open", "case_closed_late", "case_reopened", "case_recent")


def check_purged(store: Store, ids: dict[str, Any]) -> None:
    """What the purge at the seed's cutoff deleted, and what it kept."""
    root = ids["root"]
    # 1. archived reports: rows and files up to the cutoff; never a file outside the archive
    assert not (root / "daily/old.html").exists() and not (root / "daily/old.pdf").exists()
    assert not (root / "daily/edge.html").exists()
    assert (root / "daily/new.html").is_file() and ids["outside"].read_text(encoding="utf-8") == "not a report"
    with store.connect() as conn:
        assert list(conn.execute(select(report_archive.c.id)).scalars()) == [ids["report_new"]]
        # 2. closed cases with their events and links; open work and cases closed since are kept
        assert sorted(conn.execute(select(cases.c.id)).scalars()) == sorted(ids[k] for k in KEPT_CASES)
        for link in (case_events, case_posts, case_clusters):
            assert set(conn.execute(select(link.c.case_id)).scalars()) == {ids[k] for k in KEPT_CASES}
        # 3. alerts no longer open on buckets before the cutoff, and old topics
        kept = dict(conn.execute(select(alerts.c.id, alerts.c.case_id)).all())
        assert kept == {ids["alert_open"]: ids["case_open"], ids["alert_new"]: None, ids["alert_recent"]: None}
        assert [f"{d}" for d in conn.execute(select(topics.c.day)).scalars()] == [f"{ids['cutoff']:%Y-%m-%d}"]
        # 4. deliveries: old ones, and those about a deleted case, alert or report
        assert sorted(conn.execute(select(deliveries.c.subject)).scalars()) == ["kept"] * 3
        # kept by policy: the per-day rollups name no post; the audit log is append-only
        assert conn.execute(select(post_rollups.c.n).where(post_rollups.c.value == "news")).scalar_one() == 7
        assert audit.verify(conn)
        assert [e["action"] for e in audit.entries(conn)][-2:] == ["case.view", "purge"]


def test_purge_deletes_what_was_derived_from_old_posts_and_keeps_open_work(ws: Workspace) -> None:
    store = ws.store
    ids = seed(store, ws.home, CUTOFF)
    before = counts(store)

    dry = purge_expired(store, ws.home, CUTOFF, dry_run=True, actor="cli")
    assert {k: dry[k] for k in EXPECTED} == EXPECTED and dry["posts"] == 1
    assert counts(store) == before and (ids["root"] / "daily/old.html").is_file()  # a dry run deletes nothing

    done = purge_expired(store, ws.home, CUTOFF, actor="cli")
    assert {k: done[k] for k in EXPECTED} == EXPECTED and done["posts"] == 1
    assert "report_paths" not in done
    check_purged(store, ids)
    with store.connect() as conn:
        detail = json.loads(list(audit.entries(conn))[-1]["detail"])
    assert {k: detail[k] for k in EXPECTED} == EXPECTED  # the audit record holds the new counts

    again = purge_expired(store, ws.home, CUTOFF)
    assert {k: again[k] for k in EXPECTED} == {**dict.fromkeys(EXPECTED, 0), "open_cases_kept": 2,
                                               "open_alerts_kept": 1}


def test_store_purge_returns_the_archive_paths_and_touches_no_file(ws: Workspace) -> None:
    ids = seed(ws.store, ws.home, CUTOFF)
    done = ws.store.purge(CUTOFF)
    assert done["report_paths"] == ["../../outside.txt", "daily/edge.html", "daily/gone.html", "daily/old.html",
                                    "daily/old.pdf"]
    assert (ids["root"] / "daily/old.html").is_file()  # the store knows no files: the caller deletes them


def test_scheduled_purge_job(ws: Workspace) -> None:
    ids = seed(ws.store, ws.home, CUTOFF)
    job = next(j for j in JOBS if j.name == "purge")
    summary = job.action(JobContext(ws.settings, ws.store), NOW)
    assert summary.startswith("purged 1 posts older than 180 days. ")
    assert ("Also deleted 5 archived reports (3 files), 2 closed cases (4 events), 2 alerts, 1 topic and "
            "4 deliveries. Kept 2 open cases and 1 open alert from before then") in summary
    check_purged(ws.store, ids)
    with ws.store.connect() as conn:
        last = list(audit.entries(conn))[-1]
    assert last["actor"] == "scheduler" and json.loads(last["detail"])["cases"] == 2


def test_cli_purge_names_each_kind(ws: Workspace) -> None:
    from openear.cli import app

    # the CLI purges by the real clock, a little after this cutoff: only the report ending at it is that close.
    # Both must fall on the same UTC day (topics and the output go by day): never start a minute before midnight.
    now = datetime.now(UTC)
    to_midnight = (now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1) - now).total_seconds()
    if to_midnight < 60:
        time.sleep(to_midnight + 1)
    cutoff = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=180)
    ids = seed(ws.store, ws.home, cutoff)
    runner = CliRunner()
    r = runner.invoke(app, ["--home", str(ws.home), "purge", "--dry-run"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())
    assert out.startswith(f"Would delete 1 posts created before {cutoff:%Y-%m-%d} (retention 180 days). ")
    assert ("Would also delete 5 archived reports (3 files), 2 closed cases (4 events), 2 alerts, 1 topic and "
            "4 deliveries. Would keep 2 open cases and 1 open alert from before then: open work is kept whatever "
            "its age.") in out
    assert (ids["root"] / "daily/old.html").is_file()
    r = runner.invoke(app, ["--home", str(ws.home), "purge"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())
    assert out.startswith(f"Deleted 1 posts created before {cutoff:%Y-%m-%d} (retention 180 days). Also deleted 5 ")
    assert "Kept 2 open cases and 1 open alert" in out
    check_purged(ws.store, ids)


def test_archive_files_are_deleted_only_inside_the_archive(tmp_path: Path) -> None:
    root = tmp_path / "reports" / "archive"
    (root / "daily").mkdir(parents=True)
    (root / "daily" / "a.html").write_text("a", encoding="utf-8")
    (root / "daily" / "b.pdf").write_text("b", encoding="utf-8")
    outside = tmp_path / "keep.txt"
    outside.write_text("keep", encoding="utf-8")
    (root / "daily" / "link.html").symlink_to(outside)  # a link leading out of the archive
    paths = ["daily/a.html", "daily/missing.html", "../../keep.txt", str(outside), "daily/link.html", ".",
             "daily", "daily/../daily/b.pdf"]
    assert delete_archive_files(root, paths, dry_run=True) == 2
    assert (root / "daily" / "a.html").exists()
    assert delete_archive_files(root, paths) == 2  # a.html and b.pdf; a missing file is no error
    assert sorted(os.listdir(root / "daily")) == ["link.html"]
    assert outside.read_text(encoding="utf-8") == "keep" and (root / "daily").is_dir()
