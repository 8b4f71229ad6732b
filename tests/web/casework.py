"""Triage objects for the web tests, outside conftest.py: the ``owner`` user belongs to Payments; one case, one
alert and one report per team side (Payments: the owner's; Driver app: another team's), plus a management alert.
Test modules call :func:`seed` from a fixture of their own."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select

from openear import scheduler, triage
from openear.store.schema import alerts, posts, report_archive
from openear.web.membership import known_teams, set_user_teams

OWN_TEAM = "Payments"
OTHER_TEAM = "Driver app"


@dataclass
class Triage:
    """Ids of what :func:`seed` made."""

    own_case: int  # Payments: the owner's team
    other_case: int  # Driver app
    cluster: int  # the near-duplicate pair p4/p5, linked to own_case
    own_alert: int  # a pay_tips spike (routes to Payments)
    other_alert: int  # an app_issue spike (routes to Driver app)
    lang_alert: int  # a language spike (the management group's)
    html_report: int
    pdf_report: int


def _alert(conn: Any, dimension: str, value: str, days_ago: int, post_ids: list[int], case_id: int | None) -> int:
    now = datetime.now(UTC).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    return int(
        conn.execute(
            insert(alerts).values(
                dimension=dimension,
                value=value,
                granularity="day",
                bucket_start=now - timedelta(days=days_ago),
                observed=19,
                expected=1.5,
                score=9.5,
                status="open",
                created_at=now,
                terms='["tips", "<b>late</b>"]',
                post_ids=str(post_ids),
                cluster_ids="[]",
                case_id=case_id,
            )
        ).inserted_primary_key[0]
    )


def _report(conn: Any, home: Any, audience: str, fmt: str, body: bytes) -> int:
    folder = scheduler.archive_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"test-{audience.lower().replace(' ', '-')}.{fmt}"
    (folder / name).write_bytes(body)
    since = datetime(2026, 11, 23)
    return int(
        conn.execute(
            insert(report_archive).values(
                kind="weekly",
                audience=audience,
                period_since=since,
                period_until=since + timedelta(days=7),
                format=fmt,
                path=name,
                created_at=since + timedelta(days=7),
            )
        ).inserted_primary_key[0]
    )


def seed(web: Any) -> Triage:
    """Make the triage objects of :class:`Triage` in ``web``'s store."""
    ids = web.ids
    with web.store.begin() as conn:
        set_user_teams(conn, "owner", [OWN_TEAM], known_teams(web.settings))
        cluster = conn.execute(select(posts.c.cluster_id).where(posts.c.id == ids["p4"])).scalar_one()
        own = triage.open_case(
            conn,
            title="Tips missing from statements",
            team=OWN_TEAM,
            actor="admin",
            category="pay_tips",
            post_ids=[ids["p3"]],
            cluster_ids=[cluster],
        )
        other = triage.open_case(
            conn, title="App crashes", team=OTHER_TEAM, actor="admin", category="app_issue", post_ids=[ids["p1"]]
        )
        made = Triage(
            own_case=own,
            other_case=other,
            cluster=int(cluster),
            own_alert=_alert(conn, "category", "pay_tips", 1, [ids["p4"], ids["p5"]], own),
            other_alert=_alert(conn, "category", "app_issue", 2, [ids["p1"]], other),
            lang_alert=_alert(conn, "lang", "es", 3, [ids["p2"]], None),
            html_report=_report(conn, web.settings.home, OWN_TEAM, "html", b"<h1>Weekly report: Payments</h1>"),
            pdf_report=_report(conn, web.settings.home, OTHER_TEAM, "pdf", b"%PDF-1.4\n%%EOF\n"),
        )
    return made


def seeded(web: Any) -> Any:
    """``web`` with :func:`seed`'s objects as ``web.t`` (for a module's fixture)."""
    web.t = seed(web)
    return web


def bearer(web: Any, username: str) -> Any:
    """A client that sends a fresh API token of ``username`` (and no session cookie)."""
    from openear.web import tokens

    with web.store.begin() as conn:
        token = tokens.create_token(conn, username, "test")[1]
    c = web.client()
    c.headers["Authorization"] = f"Bearer {token}"
    return c
