"""Triage pages: cases board and case page, who may change a case, alerts and the reports archive."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from openear import scheduler, triage
from openear.store.queries import Period
from openear.web.auth import ROLES
from openear.web.triage_pages import TRIAGE_ROLES

NON_TRIAGE = [r for r in ROLES if r not in TRIAGE_ROLES]


@pytest.fixture
def case_web(web: Any) -> Any:
    web.store.migrate()
    with web.store.begin() as conn:
        web.case_id = triage.open_case(
            conn, title="Tips missing from statements", team="Payments", actor="admin", category="pay_tips",
            post_ids=[web.ids["p4"], web.ids["p5"], web.ids["p3"]],
        )
        triage.open_case(conn, title="App crashes", team="Driver app", actor="admin", category="app_issue")
    return web


def test_board_groups_by_status_and_filters_by_team(case_web: Any) -> None:
    c = case_web.login("owner")
    html = c.get("/cases").text
    assert "Tips missing from statements" in html and "App crashes" in html
    assert 'id="col-new"' in html and 'id="col-escalated"' in html
    only = c.get("/cases?team=Payments").text
    assert "Tips missing" in only and "App crashes" not in only
    assert case_web.login("viewer").get("/cases").status_code == 403  # viewers: aggregates and reports only


def test_case_page_shows_history_and_posts_to_post_readers_only(case_web: Any) -> None:
    path = f"/cases/{case_web.case_id}"
    analyst = case_web.login("analyst").get(path).text
    assert "Tips are missing" in analyst and "&lt;script&gt;" in analyst and "<script>alert" not in analyst
    assert "Opened for Payments" in analyst and ("Change status" in analyst) == ("analyst" in TRIAGE_ROLES)
    owner = case_web.login("owner").get(path).text  # owners see the case, not the posts' text
    assert "Tips are missing" not in owner and "not the posts" in owner
    assert case_web.login("owner").get("/cases/9999").status_code == 404
    assert case_web.login("viewer").get(path).status_code == 403


def test_only_triage_roles_change_cases(case_web: Any) -> None:
    cid = case_web.case_id
    assert "admin" in TRIAGE_ROLES and "viewer" in NON_TRIAGE
    for role in NON_TRIAGE:
        c = case_web.login(role)
        assert c.post(f"/cases/{cid}/status", data={"status": "investigating"}).status_code == 403
        assert c.post(f"/cases/{cid}/note", data={"text": "hi"}).status_code == 403
        assert c.post("/cases", data={"post_id": str(case_web.ids["p1"])}).status_code == 403
    admin = case_web.login("admin")
    assert admin.post(f"/cases/{cid}/status", data={"status": "investigating", "note": "on it"}).status_code == 303
    assert admin.post(f"/cases/{cid}/note", data={"text": "Asked payments"}).status_code == 303
    assert admin.post(f"/cases/{cid}/assign", data={"assignee": "carla", "priority": "high"}).status_code == 303
    bad = admin.post(f"/cases/{cid}/status", data={"status": "new"})
    assert bad.status_code == 400 and "cannot go from investigating to new" in bad.text
    r = admin.post("/cases", data={"post_id": str(case_web.ids["p1"]), "priority": "urgent"})
    assert r.status_code == 303 and r.headers["location"].startswith("/cases/")
    html = admin.get(f"/cases/{cid}").text
    for text in ("Asked payments", "new → investigating: on it", "Assigned to carla", "Priority normal → high"):
        assert text in html, text
    with case_web.store.connect() as conn:
        from openear import audit

        actions = [e["action"] for e in audit.entries(conn)]
    assert "case.status" in actions and "case.note" in actions


def test_cross_site_post_is_refused(case_web: Any) -> None:
    c = case_web.login("admin")
    r = c.post(f"/cases/{case_web.case_id}/note", data={"text": "x"}, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403


def test_alerts_page_lists_and_acknowledges(case_web: Any) -> None:
    from sqlalchemy import insert

    from openear.store.schema import alerts

    with case_web.store.begin() as conn:
        conn.execute(insert(alerts).values(
            dimension="category", value="app_issue", granularity="day", bucket_start=datetime(2026, 11, 24),
            observed=19, expected=1.4, score=11.5, status="open", created_at=datetime(2026, 11, 29),
            terms='["crash", "<b>update</b>"]', post_ids="[1, 2]", cluster_ids="[]", case_id=case_web.case_id,
        ))
    assert "No spike alerts" not in case_web.login("viewer").get("/alerts").text
    html = case_web.login("admin").get("/alerts").text
    assert "Spike in App issue: 19 posts on 2026-11-24" in html and "&lt;b&gt;update" in html
    assert f'href="/cases/{case_web.case_id}"' in html
    aid = re.search(r'action="/alerts/(\d+)/ack"', html).group(1)  # type: ignore[union-attr]
    assert case_web.login("viewer").post(f"/alerts/{aid}/ack").status_code == 403
    assert case_web.login("admin").post(f"/alerts/{aid}/ack").status_code == 303
    assert "acknowledged" in case_web.login("admin").get("/alerts").text


def test_reports_archive_lists_and_serves_pdf_and_html(case_web: Any) -> None:
    pytest.importorskip("weasyprint", exc_type=ImportError)
    cfg = triage.load_triage(case_web.settings)
    now = datetime.now(UTC)
    item = scheduler.write_archived(
        case_web.store, case_web.settings, cfg, kind="weekly", team=cfg.team("Payments"),  # type: ignore[arg-type]
        period=Period(now - timedelta(days=7), now), now=now,
    )
    c = case_web.login("viewer")
    html = c.get("/reports").text
    assert "Payments" in html and "PDF" in html and "HTML" in html
    ids = re.findall(r'href="/reports/(\d+)">(PDF|HTML)', html)
    got = {fmt: c.get(f"/reports/{i}") for i, fmt in ids}
    assert got["PDF"].content.startswith(b"%PDF") and got["PDF"].headers["content-type"] == "application/pdf"
    page = got["HTML"].text
    assert "Cases and spike alerts: Payments" in page and "Tips missing from statements" in page
    assert "App crashes" not in page  # another team's case
    assert "script-src" not in got["HTML"].headers["content-security-policy"]
    assert c.get("/reports/99999").status_code == 404
    assert item.paths["pdf"].exists()


def test_scheduled_reports_go_to_every_audience_once(case_web: Any) -> None:
    pytest.importorskip("weasyprint", exc_type=ImportError)
    from openear.channels import Outbox

    cfg = triage.load_triage(case_web.settings)
    box = Outbox()
    now = datetime(2026, 11, 30, 6, tzinfo=UTC)
    done = scheduler.run_scheduled(case_web.store, case_web.settings, cfg, kind="daily", now=now, notifier=box,
                                   teams=["Payments", "Management"])
    assert [d.audience for d in done] == ["Payments", "Management"]
    assert done[0].period == Period(datetime(2026, 11, 29, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC))
    assert [m.attachments[0][2] for _t, m in box.sent] == ["application/pdf", "application/pdf"]
    again = scheduler.run_scheduled(case_web.store, case_web.settings, cfg, kind="daily", now=now, notifier=box,
                                    teams=["Payments", "Management"])
    assert again == []
    assert scheduler.due_period("weekly", now).since.date().isoformat() == "2026-11-23"
