"""The scheduled jobs of ``openear run``: when each is due, idempotence across restarts (the ``jobs`` table and
the report archive), failure isolation and retry, and the ``openear schedule`` commands, on a controllable clock."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from openear import triage
from openear.channels import Outbox
from openear.scheduler import JOBS, Job, JobContext, Scheduler
from openear.store.schema import report_archive

MONDAY = datetime(2026, 11, 30, 0, 30)  # a Monday, before the daily reports' 01:00 slot


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t

    def advance(self, **kw: float) -> None:
        self.t += timedelta(**kw)


@pytest.fixture
def ws(workspace: Any) -> Any:
    workspace.store.migrate()
    return workspace


def by_name(name: str) -> Job:
    return next(j for j in JOBS if j.name == name)


def test_when_each_kind_of_job_is_due() -> None:
    every = by_name("escalations")
    assert every.next_due(None, MONDAY) == MONDAY
    assert every.next_due(MONDAY, MONDAY) == MONDAY + timedelta(minutes=15)
    daily = by_name("report-daily")  # 01:00 UTC
    assert daily.next_due(None, MONDAY) == datetime(2026, 11, 29, 1, 0)  # yesterday's slot: due at once
    assert daily.next_due(MONDAY, MONDAY) == datetime(2026, 11, 30, 1, 0)
    assert daily.next_due(datetime(2026, 11, 30, 1, 0), datetime(2026, 11, 30, 9, 0)) == datetime(2026, 12, 1, 1, 0)
    weekly = by_name("report-weekly")  # Mondays 01:30 UTC
    assert weekly.next_due(MONDAY, MONDAY) == datetime(2026, 11, 30, 1, 30)
    assert weekly.next_due(datetime(2026, 11, 30, 1, 30), datetime(2026, 12, 2, 8, 0)) == datetime(2026, 12, 7, 1, 30)


def test_jobs_run_when_due_once_across_restarts_and_reports_are_not_written_twice(ws: Any) -> None:
    clock = Clock(MONDAY)
    with ws.store.begin() as conn:  # an urgent case: the escalation sweep escalates it
        cid = triage.open_case(
            conn,
            title="Injury at the depot",
            team="Station ops",
            actor="ana",
            now=MONDAY - timedelta(hours=1),
            priority="urgent",
        )
    box = Outbox()
    first = Scheduler(ws.settings, ws.store, clock=clock, notifier=box).run_due()
    assert [r.name for r in first] == [j.name for j in JOBS] and all(r.ok for r in first), first
    assert any(r.name == "escalations" and f"#{cid}" in r.summary for r in first)
    assert any(t.name == "Management" and m.ref == f"case:{cid}" for t, m in box.sent)
    with ws.store.connect() as conn:
        archived = conn.execute(select(report_archive.c.kind, report_archive.c.audience, report_archive.c.format)).all()
    audiences = {a for _, a, _ in archived}
    assert "Management" in audiences and len(audiences) >= 2  # every owning team and management
    assert {(k, f) for k, _, f in archived} == {
        ("daily", "pdf"),
        ("daily", "html"),
        ("weekly", "pdf"),
        ("weekly", "html"),
    }
    # a restart at the same time runs nothing: the last runs are in the store
    assert Scheduler(ws.settings, ws.store, clock=clock, notifier=box).run_due() == []
    clock.advance(minutes=20)
    assert [r.name for r in Scheduler(ws.settings, ws.store, clock=clock).run_due()] == ["escalations"]
    clock.advance(minutes=30)  # 01:20: the day's reports are due (the day's period was archived already)
    again = Scheduler(ws.settings, ws.store, clock=clock, notifier=box).run_due()
    assert [r.name for r in again] == ["escalations", "report-daily"]  # spike alerts: hourly, next at 01:30
    assert again[-1].summary == "0 daily reports"  # yesterday is in the archive: not produced twice
    with ws.store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(report_archive)).scalar_one() == len(archived)


def test_a_failing_job_is_recorded_retried_later_and_never_stops_the_others(ws: Any) -> None:
    clock = Clock(MONDAY)
    calls: list[str] = []

    def broken(ctx: JobContext, now: datetime) -> str:
        calls.append("broken")
        raise RuntimeError("the SMTP relay is down")

    def fine(ctx: JobContext, now: datetime) -> str:
        calls.append("fine")
        return "did it"

    jobs = [
        Job("broken", "fails", broken, every=timedelta(minutes=5)),
        Job("fine", "works", fine, every=timedelta(minutes=5)),
    ]
    sched = Scheduler(ws.settings, ws.store, jobs=jobs, clock=clock)
    runs = sched.run_due()
    assert [(r.name, r.ok) for r in runs] == [("broken", False), ("fine", True)]
    status = {s["name"]: s for s in sched.status()}
    assert status["broken"]["last_error"] == "RuntimeError: the SMTP relay is down"
    assert status["broken"]["failures"] == 1 and status["broken"]["last_run_at"] is None
    assert status["broken"]["next_due"] == MONDAY + timedelta(minutes=15)  # retried after a while, not at once
    clock.advance(minutes=6)
    assert [r.name for r in sched.run_due()] == ["fine"]
    clock.advance(minutes=10)
    assert [r.name for r in sched.run_due()] == ["broken", "fine"]
    assert calls == ["broken", "fine", "fine", "broken", "fine"]


def test_schedule_commands_list_and_run_once(ws: Any) -> None:
    from openear.cli import app

    runner = CliRunner()
    home = ["--home", str(ws.home)]
    r = runner.invoke(app, [*home, "schedule", "list", "--json"])
    assert r.exit_code == 0, r.output
    listed = json.loads(r.output)
    assert [j["name"] for j in listed] == [j.name for j in JOBS]
    assert all(j["last_run_at"] is None for j in listed)
    r = runner.invoke(app, [*home, "schedule", "run", "--once"])
    assert r.exit_code == 0, r.output
    assert "escalations: ok: 0 escalations" in r.output and "purge: ok: purged 0 posts" in r.output
    r = runner.invoke(app, [*home, "schedule", "run", "--once"])
    assert r.exit_code == 0 and "No job was due." in r.output
    r = runner.invoke(app, [*home, "schedule", "list"])
    assert r.exit_code == 0 and "report-weekly" in r.output and "never" not in r.output


def test_a_team_report_covers_its_own_categories_and_management_s_everything(ws: Any) -> None:
    from openear.scheduler import write_archived
    from openear.store.queries import Period

    start = datetime(2026, 11, 20, 8, 0)
    crash = "The app crashes every time I scan a package at the station, update please"
    pay = "My pay was late again this week and the tips are missing from the statement"
    ws.import_rows(
        [
            {
                "id": f"a{i}",
                "text": f"{crash} {i}",
                "author": f"x{i}",
                "created_at": (start + timedelta(hours=i)).isoformat() + "Z",
            }
            for i in range(5)
        ],
        name="a.jsonl",
    )
    ws.import_rows(
        [
            {
                "id": f"p{i}",
                "text": f"{pay} {i}",
                "author": f"y{i}",
                "created_at": (start + timedelta(hours=i)).isoformat() + "Z",
            }
            for i in range(4)
        ],
        name="p.jsonl",
    )
    ws.import_rows(
        [{"id": "n1", "title": "Couriers say the app crashes", "text": crash, "created_at": start.isoformat() + "Z"}],
        kind="news",
        name="n.jsonl",
        source="news",
    )
    cfg = triage.load_triage(ws.settings)
    period = Period(start - timedelta(days=1), start + timedelta(days=2))
    team = write_archived(
        ws.store,
        ws.settings,
        cfg,
        kind="daily",
        team=cfg.team("Driver app"),  # type: ignore[arg-type]
        period=period,
        now=start + timedelta(days=3),
        formats=("html",),
    )
    mgmt = write_archived(
        ws.store,
        ws.settings,
        cfg,
        kind="daily",
        team=cfg.management_team,
        period=period,
        now=start + timedelta(days=3),
        formats=("html",),
    )
    team_html = team.paths["html"].read_text(encoding="utf-8")
    mgmt_html = mgmt.paths["html"].read_text(encoding="utf-8")
    assert "social listening report for Driver app" in team_html
    assert "App issue" in team_html and "Pay and tips" not in team_html
    assert "App issue" in mgmt_html and "Pay and tips" in mgmt_html
    for html in (team_html, mgmt_html):  # the charts: volume, sentiment, guard, open cases, media coverage
        assert "Posts per day by category" in html and "Media coverage: news items per day" in html
        assert "What the guard kept out" in html and 'id="triage"' in html


def test_a_team_report_lists_its_own_newest_news_not_the_organisation_s_cut_down(
    ws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With more news than a report lists, a team's media section holds the team's newest items: filtering the
    organisation's newest (all about pay here) would leave the app team with none."""
    from openear import reports
    from openear.scheduler import team_report
    from openear.store.queries import Period

    start = datetime(2026, 11, 20, 8, 0)
    crash = "The app crashes every time I scan a package at the station, update please"
    pay = "Drivers say their pay was late again and the tips are missing from the statement"
    news = [{"id": "n-app", "title": "Couriers say the app crashes", "text": crash, "created_at": start}] + [
        {"id": f"n-pay{i}", "title": f"Pay delays, part {i}", "text": pay, "created_at": start + timedelta(hours=i + 1)}
        for i in range(3)
    ]
    ws.import_rows([{**n, "created_at": n["created_at"].isoformat() + "Z"} for n in news], kind="news",
                   name="n.jsonl", source="news")
    monkeypatch.setattr(reports, "MEDIA_ITEMS", 2)
    period = Period(start - timedelta(days=1), start + timedelta(days=2))
    with ws.store.connect() as conn:
        org = reports.build_report(conn, period, settings_like=ws.settings, media=2)
        assert [m["title"] for m in org.media] == ["Pay delays, part 2", "Pay delays, part 1"]
        app = team_report(conn, org, ["app_issue"], period)
        pay_team = team_report(conn, org, ["pay_tips"], period)
    assert [m["title"] for m in app.media] == ["Couriers say the app crashes"]
    assert reports.media_note(app) is None  # the team's one news item, listed
    assert [m["title"] for m in pay_team.media] == ["Pay delays, part 2", "Pay delays, part 1"]
    assert reports.media_note(pay_team) == "2 of 3 news items, newest first."


def test_serve_runs_due_jobs_in_its_thread_until_stopped(ws: Any) -> None:
    import threading

    ran = threading.Event()

    def job(ctx: JobContext, now: datetime) -> str:
        ran.set()
        return "ok"

    sched = Scheduler(ws.settings, ws.store, jobs=[Job("x", "a job", job, every=timedelta(hours=1))])
    stop = threading.Event()
    thread = threading.Thread(target=sched.serve, args=(stop,), kwargs={"tick": 0.05})
    thread.start()
    try:
        assert ran.wait(60)
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive() and sched.status()[0]["runs"] == 1
