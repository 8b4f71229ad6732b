"""Triage pages: cases board and case page, who may change a case, alerts and the reports archive."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from casework import OTHER_TEAM, OWN_TEAM, seed
from sqlalchemy import select

from openear import scheduler, triage
from openear.store.queries import Period
from openear.store.schema import posts
from openear.web.auth import ROLES
from openear.web.triage_pages import TRIAGE_ROLES

NON_TRIAGE = [r for r in ROLES if r not in TRIAGE_ROLES]


@pytest.fixture
def case_web(web: Any) -> Any:
    web.t = seed(web)
    web.case_id = web.t.own_case
    return web


def test_board_groups_by_status_and_filters_by_team(case_web: Any) -> None:
    c = case_web.login("analyst")
    html = c.get("/cases").text
    assert "Tips missing from statements" in html and "App crashes" in html
    assert 'id="col-new"' in html and 'id="col-escalated"' in html
    only = c.get("/cases?team=Payments").text
    assert "Tips missing" in only and "App crashes" not in only
    assert case_web.login("viewer").get("/cases").status_code == 403  # viewers: aggregates and reports only


def test_owners_board_shows_only_their_teams_cases(case_web: Any) -> None:
    c = case_web.login("owner")  # belongs to Payments
    html = c.get("/cases").text
    assert "Tips missing from statements" in html and "App crashes" not in html
    assert f'<option value="{OWN_TEAM}"' in html and f'<option value="{OTHER_TEAM}"' not in html
    assert "App crashes" not in c.get("/cases", params={"team": OTHER_TEAM}).text


def test_case_page_shows_history_and_posts_to_post_readers_only(case_web: Any) -> None:
    path = f"/cases/{case_web.case_id}"
    analyst = case_web.login("analyst").get(path).text
    assert "Tips are missing" in analyst and "&lt;script&gt;" in analyst and "<script>alert" not in analyst
    assert "Opened for Payments" in analyst and ("Change status" in analyst) == ("analyst" in TRIAGE_ROLES)
    admin = case_web.login("admin").get(path).text  # a new case: "Move to" offers the lifecycle's next step first
    moves = re.search(r'<select id="status" name="status">(.*?)</select>', admin, re.S).group(1)  # type: ignore[union-attr]
    assert re.findall(r'<option value="(\w+)"', moves) == ["investigating", "escalated", "resolved", "dismissed"]
    owner = case_web.login("owner").get(path).text  # owners see their team's case, not the posts' text
    linked = owner.split('aria-labelledby="posts-title"')[1]  # (its clusters' excerpts, as on the overview: yes)
    assert "Tips are missing" not in linked and "&lt;script&gt;" not in owner and "not the posts" in linked
    assert case_web.login("owner").get("/cases/9999").status_code == 404
    assert case_web.login("viewer").get(path).status_code == 403


def test_case_page_shows_a_title_that_followed_its_alert(case_web: Any) -> None:
    """An alert recounted after more posts reached its bucket retitles its case (triage.follow_alerts)."""
    old = "Spike in Pay and tips: 6 posts on 2026-11-24 (expected 0.6)"
    new = old.replace("6 posts", "19 posts")
    with case_web.store.begin() as conn:
        triage._event(conn, case_web.case_id, datetime(2026, 11, 25), "alert:1", "retitled", {"from": old, "to": new})
    html = case_web.login("analyst").get(f"/cases/{case_web.case_id}").text
    assert f"Title: {old} → {new}" in html


def test_another_teams_case_is_not_found_for_an_owner(case_web: Any) -> None:
    other = case_web.t.other_case
    owner = case_web.login("owner")
    page = owner.get(f"/cases/{other}")
    assert page.status_code == 404 and "App crashes" not in page.text  # as if it did not exist: not 403
    assert owner.get("/cases/99999").status_code == 404
    for action, data in (
        ("status", {"status": "investigating"}),
        ("note", {"text": "mine now"}),
        ("assign", {"assignee": "owner", "priority": "urgent"}),
    ):
        assert owner.post(f"/cases/{other}/{action}", data=data).status_code == 404, action
    with case_web.store.connect() as conn:
        case = triage.get_case(conn, other)
    assert case is not None and case["status"] == "new" and case["priority"] == "normal" and case["assignee"] is None
    assert [e["kind"] for e in case["events"]] == ["created", "linked"]
    own = case_web.t.own_case
    assert owner.post(f"/cases/{own}/status", data={"status": "investigating"}).status_code == 303
    assert owner.post(f"/cases/{own}/note", data={"text": "Payments is on it"}).status_code == 303
    assert "Payments is on it" in owner.get(f"/cases/{own}").text
    assert case_web.login("analyst").get(f"/cases/{other}").status_code == 200  # analysts see every team's


def test_owners_open_cases_for_their_own_teams_only(case_web: Any) -> None:
    owner = case_web.login("owner")
    r = owner.post("/cases", data={"cluster_id": str(case_web.t.cluster), "title": "Tips again"})
    assert r.status_code == 303  # pay_tips routes to Payments
    with case_web.store.connect() as conn:
        crash_cluster = conn.execute(  # p1 (an app crash) routes to Driver app
            select(posts.c.cluster_id).where(posts.c.id == case_web.ids["p1"])
        ).scalar()
        before = len(triage.list_cases(conn))
    refused = owner.post("/cases", data={"cluster_id": str(crash_cluster)})
    assert refused.status_code == 403 and "own teams" in refused.text
    assert owner.post("/cases", data={"post_id": str(case_web.ids["p4"])}).status_code == 403  # posts: readers only
    board = owner.get("/cases").text  # so the owner's form offers no post id field, only the cluster id
    assert 'name="cluster_id"' in board and 'name="post_id"' not in board
    assert 'name="post_id"' in case_web.login("analyst").get("/cases").text
    with case_web.store.connect() as conn:
        assert len(triage.list_cases(conn)) == before  # nothing was opened


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
    assert admin.post(f"/cases/{cid}/assign", data={"assignee": "owner", "priority": "high"}).status_code == 303
    page = f"{str(admin.base_url).rstrip('/')}/cases/{cid}"
    bad = admin.post(f"/cases/{cid}/status", data={"status": "new"}, headers={"Referer": page})
    assert bad.status_code == 400 and "cannot go from investigating to new" in bad.text
    assert f'<a href="/cases/{cid}">Back to the form</a>' in bad.text  # the page whose form was refused
    elsewhere = admin.post(f"/cases/{cid}/status", data={"status": "new"}, headers={"Referer": "https://x.example/a"})
    assert elsewhere.status_code == 400 and "Back to the form" not in elsewhere.text
    r = admin.post("/cases", data={"post_id": str(case_web.ids["p1"]), "priority": "urgent"})
    assert r.status_code == 303 and r.headers["location"].startswith("/cases/")
    html = admin.get(f"/cases/{cid}").text
    for text in ("Asked payments", "new → investigating: on it", "Assigned to owner", "Priority normal → high"):
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
    t = case_web.t
    assert case_web.login("viewer").get("/alerts").status_code == 403
    html = case_web.login("admin").get("/alerts").text
    assert "Spike in App issue: 19 posts on" in html and "&lt;b&gt;late" in html and "<b>late" not in html
    assert "Spike in Pay and tips" in html and "Spike in lang es" in html
    assert f'href="/cases/{t.other_case}"' in html
    assert "1 post, 0 clusters" in html and "2 posts, 0 clusters" in html  # not "1 posts"
    assert re.search(rf'action="/alerts/{t.other_alert}/ack"', html)
    assert case_web.login("admin").post(f"/alerts/{t.other_alert}/ack").status_code == 303
    assert "acknowledged" in case_web.login("admin").get("/alerts").text


def test_nav_and_overview_link_only_to_cases_and_alerts_the_user_may_open(case_web: Any) -> None:
    """A viewer gets no Cases or Alerts link (both answer 403); the overview's spike alerts link an owner to their
    team's case only (another team's answers 404), and an analyst to every case."""
    t = case_web.t
    viewer = case_web.login("viewer").get("/").text
    assert 'href="/cases"' not in viewer and 'href="/alerts"' not in viewer and 'href="/cases/' not in viewer
    owner = case_web.login("owner").get("/").text
    assert 'href="/cases"' in owner and 'href="/alerts"' in owner
    assert f'href="/cases/{t.own_case}"' in owner and f'href="/cases/{t.other_case}"' not in owner
    assert case_web.login("owner").get(f"/cases/{t.other_case}").status_code == 404
    client = case_web.login("analyst")
    with counted_statements(case_web.store.engine) as statements:
        analyst = client.get("/").text
    assert f'href="/cases/{t.own_case}"' in analyst and f'href="/cases/{t.other_case}"' in analyst
    # the spikes' cases are looked up together, not one query per spike
    assert sum(1 for s in statements if s.startswith("SELECT cases.id, cases.team \nFROM cases")) == 1


def test_owners_see_and_acknowledge_only_their_teams_alerts(case_web: Any) -> None:
    t = case_web.t
    owner = case_web.login("owner")
    html = owner.get("/alerts").text
    assert f"/alerts/{t.own_alert}/ack" in html and f'href="/cases/{t.own_case}"' in html
    assert f"/alerts/{t.other_alert}/ack" not in html and f"/alerts/{t.lang_alert}/ack" not in html
    assert "App issue" not in html
    assert owner.post(f"/alerts/{t.other_alert}/ack").status_code == 404
    assert owner.post(f"/alerts/{t.lang_alert}/ack").status_code == 404  # the management group's
    assert owner.post(f"/alerts/{t.own_alert}/ack").status_code == 303
    with case_web.store.connect() as conn:
        from openear import alerts as alerts_mod

        status = {a["id"]: a["status"] for a in alerts_mod.list_alerts(conn)}
    assert status == {t.own_alert: "acknowledged", t.other_alert: "open", t.lang_alert: "open"}


def test_reports_archive_lists_and_serves_pdf_and_html(case_web: Any) -> None:
    pytest.importorskip("weasyprint", exc_type=ImportError)
    cfg = triage.load_triage(case_web.settings)
    now = datetime.now(UTC)
    item = scheduler.write_archived(
        case_web.store,
        case_web.settings,
        cfg,
        kind="weekly",
        team=cfg.team("Payments"),  # type: ignore[arg-type]
        period=Period(now - timedelta(days=7), now),
        now=now,
    )
    c = case_web.login("viewer")
    html = c.get("/reports").text
    assert "Payments" in html and "PDF" in html and "HTML" in html
    seeded = {case_web.t.html_report, case_web.t.pdf_report}  # casework's, with fixed dates: not the one written here
    ids = [(i, fmt) for i, fmt in re.findall(r'href="/reports/(\d+)">(PDF|HTML)', html) if int(i) not in seeded]
    assert sorted(fmt for _, fmt in ids) == ["HTML", "PDF"]
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
    done = scheduler.run_scheduled(
        case_web.store, case_web.settings, cfg, kind="daily", now=now, notifier=box, teams=["Payments", "Management"]
    )
    assert [d.audience for d in done] == ["Payments", "Management"]
    assert done[0].period == Period(datetime(2026, 11, 29, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC))
    assert [m.attachments[0][2] for _t, m in box.sent] == ["application/pdf", "application/pdf"]
    again = scheduler.run_scheduled(
        case_web.store, case_web.settings, cfg, kind="daily", now=now, notifier=box, teams=["Payments", "Management"]
    )
    assert again == []
    assert scheduler.due_period("weekly", now).since.date().isoformat() == "2026-11-23"


# -- the overview's top clusters: ids and "Open a case" for the roles that open cases ------------------------------

CRASH = "The app crashed again at the last drop off and froze, I lost the whole order and could not log back in."
TIPS = "My tips were not paid again this week, the weekly pay statement shows missing tips for every delivery."


@contextlib.contextmanager
def counted_statements(engine: Any) -> Iterator[list[str]]:
    """The SQL statements ``engine`` runs inside the block."""
    from sqlalchemy import event

    statements: list[str] = []

    def listen(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", listen)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", listen)


def _top_clusters(web: Any) -> dict[str, int]:
    """Two more near-duplicate pairs, so the overview lists three clusters: ``own`` (the seeded pay_tips pair,
    linked to the Payments case), ``tips`` (pay_tips: routes to Payments) and ``crash`` (app_issue: Driver app)."""
    ids = web.add_posts(
        [(f"{k}{i}", i, text_, None, "social", "public") for k, text_ in (("c", CRASH), ("t", TIPS)) for i in (1, 2)],
        "more-source",
    )
    with web.store.connect() as conn:
        of = dict(conn.execute(select(posts.c.id, posts.c.cluster_id)).all())
    found = {"own": web.t.cluster, "tips": of[ids["t1"]], "crash": of[ids["c1"]]}
    assert of[ids["t2"]] == found["tips"] and of[ids["c2"]] == found["crash"] and len(set(found.values())) == 3
    return found


def _open_buttons(html: str) -> set[int]:
    """The cluster ids the overview offers an "Open a case" form for."""
    forms = re.findall(r'<form method="post" action="/cases".*?</form>', html, re.S)
    return {int(m) for f in forms if "Open a case" in f for m in re.findall(r'name="cluster_id" value="(\d+)"', f)}


def test_overview_shows_cluster_ids_and_open_case_buttons_to_analysts_not_viewers(case_web: Any) -> None:
    top = _top_clusters(case_web)
    analyst = case_web.login("analyst")
    html = analyst.get("/").text
    viewer = case_web.login("viewer").get("/").text  # viewers open no case: the clusters only, as before
    for cid in top.values():
        assert f"cluster #{cid}" in html and f"cluster #{cid}" not in viewer
    assert "Tips are missing" in viewer and 'action="/cases"' not in viewer and "Open a case" not in viewer
    assert _open_buttons(html) == {top["tips"], top["crash"]}  # every team's; "own" has an open case already
    assert f'href="/cases/{case_web.t.own_case}" class="clusters__action">case #{case_web.t.own_case}<' in html
    r = analyst.post("/cases", data={"cluster_id": str(top["crash"])})  # what the button posts
    assert r.status_code == 303
    case_id = int(r.headers["location"].rsplit("/", 1)[1])
    after = analyst.get("/").text
    assert _open_buttons(after) == {top["tips"]} and f">case #{case_id}<" in after


def test_overview_offers_owners_cases_only_for_their_teams_clusters(case_web: Any) -> None:
    top = _top_clusters(case_web)
    owner = case_web.login("owner")  # Payments
    html = owner.get("/").text
    assert all(f"cluster #{cid}" in html for cid in top.values())
    assert _open_buttons(html) == {top["tips"]}  # the crash cluster routes to Driver app: no 403 to meet
    assert f">case #{case_web.t.own_case}<" in html
    assert owner.post("/cases", data={"cluster_id": str(top["crash"])}).status_code == 403  # as the form would get
    r = owner.post("/cases", data={"cluster_id": str(top["tips"])})
    assert r.status_code == 303 and r.headers["location"].startswith("/cases/")
    case_id = int(r.headers["location"].rsplit("/", 1)[1])
    with case_web.store.connect() as conn:
        case = triage.get_case(conn, case_id, post_limit=0)
    assert case is not None and case["team"] == OWN_TEAM and [c["id"] for c in case["clusters"]] == [top["tips"]]
    assert owner.get(f"/cases/{case_id}").status_code == 200
    after = owner.get("/").text
    assert _open_buttons(after) == set()  # the tips cluster now links its case instead
    assert f'href="/cases/{case_id}" class="clusters__action">case #{case_id}<' in after
    # another team's open case on a cluster: neither a link (it would answer 404) nor a button (403)
    other = case_web.login("analyst").post("/cases", data={"cluster_id": str(top["crash"])})
    other_id = int(other.headers["location"].rsplit("/", 1)[1])
    last = owner.get("/").text
    assert f"/cases/{other_id}" not in last and _open_buttons(last) == set()


def test_overview_cluster_actions_take_two_queries(case_web: Any) -> None:
    """The per-user part of the top clusters is computed per request, in two queries however many clusters."""
    from types import SimpleNamespace

    from openear.web.auth import User
    from openear.web.pages import _cluster_actions

    top = _top_clusters(case_web)
    request: Any = SimpleNamespace(app=case_web.app)
    owner = User(0, "owner", "owner", frozenset({OWN_TEAM}))
    with case_web.store.connect() as conn, counted_statements(case_web.store.engine) as statements:
        got = _cluster_actions(conn, request, owner, list(top.values()))
    assert got == {
        top["own"]: {"case_id": case_web.t.own_case, "can_open": False},
        top["tips"]: {"case_id": None, "can_open": True},
        top["crash"]: {"case_id": None, "can_open": False},
    }
    assert len(statements) <= 2


# -- a case's clusters: a view every triage role may open ---------------------------------------------------------


def _clusters_section(html: str) -> str:
    found = re.search(r'<section class="card" aria-labelledby="clusters-title">(.*?)</section>', html, re.S)
    assert found is not None, "the case page has no Clusters section"
    return found.group(1)


def _case_with_more_clusters(web: Any) -> dict[str, int]:
    """The seeded Payments case follows the tips pair too; the same pair is in an analyst's second Payments case and
    in a Driver app case (hidden from the owner)."""
    top = _top_clusters(web)
    with web.store.begin() as conn:
        triage.link(conn, web.t.own_case, actor="admin", cluster_ids=[top["tips"]])
        also = triage.open_case(conn, title="Tips, again", team=OWN_TEAM, actor="analyst", cluster_ids=[top["own"]])
        hidden = triage.open_case(conn, title="Tips in app", team=OTHER_TEAM, actor="admin", cluster_ids=[top["own"]])
    return {**top, "also": also, "hidden": hidden}


@pytest.mark.parametrize("role", ["owner", "analyst", "admin"])
def test_case_page_links_each_cluster_to_a_view_the_role_may_open(case_web: Any, role: str) -> None:
    """Every cluster of a case links somewhere its viewer may go: its entry on the case page (the first post's
    excerpt and counts, as the overview shows clusters to every role), the representative post for the roles that
    read posts, and the other cases on it that the viewer may open. No link answers 403 or 404."""
    made = _case_with_more_clusters(case_web)
    c = case_web.login(role)
    path = f"/cases/{case_web.case_id}"
    html = c.get(path).text
    facts = re.search(r"<dt>Clusters</dt><dd>(.*?)</dd>", html, re.S).group(1)  # type: ignore[union-attr]
    assert re.findall(r'href="#cluster-(\d+)"', facts) == [str(made["own"]), str(made["tips"])]  # largest first
    section = _clusters_section(html)
    for cid in (made["own"], made["tips"]):
        assert f'<li id="cluster-{cid}">' in section
    assert "Tips are missing from my weekly pay statement" in section and "My tips were not paid" in section
    assert "Pay and tips" in section
    links = set(re.findall(r'href="([^"]+)"', facts + section))
    assert f"/cases/{made['also']}" in links
    assert (f"/cases/{made['hidden']}" in links) == (role != "owner")  # another team's case: 404 for an owner
    readers = {link for link in links if link.startswith("/posts/")}
    assert bool(readers) == (role != "owner")  # owners read no post: no link to one (it would answer 403)
    searches = {link for link in links if link.startswith("/posts?")}  # each cluster's posts: cluster:ID
    wanted = {f"/posts?q=cluster%3A{cid}" for cid in (made["own"], made["tips"])}
    assert searches == (wanted if role != "owner" else set())
    for link in links:
        if link.startswith("#"):
            assert f'id="{link[1:]}"' in html, link
        else:
            assert c.get(link).status_code == 200, link


def test_case_page_cluster_link_lists_exactly_that_clusters_posts(case_web: Any) -> None:
    made = _case_with_more_clusters(case_web)
    c = case_web.login("analyst")
    entry = re.search(rf'<li id="cluster-{made["tips"]}">(.*?)</li>', c.get(f"/cases/{case_web.case_id}").text, re.S)
    link = re.search(r'href="(/posts\?q=cluster%3A\d+)"', entry.group(1)).group(1)  # type: ignore[union-attr]
    listed = re.findall(r'class="result__link" href="/posts/(\d+)"', c.get(link).text)
    with case_web.store.connect() as conn:
        members = conn.execute(
            select(posts.c.id).where(posts.c.cluster_id == made["tips"]).order_by(posts.c.created_at.desc())
        ).scalars()
        assert [int(i) for i in listed] == list(members)


def test_case_page_audits_the_clusters_it_shows(case_web: Any) -> None:
    made = _case_with_more_clusters(case_web)
    case_web.login("owner").get(f"/cases/{case_web.case_id}")
    with case_web.store.connect() as conn:
        from openear import audit

        views = [e for e in audit.entries(conn) if e["action"] == "case.view"]
    import json

    assert views[-1]["actor"] == "owner" and views[-1]["target"] == f"case:{case_web.case_id}"
    assert json.loads(views[-1]["detail"]) == {"posts": 0, "clusters": [made["own"], made["tips"]]}


def test_owners_see_cluster_counts_not_posts_on_their_case_page(case_web: Any, db_url: str) -> None:
    made = _case_with_more_clusters(case_web)
    with case_web.store.connect() as conn:
        sentiments = [
            s or "unknown"
            for s in conn.execute(select(posts.c.sentiment).where(posts.c.cluster_id == made["tips"])).scalars()
        ]
    owner = case_web.login("owner").get(f"/cases/{case_web.case_id}").text
    entry = re.search(rf'<li id="cluster-{made["tips"]}">(.*?)</li>', owner, re.S).group(1)  # type: ignore[union-attr]
    for value in set(sentiments):
        assert f"{sentiments.count(value)} {value}</span>" in entry
    assert "English 2" in entry and "/posts/" not in entry and "author" not in entry.lower()
    assert "Tips are missing" not in owner.split('aria-labelledby="posts-title"')[1]  # still no linked posts' text


def test_cases_of_clusters_answers_many_clusters_in_one_query(case_web: Any, db_url: str) -> None:
    """One helper serves the API's one cluster, the overview's top clusters and a case page: the cases on each
    cluster that the user may see, newest first, in one query."""
    from openear.web.auth import User
    from openear.web.triage_access import cases_of_cluster, cases_of_clusters

    made = _case_with_more_clusters(case_web)
    owner = User(0, "owner", "owner", frozenset({OWN_TEAM}))
    analyst = User(0, "analyst", "analyst", frozenset())
    ids = [made["own"], made["tips"], made["crash"]]
    with case_web.store.connect() as conn:
        with counted_statements(case_web.store.engine) as statements:
            mine = cases_of_clusters(conn, owner, ids)
        every = cases_of_clusters(conn, analyst, ids)
        resolved = cases_of_clusters(conn, analyst, ids, status="resolved")
        single = cases_of_cluster(conn, owner, made["own"])
    assert len(statements) == 1
    own = case_web.t.own_case
    assert {k: [c["id"] for c in v] for k, v in mine.items()} == {
        made["own"]: [made["also"], own],
        made["tips"]: [own],
        made["crash"]: [],
    }
    assert [c["id"] for c in every[made["own"]]] == [made["hidden"], made["also"], own]
    assert set(every[made["own"]][0]) == {"id", "title", "team", "status", "priority"}
    assert resolved == {i: [] for i in ids}
    assert single == mine[made["own"]]


def test_case_page_clusters_take_three_queries(case_web: Any, db_url: str) -> None:
    """A case's cluster summaries take three queries however many clusters it follows (no query per cluster)."""
    from openear.web.auth import User
    from openear.web.triage_access import cluster_summaries

    made = _case_with_more_clusters(case_web)
    owner = User(0, "owner", "owner", frozenset({OWN_TEAM}))
    with case_web.store.connect() as conn, counted_statements(case_web.store.engine) as statements:
        got = cluster_summaries(conn, owner, [made["own"], made["tips"], made["crash"]])
    assert len(statements) <= 3
    assert set(got) == {made["own"], made["tips"], made["crash"]}
    assert all(s["post_id"] is None for s in got.values())  # an owner reads no post
    assert got[made["crash"]]["category"] == "app_issue" and got[made["tips"]]["category"] == "pay_tips"
