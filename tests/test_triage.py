"""Triage: config, routing, every case transition, linked clusters, case rules and each escalation rule, on a
controllable clock. Cases never group by author."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from openear import alerts, audit, triage
from openear.channels import Outbox
from openear.errors import ConfigError
from openear.store.schema import case_posts, deliveries, posts
from openear.triage import CaseError, TriageConfig, parse_triage

T0 = datetime(2026, 11, 20, 12, 0)
COMPLAINT = "The app crashes every time I scan a package at the station and support never answers my tickets"


def cfg(**raw: Any) -> TriageConfig:
    return parse_triage(raw)


def rows(n: int, text: str, start: datetime, *, prefix: str, step_h: float = 1.0) -> list[dict[str, Any]]:
    return [
        {
            "id": f"{prefix}{i}",
            "text": f"{text} {'!' * (i % 3)}",
            "author": f"a{prefix}{i}",
            "created_at": (start + timedelta(hours=step_h * i)).isoformat() + "Z",
        }
        for i in range(n)
    ]


@pytest.fixture
def ws(workspace: Any) -> Any:
    workspace.store.migrate()
    return workspace


def post_ids(ws: Any) -> dict[str, int]:
    with ws.store.connect() as conn:
        return {e: i for i, e in conn.execute(select(posts.c.id, posts.c.external_id))}


# -- config and routing -------------------------------------------------------------------------------------------
def test_teams_default_to_the_taxonomy_owners_plus_management() -> None:
    c = cfg()
    names = [t.name for t in c.teams]
    assert "Driver app" in names and "Payments" in names and names[-1] == "Management"
    assert c.owner_of("app_issue") == "Driver app"
    assert c.management_team.management


def test_explicit_teams_routing_by_query_and_channels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    c = cfg(
        teams=[
            {
                "name": "Comms",
                "email": "comms@example.org",
                "webhook": "http://127.0.0.1:9/h",
                "webhook_secret_env": "HOOK_SECRET",
            },
            {"name": "Board", "management": True},
        ],
        routing=[{"query": "strike OR huelga", "team": "Comms"}, {"category": "app_issue", "team": "Comms"}],
        escalation={"management": "Board", "sla_hours": {"urgent": 1}},
        channels={"smtp": {"host": "127.0.0.1", "port": 2525}, "retries": 1},
    )
    assert c.management == "Board" and c.management_team.name == "Board"
    assert c.team("Comms").webhook.secret == "s3cret"  # type: ignore[union-attr]
    assert "s3cret" not in repr(c)
    assert triage.route_post(c, {"text": "news about a huelga", "category": "media_coverage"}) == "Comms"
    assert triage.route_post(c, {"text": "app broke", "category": "app_issue"}) == "Comms"
    # the taxonomy owner "Payments" is not a declared team here: unrouted posts go to management
    assert triage.route_post(c, {"text": "pay late", "category": "pay_tips"}) == "Board"
    assert c.escalation.sla_hours["urgent"] == 1 and c.channels.smtp.port == 2525  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "raw",
    [
        {"case_rules": [{"name": "x", "group_by": "author"}]},
        {"case_rules": [{"name": "x", "group_by": "author_pseudonym"}]},
        {"routing": [{"team": "Payments", "query": "author:abc"}]},
        {"case_rules": [{"name": "x", "author_pseudonym": "abc"}]},
        {"alerts": {"dimensions": ["author"]}},
    ],
)
def test_rules_that_group_by_author_are_refused(raw: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"author|guardrail"):
        parse_triage(raw)


@pytest.mark.parametrize(
    "raw,where",
    [
        ({"routing": [{"team": "Nobody", "category": "app_issue"}]}, "not a declared team"),
        ({"routing": [{"team": "Payments"}]}, "category or a query"),
        ({"routing": [{"team": "Payments", "query": "(unclosed"}]}, "query"),
        ({"escalation": {"priorities": ["huge"]}}, "priority"),
        ({"alerts": {"sensitivity": "paranoid"}}, "sensitivity"),
        ({"teams": [{"name": "A"}, {"name": "A"}]}, "duplicate"),
    ],
)
def test_bad_config_names_the_key(raw: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError, match=where):
        parse_triage(raw)


# -- lifecycle ---------------------------------------------------------------------------------------------------
ALL_PAIRS = [(a, b) for a, b in itertools.product(triage.STATUSES, repeat=2) if a != b]


def _case_in(conn: Any, status: str) -> int:
    """A case brought to ``status`` through allowed steps."""
    cid = triage.open_case(conn, title="Scanner crashes", team="Driver app", actor="ana", now=T0)
    path = {
        "new": [],
        "investigating": ["investigating"],
        "escalated": ["escalated"],
        "resolved": ["resolved"],
        "dismissed": ["dismissed"],
    }[status]
    for s in path:
        triage.transition(conn, cid, s, actor="ana", now=T0)
    return cid


@pytest.mark.parametrize("src,dst", ALL_PAIRS)
def test_every_transition_is_allowed_or_refused_as_the_lifecycle_says(ws: Any, src: str, dst: str) -> None:
    with ws.store.begin() as conn:
        cid = _case_in(conn, src)
        later = T0 + timedelta(hours=2)
        if dst in triage.TRANSITIONS[src]:
            triage.transition(conn, cid, dst, actor="ben", now=later, note="checked")
            case = triage.get_case(conn, cid)
            assert case["status"] == dst and case["progress_at"] == later  # type: ignore[index]
            assert (case["closed_at"] is not None) == (dst in ("resolved", "dismissed"))  # type: ignore[index]
            last = case["events"][-1]  # type: ignore[index]
            assert last["kind"] == "status" and last["detail"] == {"from": src, "to": dst, "note": "checked"}
            assert last["actor"] == "ben"
        else:
            with pytest.raises(CaseError, match=f"cannot go from {src} to {dst}"):
                triage.transition(conn, cid, dst, actor="ben", now=later)


def _owner(conn: Any, name: str, teams: list[str], *, disabled: bool = False) -> None:
    from openear.web import auth
    from openear.web.membership import set_user_teams

    auth.create_user(conn, name, "correct horse battery staple", "owner")
    set_user_teams(conn, name, teams, teams)
    if disabled:
        auth.set_disabled(conn, name)


def test_history_notes_assignment_priority_and_audit(ws: Any) -> None:
    with ws.store.begin() as conn:
        _owner(conn, "carla", ["Payments"])
        cid = triage.open_case(conn, title="Tips missing", team="Payments", actor="ana", now=T0, priority="low")
        triage.assign(conn, cid, "Carla", actor="ana", now=T0 + timedelta(minutes=1))
        triage.set_priority(conn, cid, "high", actor="ana", now=T0 + timedelta(minutes=2))
        triage.add_note(conn, cid, "Asked payments for the batch ids", actor="carla", now=T0 + timedelta(minutes=3))
        with pytest.raises(CaseError):
            triage.add_note(conn, cid, "  ", actor="carla")
        with pytest.raises(CaseError):
            triage.set_priority(conn, cid, "huge", actor="carla")
        with pytest.raises(CaseError, match="no such case"):
            triage.transition(conn, 999, "resolved", actor="x")
        case = triage.get_case(conn, cid)
        assert [e["kind"] for e in case["events"]] == ["created", "assigned", "priority", "note"]  # type: ignore[index]
        assert case["assignee"] == "carla" and case["priority"] == "high"  # type: ignore[index]
        actions = [e["action"] for e in audit.entries(conn)]
        assert actions[-4:] == ["case.created", "case.assigned", "case.priority", "case.note"]
        assert audit.verify(conn)


def test_the_audit_log_keeps_who_did_what_to_a_case_never_its_words(ws: Any) -> None:
    """A case's title (often a post's opening words) and its notes stay in its history, which the retention purge
    deletes with the case; the audit log, kept for good, records their length only."""
    title, note = "Tips missing on the Tuesday batch again", "Asked payments; the driver quoted their statement"
    with ws.store.begin() as conn:
        cid = triage.open_case(conn, title=title, team="Payments", actor="ana", now=T0)
        triage.add_note(conn, cid, note, actor="ana", now=T0)
        triage.transition(conn, cid, "investigating", actor="ana", now=T0, note=note)
        history = [e["detail"] for e in triage.get_case(conn, cid)["events"]]  # type: ignore[index]
        logged = [e for e in audit.entries(conn) if e["target"] == f"case:{cid}"]
    assert history[0]["title"] == title and history[1]["text"] == note and history[2]["note"] == note
    assert [e["action"] for e in logged] == ["case.created", "case.note", "case.status"]
    details = [json.loads(e["detail"]) for e in logged]
    assert details[0] == {"title_chars": len(title), "team": "Payments", "priority": "normal"}
    assert details[1] == {"text_chars": len(note)} and details[2]["note_chars"] == len(note)
    assert details[2]["from"] == "new" and details[2]["to"] == "investigating"
    assert not any(word in e["detail"] for e in logged for word in ("Tuesday", "statement"))


def test_a_post_deleted_at_its_source_takes_its_words_out_of_case_titles(ws: Any, db_url: str) -> None:
    """A case titled with a deleted post's opening words is retitled, in its history too; a title a person wrote
    stays. On both stores."""
    ws.import_rows([{"id": "d1", "text": "Support closed my ticket without reading it, third time this week",
                     "author": "a1", "created_at": "2026-11-20T10:00:00Z"},
                    {"id": "d2", "text": "Another post that stays", "author": "a2",
                     "created_at": "2026-11-20T11:00:00Z"}])
    ids = post_ids(ws)
    with ws.store.begin() as conn:
        derived = triage.open_case_for(conn, cfg(), actor="ana", now=T0, post_id=ids["d1"])
        named = triage.open_case(conn, title="Ticket closures", team="Payments", actor="ana", now=T0,
                                 post_ids=[ids["d1"], ids["d2"]])
        assert triage.get_case(conn, derived)["title"].startswith("Support closed my ticket")  # type: ignore[index]
    assert ws.store.delete_posts("test-source", ["d1"]) == 1
    with ws.store.connect() as conn:
        gone, kept = triage.get_case(conn, derived), triage.get_case(conn, named)
    assert gone is not None and kept is not None
    assert gone["title"] == f"Case {derived} (the post it was titled from was deleted at its source)"
    assert "ticket" not in json.dumps(gone, default=str).lower()  # history included
    assert kept["title"] == "Ticket closures" and [p["id"] for p in kept["posts"]] == [ids["d2"]]


def test_assignees_are_users_who_work_the_cases_team(ws: Any) -> None:
    """Enabled analysts and admins, and the enabled owners of the case's team; a store without accounts (made
    without ``openear init``) names people freely."""
    with ws.store.begin() as conn:
        _owner(conn, "carla", ["Payments"])
        _owner(conn, "dan", ["Driver app"])
        _owner(conn, "eve", ["Payments"], disabled=True)
        cid = triage.open_case(conn, title="Tips missing", team="Payments", actor="ana", now=T0)
        assert triage.assignable(conn, "Payments") == ["admin", "carla"]
        for name in ("dan", "eve", "zed", ""):
            with pytest.raises(CaseError, match=f"assignee: {name!r} cannot work Payments cases; one of: admin, carla"):
                triage.assign(conn, cid, name, actor="ana")
        triage.assign(conn, cid, "admin", actor="ana")
        assert triage.get_case(conn, cid)["assignee"] == "admin"  # type: ignore[index]
    from openear.store import Store

    bare = Store(f"sqlite:///{ws.home / 'bare.db'}")
    bare.migrate()
    with bare.begin() as conn:
        cid = triage.open_case(conn, title="x", team="Payments", actor="ana", now=T0)
        assert triage.assignable(conn, "Payments") is None
        triage.assign(conn, cid, "anyone", actor="ana")
    bare.close()


def test_one_open_case_per_post_or_cluster_on_the_cli(ws: Any) -> None:
    from typer.testing import CliRunner

    from openear.cli import app

    ws.import_rows(rows(3, COMPLAINT, T0, prefix="c"), name="a.jsonl")
    home = ["--home", str(ws.home)]
    runner = CliRunner()
    with ws.store.connect() as conn:
        cluster = conn.execute(select(posts.c.cluster_id).where(posts.c.cluster_id.is_not(None))).scalar()
    assert runner.invoke(app, [*home, "cases", "open", "--cluster", str(cluster)]).exit_code == 0
    again = runner.invoke(app, [*home, "cases", "open", "--cluster", str(cluster)])
    one_post = runner.invoke(app, [*home, "cases", "open", "--post", "1"])
    for result, what in ((again, f"cluster {cluster}"), (one_post, "post 1")):
        assert result.exit_code == 2 and f"{what} is already in open case 1" in result.output, result.output
    with ws.store.begin() as conn:
        assert len(triage.list_cases(conn)) == 1
        triage.transition(conn, 1, "dismissed", actor="ana")
    assert runner.invoke(app, [*home, "cases", "open", "--post", "1"]).exit_code == 0


def test_cluster_cases_attach_new_posts_and_never_expose_authors(ws: Any) -> None:
    ws.import_rows(rows(3, COMPLAINT, T0, prefix="c"), name="a.jsonl")
    ids = post_ids(ws)
    with ws.store.begin() as conn:
        cluster = conn.execute(select(posts.c.cluster_id).where(posts.c.id == ids["c0"])).scalar_one()
        cid = triage.open_case_for(conn, cfg(), actor="ana", cluster_id=cluster, now=T0)
        case = triage.get_case(conn, cid)
        assert case["post_count"] == 3 and case["team"] == "Driver app"  # type: ignore[index]
        assert "author_pseudonym" not in json.dumps(case, default=str)
    ws.import_rows(rows(2, COMPLAINT, T0 + timedelta(days=1), prefix="d"), name="b.jsonl")  # same cluster, later
    with ws.store.begin() as conn:  # the import's triage pass attached them (openear.triage.feed)
        assert triage.attach_new_posts(conn, now=T0 + timedelta(days=1)) == 0
        assert triage.get_case(conn, cid)["post_count"] == 5  # type: ignore[index]
        triage.transition(conn, cid, "resolved", actor="ana")
    ws.import_rows(rows(1, COMPLAINT, T0 + timedelta(days=2), prefix="e"), name="c.jsonl")
    with ws.store.begin() as conn:  # a resolved case gets no more posts
        assert triage.attach_new_posts(conn) == 0
        with pytest.raises(CaseError):
            triage.open_case_for(conn, cfg(), actor="ana", now=T0)
        with pytest.raises(CaseError, match="no such"):
            triage.open_case_for(conn, cfg(), actor="ana", post_id=10**6)


def test_case_rule_opens_one_case_per_repeated_complaint(ws: Any) -> None:
    ws.import_rows(rows(4, COMPLAINT, T0, prefix="c"), name="a.jsonl")
    ws.import_rows(
        rows(4, "Thank you to the customer who left cookies and a lovely note on the porch today", T0, prefix="p"),
        name="b.jsonl",
    )
    c = cfg(case_rules=[{"name": "complaints", "min_cluster_size": 3}])
    with ws.store.begin() as conn:
        opened = triage.apply_case_rules(conn, c, now=T0)
        assert len(opened) == 1
        case = triage.get_case(conn, opened[0])
        assert case["origin"] == "rule:complaints" and case["post_count"] == 4  # type: ignore[index]
        assert triage.apply_case_rules(conn, c, now=T0) == []  # the cluster already has a case


# -- escalation ---------------------------------------------------------------------------------------------------
def test_priority_rule_escalates_at_once_and_only_once(ws: Any) -> None:
    c = cfg()
    with ws.store.begin() as conn:
        urgent = triage.open_case(conn, title="Injury", team="Safety", actor="ana", now=T0, priority="urgent")
        normal = triage.open_case(conn, title="Late pay", team="Payments", actor="ana", now=T0)
        done = triage.check_escalations(conn, c, now=T0)
        assert [(e.case_id, e.rule) for e in done] == [(urgent, "priority")]
        assert triage.get_case(conn, urgent)["status"] == "escalated"  # type: ignore[index]
        assert triage.get_case(conn, normal)["status"] == "new"  # type: ignore[index]
        assert triage.check_escalations(conn, c, now=T0) == []


def test_sla_rule_escalates_after_the_priority_s_time_without_progress(ws: Any) -> None:
    c = cfg(escalation={"sla_hours": {"normal": 72, "high": 24}})
    with ws.store.begin() as conn:
        cid = triage.open_case(conn, title="Late pay", team="Payments", actor="ana", now=T0)
        high = triage.open_case(
            conn, title="Deactivations", team="Driver support", actor="ana", now=T0, priority="high"
        )
        assert triage.check_escalations(conn, c, now=T0 + timedelta(hours=23)) == []
        triage.add_note(conn, high, "looking", actor="ana", now=T0 + timedelta(hours=23))  # progress resets the clock
        assert triage.check_escalations(conn, c, now=T0 + timedelta(hours=25)) == []
        done = triage.check_escalations(conn, c, now=T0 + timedelta(hours=48))
        assert [(e.case_id, e.rule) for e in done] == [(high, "sla")]
        triage.transition(conn, cid, "investigating", actor="ana", now=T0 + timedelta(hours=50))
        assert triage.check_escalations(conn, c, now=T0 + timedelta(hours=100)) == []
        done = triage.check_escalations(conn, c, now=T0 + timedelta(hours=123))
        assert [(e.case_id, e.rule) for e in done] == [(cid, "sla")] and "SLA 72 h" in done[0].reason


def test_volume_rule_escalates_a_case_whose_posts_grow_fast(ws: Any) -> None:
    # 2 posts in the first window, 6 in the next: growth 3 >= 2 and >= 5 posts
    ws.import_rows(rows(2, COMPLAINT, T0, prefix="old", step_h=5), name="a.jsonl")
    ws.import_rows(rows(6, COMPLAINT, T0 + timedelta(hours=30), prefix="new", step_h=2), name="b.jsonl")
    c = cfg(escalation={"volume_window_hours": 24, "volume_growth": 2, "volume_min_posts": 5})
    ids = post_ids(ws)
    with ws.store.begin() as conn:
        cid = triage.open_case(
            conn, title="Crashes", team="Driver app", actor="ana", now=T0, post_ids=sorted(ids.values())
        )
        # (only this case: the imports' own triage pass may have opened a case for their spike)
        assert [e for e in triage.check_escalations(conn, c, now=T0 + timedelta(hours=24)) if e.case_id == cid] == []
        done = [e for e in triage.check_escalations(conn, c, now=T0 + timedelta(hours=42)) if e.case_id == cid]
        assert [(e.case_id, e.rule) for e in done] == [(cid, "volume")]
        assert done[0].reason.startswith("6 linked posts in the last 24 h")


def test_run_notifies_management_of_escalations_and_records_deliveries(ws: Any) -> None:
    c = cfg()
    with ws.store.begin() as conn:
        cid = triage.open_case(conn, title="Injury", team="Safety", actor="ana", now=T0, priority="urgent")
    box = Outbox()
    result = triage.run(ws.store, c, now=T0, notifier=box)
    assert [e.case_id for e in result.escalations] == [cid]
    team, msg = box.sent[-1]
    assert team.name == "Management" and msg.ref == f"case:{cid}" and "Escalated" in msg.subject
    with ws.store.connect() as conn:
        recorded = conn.execute(select(deliveries.c.ref, deliveries.c.status)).all()
        assert (f"case:{cid}", "sent") in recorded
        kinds = [e["kind"] for e in triage.get_case(conn, cid)["events"]]  # type: ignore[index]
        assert kinds[-1] == "escalated"
    # a second pass escalates nothing new and links nothing twice
    again = triage.run(ws.store, c, now=T0 + timedelta(minutes=5), notifier=box)
    assert again.escalations == [] and again.attached == 0


def test_purge_removes_case_links_with_the_posts(ws: Any) -> None:
    ws.import_rows(rows(3, COMPLAINT, T0, prefix="c"), name="a.jsonl")
    with ws.store.begin() as conn:
        cid = triage.open_case(conn, title="x", team="Driver app", actor="a", post_ids=post_ids(ws).values())
    ws.store.purge(T0 + timedelta(days=1))
    with ws.store.connect() as conn:
        assert conn.execute(select(case_posts).where(case_posts.c.case_id == cid)).all() == []


def test_demo_ends_with_cases_an_escalation_a_spike_alert_and_a_pdf(tmp_path: Any) -> None:
    pytest.importorskip("weasyprint", exc_type=ImportError)
    from openear.demo import run_demo
    from openear.store import Store

    result = run_demo(tmp_path / "demo")
    pdfs = [p for p in result.reports if p.suffix == ".pdf"]
    assert pdfs and pdfs[0].read_bytes().startswith(b"%PDF") and "archive" in str(pdfs[0])
    assert result.triage is not None
    # the imports' own triage passes (openear.triage.feed) opened the cases and raised the alerts
    store = Store(result.init.settings.database_url)
    with store.connect() as conn:
        open_cases = triage.list_cases(conn, status=triage.OPEN_STATUSES)
        assert len([c for c in open_cases if c["origin"].startswith("rule:")]) >= 5
        assert {"Payments", "Driver support", "Driver app"} <= {c["team"] for c in open_cases}
        assert any(c["status"] == "escalated" for c in open_cases)
        assert any(a["dimension"] == "category" and a["value"] == "app_issue" for a in alerts.list_alerts(conn))
    store.close()
