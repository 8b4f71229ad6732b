"""Scheduled reports: daily and weekly, one per team and one for the management group, in HTML and PDF.

Each is the organisation's report for the period (:mod:`openear.reports`) with a section on cases and spike
alerts added: a team's own cases and the alerts on its categories; for management, every case and alert. Files go
to ``<home>/reports/archive/<kind>/`` and are listed in ``report_archive``; a period already archived is not
written again. Each report is then sent through the audience's channels, with the PDF attached.

:class:`Scheduler` runs the jobs of ``openear run`` (and ``openear schedule run``) when they are due: the
escalation sweep every 15 minutes, spike alerts every hour, the daily reports at 01:00 UTC, the weekly reports on
Mondays at 01:30 UTC and the retention purge at 03:00 UTC. Each job's last run is kept in the ``jobs`` table.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from markupsafe import Markup
from sqlalchemy import Connection, and_, delete, func, insert, select, update

from openear import charts, reports
from openear.retention import archive_dir
from openear.store import queries
from openear.store.queries import Period
from openear.store.schema import alerts as alerts_table
from openear.store.schema import jobs as jobs_table
from openear.store.schema import posts, report_archive
from openear.triage.config import Team, TriageConfig

__all__ = [
    "JOBS",
    "KINDS",
    "ArchivedReport",
    "Job",
    "JobRun",
    "Scheduler",
    "archive_dir",
    "due_period",
    "list_archive",
    "run_scheduled",
    "write_archived",
]

log = logging.getLogger("openear.scheduler")

KINDS = ("daily", "weekly")
SECTION_MARK = '<section id="guard">'


@dataclass
class ArchivedReport:
    id: int
    kind: str
    audience: str
    period: Period
    paths: dict[str, Path] = field(default_factory=dict)


def _naive(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


def due_period(kind: str, now: datetime) -> Period:
    """The last complete period: yesterday (UTC) for ``daily``, last Monday-to-Monday week for ``weekly``."""
    today = _naive(now).replace(hour=0, minute=0, second=0, microsecond=0)
    if kind == "daily":
        return Period(today - timedelta(days=1), today)
    if kind == "weekly":
        monday = today - timedelta(days=today.weekday())
        return Period(monday - timedelta(days=7), monday)
    raise ValueError(f"report kind: {kind!r}: expected daily or weekly")


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "team"


def _audience_filter(cfg: TriageConfig, team: Team) -> tuple[list[str] | None, list[str] | None]:
    """(teams, categories) whose cases and alerts the audience sees; ``None`` means all."""
    if team.management:
        return None, None
    cats = sorted({r.category for r in cfg.routing if r.team == team.name and r.category})
    return [team.name], cats


def triage_section(conn: Connection, cfg: TriageConfig, period: Period, team: Team) -> str:
    """The HTML section on cases and alerts for one audience."""
    teams, cats = _audience_filter(cfg, team)
    since, until = _naive(period.since), _naive(period.until)
    from openear.triage import OPEN_STATUSES, list_cases

    all_cases = [c for c in list_cases(conn) if teams is None or c["team"] in teams]
    open_cases = [c for c in all_cases if c["status"] in OPEN_STATUSES]
    rank = ("low", "normal", "high", "urgent")
    open_cases.sort(key=lambda c: (c["status"] != "escalated", -rank.index(c["priority"]), -c["posts"]))
    stmt = select(alerts_table).where(alerts_table.c.bucket_start >= since, alerts_table.c.bucket_start < until)
    alert_rows = [dict(r) for r in conn.execute(stmt.order_by(alerts_table.c.bucket_start)).mappings()]
    if cats is not None:
        alert_rows = [a for a in alert_rows if a["dimension"] == "category" and a["value"] in cats]
    import json

    for a in alert_rows:
        a["terms"] = json.loads(a["terms"] or "[]")
    opened = sum(1 for c in all_cases if since <= c["created_at"] <= until)
    by_status: dict[str, int] = {}
    for c in open_cases:
        by_status[c["status"]] = by_status.get(c["status"], 0) + 1
    media_days = period.days
    news = _media_per_day(conn, since, until, cats)
    media_chart = charts.volume_chart(
        media_days, {"media_coverage": [news.get(d, 0) for d in media_days]}, title="Media coverage: news items per day"
    )
    alerts_chart = charts.alerts_chart(list(reversed(alert_rows)))
    chart = (
        charts.split_chart(
            {k: by_status[k] for k in ("new", "investigating", "escalated") if k in by_status},
            title="Open cases by status",
            colours={"new": "#4e79a7", "investigating": "#f28e2b", "escalated": "#e15759"},
            label=str,
        )
        if by_status
        else None
    )
    env = reports._environment()
    return env.get_template(
        "triage_section.html"
    ).render(
        audience=team.name,
        management=cfg.management,
        t={
            "open": len(open_cases),
            "escalated": by_status.get("escalated", 0),
            "opened": opened,
            "alerts": len(alert_rows),
        },
        chart=Markup(chart) if chart else None,  # drawn by openear.charts; labels XML-escaped
        alerts_chart=Markup(alerts_chart) if alerts_chart else None,
        media_chart=Markup(media_chart) if media_chart else None,
        open_cases=open_cases[:40],
        alerts=alert_rows[:40],
    )


def _media_per_day(conn: Connection, since: datetime, until: datetime, cats: list[str] | None) -> dict[str, int]:
    """News items (``kind`` news: media coverage) per UTC day, of the audience's categories."""
    day = queries.day_bucket(conn, posts.c.created_at)
    cond = and_(posts.c.kind == "news", posts.c.created_at >= since, posts.c.created_at < until)
    if cats is not None:
        cond = and_(cond, posts.c.category.in_(cats))
    return {str(d): int(n) for d, n in conn.execute(select(day, func.count()).where(cond).group_by(day))}


def team_report(conn: Connection, rep: reports.Report, cats: list[str], period: Period) -> reports.Report:
    """The organisation's report narrowed to a team's categories: volume, categories, splits, repeated stories
    and media. The guard's counts stay the organisation's (the guard counts per source and day, not category)."""
    since, until = _naive(period.since), _naive(period.until)
    inside = and_(posts.c.category.in_(cats), posts.c.created_at >= since, posts.c.created_at < until)

    def split(col: Any) -> dict[str, int]:
        rows = conn.execute(select(col, func.count()).where(inside).group_by(col)).all()
        return dict(sorted(((k or "unknown", int(n)) for k, n in rows), key=lambda kv: (-kv[1], kv[0])))

    kinds = split(posts.c.kind)
    sources = split(posts.c.source)
    stories = [c for c in queries.top_clusters(conn, period, limit=200) if c["category"] in cats]
    return replace(
        rep,
        totals={
            **rep.totals,
            "posts": sum(kinds.values()),
            "news": kinds.get("news", 0),
            "social": kinds.get("social", 0),
            "sources": len(sources),
            "clusters": len(stories),
        },
        volume=[v for v in rep.volume if v[1] in cats],
        categories={k: n for k, n in rep.categories.items() if k in cats},
        sentiment=split(posts.c.sentiment),
        languages=split(posts.c.lang),
        sources=sources,
        clusters=stories[:10],
        # the team's own newest news items, not the organisation's newest filtered down
        media=queries.media_coverage(conn, period, limit=reports.MEDIA_ITEMS, categories=cats),
        topics=[],
    )


def compose_html(report: reports.Report, section: str, audience: str) -> str:
    """The report's HTML with the triage section before the guard's section and the audience in the header."""
    html = reports.render_html(report)
    who = Markup.escape(audience)
    html = html.replace(" · social listening report</p>", f" · social listening report for {who}</p>", 1)
    if SECTION_MARK in html:
        return html.replace(SECTION_MARK, section + SECTION_MARK, 1)
    return html.replace("</main>", section + "</main>", 1)


def write_archived(
    store: Any,
    settings: Any,
    cfg: TriageConfig,
    *,
    kind: str,
    team: Team,
    period: Period,
    now: datetime,
    formats: Sequence[str] = ("pdf", "html"),
    report: reports.Report | None = None,
) -> ArchivedReport:
    """Write one audience's report for ``period`` into the archive (replacing an earlier one) and list it."""
    t = _naive(now)
    with store.connect() as conn:
        rep = report or reports.build_report(conn, period, settings_like=settings, now=now)
        cats = _audience_filter(cfg, team)[1]
        if cats is not None:  # a team sees its own categories only
            rep = team_report(conn, rep, cats, period)
        html = compose_html(rep, triage_section(conn, cfg, period, team), team.name)
    folder = archive_dir(settings.home) / kind
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{period.first_day.isoformat()}-{kind}-{_slug(team.name)}"
    paths: dict[str, Path] = {}
    ids: list[int] = []
    since, until = _naive(period.since), _naive(period.until)
    for fmt in formats:
        path = folder / f"{stem}.{fmt}"
        if fmt == "pdf":
            path.write_bytes(reports.render_pdf(rep, html))
        elif fmt == "html":
            path.write_text(html, encoding="utf-8")
        else:
            raise ValueError(f"archive format: {fmt!r}: expected pdf or html")
        paths[fmt] = path
        with store.begin() as conn:
            conn.execute(
                delete(report_archive).where(
                    report_archive.c.kind == kind,
                    report_archive.c.audience == team.name,
                    report_archive.c.period_since == since,
                    report_archive.c.format == fmt,
                )
            )
            ids.append(
                int(
                    conn.execute(
                        insert(report_archive).values(
                            kind=kind,
                            audience=team.name,
                            period_since=since,
                            period_until=until,
                            format=fmt,
                            path=str(path.relative_to(archive_dir(settings.home))),
                            created_at=t,
                        )
                    ).inserted_primary_key[0]
                )
            )
    return ArchivedReport(ids[0] if ids else 0, kind, team.name, period, paths)


def _archived(conn: Connection, kind: str, audience: str, since: datetime) -> bool:
    return (
        conn.execute(
            select(report_archive.c.id).where(
                report_archive.c.kind == kind,
                report_archive.c.audience == audience,
                report_archive.c.period_since == since,
            )
        ).first()
        is not None
    )


def audiences(cfg: TriageConfig) -> list[Team]:
    """Every team that owns something, then the management group."""
    owning = {r.team for r in cfg.routing}
    return [t for t in cfg.teams if t.name in owning and not t.management] + [cfg.management_team]


def run_scheduled(
    store: Any,
    settings: Any,
    cfg: TriageConfig,
    *,
    kind: str,
    now: datetime | None = None,
    notifier: Any = None,
    force: bool = False,
    teams: Sequence[str] | None = None,
    stop: threading.Event | None = None,
) -> list[ArchivedReport]:
    """Write (and send) the ``kind`` reports due at ``now`` that are not archived yet."""
    from openear.channels import ChannelNotifier, Message, record_deliveries

    t = now or datetime.now(UTC)
    period = due_period(kind, t)
    notifier = notifier or ChannelNotifier(cfg.channels)
    with store.connect() as conn:
        rep = reports.build_report(conn, period, settings_like=settings, now=t)
    done: list[ArchivedReport] = []
    for team in audiences(cfg):
        if teams is not None and team.name not in teams:
            continue
        if stop is not None and stop.is_set():  # the rest are written on the next run: nothing is lost
            break
        with store.connect() as conn:
            if not force and _archived(conn, kind, team.name, _naive(period.since)):
                continue
        item = write_archived(store, settings, cfg, kind=kind, team=team, period=period, now=t, report=rep)
        done.append(item)
        pdf = item.paths.get("pdf")
        msg = Message(
            subject=f"[openear] {kind.capitalize()} report for {team.name}: {period.first_day} to {period.last_day}",
            text=f"The {kind} openear report for {team.name} is attached.\n",
            ref=f"report:{item.id}",
            html=item.paths["html"].read_text(encoding="utf-8") if "html" in item.paths else None,
            attachments=((pdf.name, pdf.read_bytes(), "application/pdf"),) if pdf else (),
            link="/reports",
        )
        sent = notifier.notify(team, msg)
        with store.begin() as conn:
            record_deliveries(conn, sent, _naive(t))
    return done


def list_archive(conn: Connection, limit: int = 500) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in conn.execute(
            select(report_archive)
            .order_by(
                report_archive.c.period_since.desc(),
                report_archive.c.kind,
                report_archive.c.audience,
                report_archive.c.format,
            )
            .limit(limit)
        ).mappings()
    ]


# -- the jobs of ``openear run`` ---------------------------------------------------------------------------------
RETRY_AFTER = timedelta(minutes=15)  # a failed job is tried again after this, not at once, not only tomorrow


@dataclass(frozen=True)
class Job:
    """A scheduled job: every ``every``, or daily (``weekday`` None) or weekly at ``at`` (hour, minute) UTC."""

    name: str
    description: str
    action: Callable[[JobContext, datetime], str]  # returns a one-line summary of what it did
    every: timedelta | None = None
    at: tuple[int, int] = (0, 0)
    weekday: int | None = None  # 0 = Monday

    def next_due(self, last_run: datetime | None, now: datetime) -> datetime:
        """When the job is next due, given its last successful run (``None``: never ran)."""
        if self.every is not None:
            return now if last_run is None else last_run + self.every
        slot = now.replace(hour=self.at[0], minute=self.at[1], second=0, microsecond=0)
        step = timedelta(days=1 if self.weekday is None else 7)
        if self.weekday is not None:
            slot -= timedelta(days=(slot.weekday() - self.weekday) % 7)
        if slot > now:
            slot -= step
        # ``slot`` is the latest slot at or before now: due then unless it already ran since
        return slot if last_run is None or last_run < slot else slot + step


@dataclass
class JobContext:
    settings: Any
    store: Any
    notifier: Any = None
    stop: threading.Event | None = None  # set: a long job (the reports) ends after the item in hand

    def triage(self) -> TriageConfig:
        from openear.triage import load_triage

        return load_triage(self.settings)


@dataclass(frozen=True)
class JobRun:
    name: str
    ok: bool
    summary: str


def _reports(kind: str) -> Callable[[JobContext, datetime], str]:
    def action(ctx: JobContext, now: datetime) -> str:
        done = run_scheduled(
            ctx.store, ctx.settings, ctx.triage(), kind=kind, now=now, notifier=ctx.notifier, stop=ctx.stop
        )
        return f"{len(done)} {kind} reports" + (f" ({', '.join(r.audience for r in done)})" if done else "")

    return action


def _alerts(ctx: JobContext, now: datetime) -> str:
    from openear import triage
    from openear.triage.feed import LOCK

    with LOCK:  # never beside the triage pass that follows an import or a collect run
        found = triage.check_alerts(ctx.store, ctx.triage(), now=now, notifier=ctx.notifier)
    return f"{len(found)} spike alerts"


def _escalations(ctx: JobContext, now: datetime) -> str:
    from openear import triage
    from openear.triage.feed import LOCK

    with LOCK:
        done = triage.sweep_escalations(ctx.store, ctx.triage(), now=now, notifier=ctx.notifier)
    return f"{len(done)} escalations" + (f" (cases {', '.join(f'#{e.case_id}' for e in done)})" if done else "")


def _topics(ctx: JobContext, now: datetime) -> str:
    from openear.topics import emerging_topics

    found = emerging_topics(ctx.store, (_naive(now) - timedelta(days=1)).date())  # yesterday: a whole day
    themes = "; ".join(" ".join(t.terms[:3]) for t in found)
    return f"{len(found)} emerging topics" + (f" ({themes})" if found else "")


def _purge(ctx: JobContext, now: datetime) -> str:
    from openear.pipeline import retention_of  # the admin Settings page's value wins, as at ingest
    from openear.retention import describe, purge_expired

    days = retention_of(ctx.settings, ctx.store).days
    before = _naive(now) - timedelta(days=days)
    done = purge_expired(ctx.store, ctx.settings.home, before, actor="scheduler")
    return f"purged {done['posts']} posts older than {days} days. {describe(done)}"


JOBS: tuple[Job, ...] = (
    Job("escalations", "escalation sweep: priority, volume and SLA rules", _escalations, every=timedelta(minutes=15)),
    Job("spike-alerts", "spike alerts per category, source and language", _alerts, every=timedelta(hours=1)),
    Job("topics", "emerging topics of the day before", _topics, at=(0, 15)),
    Job("report-daily", "daily reports per team and for management", _reports("daily"), at=(1, 0)),
    Job("report-weekly", "weekly reports per team and for management", _reports("weekly"), at=(1, 30), weekday=0),
    Job("purge", "retention purge (retention_days)", _purge, at=(3, 0)),
)


class Scheduler:
    """Runs the jobs that are due, each on its own: a failing job is recorded and retried later, and never stops
    the others. The last run of each job is kept in the ``jobs`` table, so a restart repeats nothing."""

    def __init__(
        self,
        settings: Any,
        store: Any,
        *,
        jobs: Sequence[Job] = JOBS,
        clock: Callable[[], datetime] | None = None,
        notifier: Any = None,
    ) -> None:
        self.ctx = JobContext(settings, store, notifier)
        self.jobs = list(jobs)
        self.clock = clock or (lambda: datetime.now(UTC))

    def _rows(self) -> dict[str, dict[str, Any]]:
        with self.ctx.store.connect() as conn:
            return {r["name"]: dict(r) for r in conn.execute(select(jobs_table)).mappings()}

    def _due_at(self, job: Job, row: dict[str, Any] | None, now: datetime) -> datetime:
        due = job.next_due(row["last_run_at"] if row else None, now)
        if row and row["last_attempt_at"] and row["last_error"]:
            due = max(due, row["last_attempt_at"] + RETRY_AFTER)
        return due

    def status(self) -> list[dict[str, Any]]:
        """Each job: name, description, last_run_at, next_due, runs, failures, last_error, last_result."""
        now = _naive(self.clock())
        rows = self._rows()
        out = []
        for job in self.jobs:
            row = rows.get(job.name)
            out.append(
                {
                    "name": job.name,
                    "description": job.description,
                    "last_run_at": row["last_run_at"] if row else None,
                    "next_due": self._due_at(job, row, now),
                    "runs": row["runs"] if row else 0,
                    "failures": row["failures"] if row else 0,
                    "last_error": row["last_error"] if row else None,
                    "last_result": row["last_result"] if row else None,
                }
            )
        return out

    def run_due(self, stop: threading.Event | None = None) -> list[JobRun]:
        """Run every job that is due now, in order (until ``stop`` is set); returns what ran."""
        done = []
        for job in self.jobs:
            if stop is not None and stop.is_set():
                break
            self.ctx.stop = stop
            now = _naive(self.clock())
            if self._due_at(job, self._rows().get(job.name), now) > now:
                continue
            try:
                summary, ok = job.action(self.ctx, now), True
            except Exception as exc:  # one failing job must not stop the others (or the collectors)
                log.error("job %s failed: %s", job.name, traceback.format_exc())
                summary, ok = f"{type(exc).__name__}: {exc}"[:500], False
            self._record(job.name, now, ok, summary)
            done.append(JobRun(job.name, ok, summary))
        return done

    def _record(self, name: str, now: datetime, ok: bool, summary: str) -> None:
        with self.ctx.store.begin() as conn:
            row = conn.execute(select(jobs_table).where(jobs_table.c.name == name)).mappings().first()
            values: dict[str, Any] = {"last_attempt_at": now}
            if ok:
                values.update(
                    last_run_at=now,
                    last_ok_at=now,
                    last_error=None,
                    last_result=summary,
                    runs=(row["runs"] if row else 0) + 1,
                )
            else:
                values.update(last_error=summary, failures=(row["failures"] if row else 0) + 1)
            if row is None:
                conn.execute(insert(jobs_table).values(name=name, **{"runs": 0, "failures": 0, **values}))
            else:
                conn.execute(update(jobs_table).where(jobs_table.c.name == name).values(**values))

    def serve(self, stop: threading.Event, tick: float = 30.0) -> None:
        """Run due jobs every ``tick`` seconds until ``stop`` is set (the thread ``openear run`` starts)."""
        while not stop.is_set():
            try:
                self.run_due(stop)
            except Exception:  # the store being away for a moment must not end the scheduler
                log.error("scheduler: %s", traceback.format_exc())
            stop.wait(tick)
