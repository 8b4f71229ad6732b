"""Scheduled reports: daily and weekly, one per team and one for the management group, in HTML and PDF.

Each is the organisation's report for the period (:mod:`openear.reports`) with a section on cases and spike
alerts added: a team's own cases and the alerts on its categories; for management, every case and alert. Files go
to ``<home>/reports/archive/<kind>/`` and are listed in ``report_archive``; a period already archived is not
written again. Each report is then sent through the audience's channels, with the PDF attached.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from markupsafe import Markup
from sqlalchemy import Connection, delete, insert, select

from openear import charts, reports
from openear.store.queries import Period
from openear.store.schema import alerts as alerts_table
from openear.store.schema import report_archive
from openear.triage.config import Team, TriageConfig

__all__ = ["KINDS", "ArchivedReport", "archive_dir", "due_period", "list_archive", "run_scheduled", "write_archived"]

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


def archive_dir(home: Path) -> Path:
    return home / "reports" / "archive"


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
    return env.get_template("triage_section.html").render(
        audience=team.name,
        management=cfg.management,
        t={"open": len(open_cases), "escalated": by_status.get("escalated", 0), "opened": opened,
           "alerts": len(alert_rows)},
        chart=Markup(chart) if chart else None,  # drawn by openear.charts; labels XML-escaped
        open_cases=open_cases[:40],
        alerts=alert_rows[:40],
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
                    report_archive.c.kind == kind, report_archive.c.audience == team.name,
                    report_archive.c.period_since == since, report_archive.c.format == fmt,
                )
            )
            ids.append(int(conn.execute(insert(report_archive).values(
                kind=kind, audience=team.name, period_since=since, period_until=until, format=fmt,
                path=str(path.relative_to(archive_dir(settings.home))), created_at=t,
            )).inserted_primary_key[0]))
    return ArchivedReport(ids[0] if ids else 0, kind, team.name, period, paths)


def _archived(conn: Connection, kind: str, audience: str, since: datetime) -> bool:
    return conn.execute(
        select(report_archive.c.id).where(
            report_archive.c.kind == kind, report_archive.c.audience == audience, report_archive.c.period_since == since
        )
    ).first() is not None


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
            .order_by(report_archive.c.period_since.desc(), report_archive.c.kind, report_archive.c.audience,
                      report_archive.c.format)
            .limit(limit)
        ).mappings()
    ]

