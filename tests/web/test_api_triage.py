"""The REST API for triage objects: cases (list, one, flag, change, notes), alerts, the reports archive, clusters;
an owner reaches only their teams' objects (another team's case is 404, as an unknown one is)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from casework import OTHER_TEAM, OWN_TEAM, bearer, seeded
from sqlalchemy import func, select

from openear import audit, triage
from openear.store.schema import audit_log, case_events, cases


@pytest.fixture
def tw(web: Any) -> Any:
    return seeded(web)


def _case(web: Any, case_id: int) -> dict[str, Any]:
    with web.store.connect() as conn:
        found = triage.get_case(conn, case_id)
    assert found is not None
    return found


def _audit_count(web: Any) -> int:
    with web.store.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(audit_log)).scalar_one())


# -- membership on the user -------------------------------------------------------------------------------------


def test_an_owners_teams_come_with_the_session_and_the_token(tw: Any) -> None:
    assert tw.login("owner").get("/api/v1/me").json()["teams"] == [OWN_TEAM]
    assert bearer(tw, "owner").get("/api/v1/me").json()["teams"] == [OWN_TEAM]
    assert bearer(tw, "analyst").get("/api/v1/me").json()["teams"] == []
    users = {u["username"]: u["teams"] for u in bearer(tw, "admin").get("/api/v1/users").json()}
    assert users["owner"] == [OWN_TEAM] and users["analyst"] == []


# -- cases ------------------------------------------------------------------------------------------------------


def test_cases_list_filters_and_pages(tw: Any, db_url: str) -> None:
    c = bearer(tw, "analyst")
    everything = c.get("/api/v1/cases").json()
    assert everything["total"] == 2 and [x["id"] for x in everything["items"]] == [tw.t.other_case, tw.t.own_case]
    own = next(x for x in everything["items"] if x["id"] == tw.t.own_case)
    assert own["team"] == OWN_TEAM and own["posts"] == 3 and own["clusters"] == 1 and own["status"] == "new"
    assert [x["id"] for x in c.get("/api/v1/cases", params={"team": OTHER_TEAM}).json()["items"]] == [tw.t.other_case]
    assert c.get("/api/v1/cases", params={"status": "resolved"}).json()["total"] == 0
    assert c.get("/api/v1/cases", params={"priority": "normal"}).json()["total"] == 2
    page = c.get("/api/v1/cases", params={"limit": 1, "offset": 1}).json()
    assert page["total"] == 2 and [x["id"] for x in page["items"]] == [tw.t.own_case]
    assert c.get("/api/v1/cases", params={"status": "closed"}).status_code == 422
    assert c.get("/api/v1/cases", params={"author": "x"}).json()["total"] == 2  # no author filter: ignored


def test_a_case_has_history_notes_clusters_and_pseudonymous_posts(tw: Any) -> None:
    c = bearer(tw, "analyst")
    r = c.get(f"/api/v1/cases/{tw.t.own_case}").json()
    assert r["title"] == "Tips missing from statements" and r["posts"] == 3
    assert [cl["id"] for cl in r["clusters_linked"]] == [tw.t.cluster]
    assert {p["id"] for p in r["linked_posts"]} == {tw.ids["p3"], tw.ids["p4"], tw.ids["p5"]}
    assert not [k for p in r["linked_posts"] for k in p if "author" in k or "pseudonym" in k]
    assert [e["kind"] for e in r["history"]] == ["created", "linked"]
    assert r["notes"] == [] and set(r["next_statuses"]) == {"investigating", "escalated", "resolved", "dismissed"}
    assert c.get(f"/api/v1/cases/{tw.t.own_case}", params={"post_limit": 1}).json()["linked_posts"].__len__() == 1
    owner = bearer(tw, "owner").get(f"/api/v1/cases/{tw.t.own_case}").json()  # owners: the case, not the posts
    assert owner["posts"] == 3 and owner["linked_posts"] == [] and owner["clusters_linked"]
    assert c.get("/api/v1/cases/99999").status_code == 404
    assert bearer(tw, "viewer").get(f"/api/v1/cases/{tw.t.own_case}").status_code == 403


def test_a_cases_clusters_carry_their_summary_and_only_readers_get_the_post_id(tw: Any) -> None:
    """As the case page: each linked cluster's excerpt, category, sentiment and language counts for every triage
    role; the representative post's id only for roles that may read posts (owners get null, never a 403 link)."""
    analyst = bearer(tw, "analyst").get(f"/api/v1/cases/{tw.t.own_case}").json()["clusters_linked"]
    owner = bearer(tw, "owner").get(f"/api/v1/cases/{tw.t.own_case}").json()["clusters_linked"]
    (a,), (o,) = analyst, owner
    assert a["id"] == o["id"] == tw.t.cluster
    assert a["excerpt"] and a["excerpt"] == o["excerpt"] and a["category"] == o["category"] is not None
    assert sum(a["sentiment"].values()) == sum(a["lang"].values()) == a["size"] >= 1
    assert a["representative_post_id"] in set(tw.ids.values()) and o["representative_post_id"] is None
    assert not [k for k in a if "author" in k or "pseudonym" in k]
    with tw.store.connect() as conn:
        views = [e for e in audit.entries(conn) if e["action"] == "case.view"]
    assert json.loads(views[-1]["detail"])["clusters"] == [tw.t.cluster]


def test_patch_walks_the_lifecycle_and_refuses_a_bad_transition_with_409(tw: Any, db_url: str) -> None:
    c = bearer(tw, "analyst")
    url = f"/api/v1/cases/{tw.t.own_case}"
    r = c.patch(url, json={"status": "investigating", "note": "looking", "assignee": "Owner", "priority": "high"})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["assignee"], r.json()["priority"]) == ("investigating", "owner", "high")
    bad = c.patch(url, json={"status": "new"})
    assert bad.status_code == 409
    assert bad.json()["error"].startswith(f"case {tw.t.own_case}: cannot go from investigating to new")
    assert "escalated" in bad.json()["error"]  # says what is allowed
    assert c.patch(url, json={"status": "investigating"}).status_code == 200  # already there: no change
    assert c.patch(url, json={"assignee": None}).json()["assignee"] is None
    assert c.patch(url, json={"priority": "whenever"}).status_code == 422
    assert c.patch(url, json={"status": "resolved"}).json()["status"] == "resolved"
    assert c.patch(url, json={"status": "escalated"}).status_code == 409  # resolved -> only investigating
    case = _case(tw, tw.t.own_case)
    kinds = [(e["kind"], e["detail"].get("to")) for e in case["events"]]
    assert kinds == [
        ("created", None),
        ("linked", None),
        ("status", "investigating"),
        ("assigned", "owner"),
        ("priority", "high"),
        ("assigned", None),
        ("status", "resolved"),
    ]
    assert case["events"][2]["detail"]["note"] == "looking" and case["events"][2]["actor"] == "analyst"
    with tw.store.connect() as conn:
        actions = [e["action"] for e in audit.entries(conn) if e["target"] == f"case:{tw.t.own_case}"]
        assert audit.verify(conn)
    assert actions.count("case.status") == 2 and actions.count("case.assigned") == 2


def test_a_case_is_assigned_only_to_a_user_who_works_its_team(tw: Any) -> None:
    """Analysts and admins work every team's cases, owners their own teams'; viewers, disabled accounts and
    unknown names are refused with the names that would do, and nothing changes. The page offers those names."""
    from openear.web import auth

    with tw.store.begin() as conn:
        auth.create_user(conn, "gone", "correct horse battery staple", "analyst")
        auth.set_disabled(conn, "gone")
    c = bearer(tw, "admin")
    own, other = f"/api/v1/cases/{tw.t.own_case}", f"/api/v1/cases/{tw.t.other_case}"
    for url, name in ((own, "carla"), (own, "viewer"), (own, "gone"), (other, "owner")):
        r = c.patch(url, json={"assignee": name})
        assert r.status_code == 400 and f"assignee: {name!r} cannot work" in r.json()["error"], (name, r.text)
        assert "one of: admin, analyst" in r.json()["error"] and "gone" not in r.json()["error"].split(":")[-1]
    assert _case(tw, tw.t.other_case)["assignee"] is None
    assert c.patch(other, json={"assignee": "Analyst"}).json()["assignee"] == "analyst"
    assert c.patch(own, json={"assignee": "owner"}).json()["assignee"] == "owner"
    page = tw.login("owner").get(f"/cases/{tw.t.own_case}").text
    assert '<datalist id="assignees">' in page
    offered = page.split('<datalist id="assignees">')[1].split("</datalist>")[0]
    assert offered == "".join(f'<option value="{n}">' for n in ("admin", "analyst", "owner"))


def test_notes_are_added_and_listed(tw: Any) -> None:
    c = bearer(tw, "owner")
    url = f"/api/v1/cases/{tw.t.own_case}/notes"
    r = c.post(url, json={"text": "Payments confirmed the bug <script>alert(1)</script>"})
    assert r.status_code == 201 and r.json()["actor"] == "owner"
    assert c.post(url, json={"text": ""}).status_code == 422
    assert c.post(url, json={"text": "   "}).status_code == 400
    notes = c.get(f"/api/v1/cases/{tw.t.own_case}").json()["notes"]
    assert [n["text"] for n in notes] == ["Payments confirmed the bug <script>alert(1)</script>"]


def test_flagging_a_post_or_a_cluster_opens_a_routed_case(tw: Any) -> None:
    c = bearer(tw, "analyst")
    r = c.post("/api/v1/cases", json={"post_id": tw.ids["p2"], "priority": "urgent"})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["team"] == OWN_TEAM and made["priority"] == "urgent" and made["posts"] == 1  # a pay post
    assert made["origin"] == "user:analyst" and made["title"].startswith("El pago")
    _close(tw, tw.t.own_case)  # it links the cluster: one open case per cluster
    r = c.post("/api/v1/cases", json={"cluster_id": tw.t.cluster, "title": "Tips", "team": "Comms"})
    assert r.status_code == 201 and r.json()["team"] == "Comms" and r.json()["posts"] == 2
    for body, words in (
        ({}, "either a post or a cluster"),
        ({"post_id": tw.ids["p1"], "cluster_id": tw.t.cluster}, "either a post or a cluster"),
        ({"post_id": 999999}, "no such post"),
        ({"cluster_id": 999999}, "no such cluster"),
        ({"post_id": tw.ids["p1"], "team": "Nobody"}, "not a team"),
    ):
        bad = c.post("/api/v1/cases", json=body)
        assert bad.status_code == 400 and words in bad.json()["error"], (body, bad.text)
    assert bearer(tw, "viewer").post("/api/v1/cases", json={"cluster_id": tw.t.cluster}).status_code == 403


def _close(web: Any, case_id: int) -> None:
    with web.store.begin() as conn:
        triage.transition(conn, case_id, "resolved", actor="admin")


def test_one_open_case_per_post_or_cluster(tw: Any, db_url: str) -> None:
    """Flagging what an open case links already is a 409 naming that case (the page shows it), and opens nothing;
    an owner is not told the id of another team's case; once the case is closed, a new one may be opened."""
    c, own = bearer(tw, "analyst"), tw.t.own_case
    with tw.store.connect() as conn:
        before = conn.execute(select(func.count()).select_from(cases)).scalar_one()
    for body in ({"cluster_id": tw.t.cluster}, {"post_id": tw.ids["p3"]}, {"post_id": tw.ids["p5"], "team": "Comms"}):
        r = c.post("/api/v1/cases", json=body)
        assert r.status_code == 409, (body, r.text)
        assert r.json()["case_id"] == own and f"open case {own}" in r.json()["error"]
    page = tw.login("analyst").post("/cases", data={"cluster_id": str(tw.t.cluster)}, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == f"/cases/{own}"
    with tw.store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(cases)).scalar_one() == before
    _close(tw, own)
    with tw.store.begin() as conn:  # now another team's open case links the cluster, which routes to Payments
        hidden = triage.open_case(conn, title="x", team=OTHER_TEAM, actor="admin", cluster_ids=[tw.t.cluster])
    r = bearer(tw, "owner").post("/api/v1/cases", json={"cluster_id": tw.t.cluster})
    assert r.status_code == 409 and r.json()["case_id"] is None and f"case {hidden}" not in r.json()["error"]
    assert "a team you do not work for" in r.json()["error"]
    _close(tw, hidden)
    r = bearer(tw, "owner").post("/api/v1/cases", json={"cluster_id": tw.t.cluster})
    assert r.status_code == 201 and r.json()["team"] == OWN_TEAM


def test_owners_flag_only_clusters_of_their_own_teams(tw: Any, db_url: str) -> None:
    c = bearer(tw, "owner")
    _close(tw, tw.t.own_case)  # it links the cluster: one open case per cluster
    with tw.store.connect() as conn:
        before = conn.execute(select(func.count()).select_from(cases)).scalar_one()
        crash = conn.execute(select(cases.c.id)).first()
    assert crash is not None
    other = c.post("/api/v1/cases", json={"cluster_id": tw.t.cluster, "team": OTHER_TEAM})
    assert other.status_code == 403 and "own teams" in other.json()["error"]
    post = c.post("/api/v1/cases", json={"post_id": tw.ids["p4"]})
    assert post.status_code == 403 and "reads posts" in post.json()["error"]
    with tw.store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(cases)).scalar_one() == before  # rolled back
    mine = c.post("/api/v1/cases", json={"cluster_id": tw.t.cluster})
    assert mine.status_code == 201 and mine.json()["team"] == OWN_TEAM


def test_an_owner_never_reaches_another_teams_case(tw: Any, db_url: str) -> None:
    """Owner of Payments, case of Driver app: not listed, 404 like a missing case (page and API), unchanged."""
    c = bearer(tw, "owner")
    other, own = tw.t.other_case, tw.t.own_case
    listed = c.get("/api/v1/cases").json()
    assert listed["total"] == 1 and [x["id"] for x in listed["items"]] == [own]
    assert c.get("/api/v1/cases", params={"team": OTHER_TEAM}).json() == {
        "total": 0,
        "limit": 50,
        "offset": 0,
        "items": [],
    }
    hidden, missing = c.get(f"/api/v1/cases/{other}"), c.get("/api/v1/cases/99999")
    assert hidden.status_code == missing.status_code == 404 and hidden.json() == missing.json()
    with tw.store.connect() as conn:
        events_before = conn.execute(select(func.count()).select_from(case_events)).scalar_one()
    assert c.patch(f"/api/v1/cases/{other}", json={"status": "dismissed"}).status_code == 404
    assert c.patch(f"/api/v1/cases/{other}", json={"assignee": "owner"}).status_code == 404
    assert c.post(f"/api/v1/cases/{other}/notes", json={"text": "mine"}).status_code == 404
    with tw.store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(case_events)).scalar_one() == events_before
    case = _case(tw, other)
    assert (case["status"], case["assignee"]) == ("new", None)
    page = tw.login("owner").get(f"/cases/{other}")
    assert page.status_code == 404 and "App crashes" not in page.text
    assert c.patch(f"/api/v1/cases/{own}", json={"status": "investigating"}).status_code == 200
    cluster = c.get(f"/api/v1/clusters/{tw.t.cluster}").json()
    assert [x["id"] for x in cluster["cases"]] == [own]
    for role in ("analyst", "admin"):
        assert bearer(tw, role).get(f"/api/v1/cases/{other}").status_code == 200


def test_an_owner_without_a_team_sees_no_case(tw: Any) -> None:
    from openear.web.auth import create_user

    with tw.store.begin() as conn:
        create_user(conn, "lonely", tw.password, "owner")
    c = bearer(tw, "lonely")
    assert c.get("/api/v1/cases").json()["total"] == 0
    assert c.get(f"/api/v1/cases/{tw.t.own_case}").status_code == 404
    assert c.get("/api/v1/alerts").json()["total"] == 0


def test_cross_site_changes_with_a_cookie_are_refused_and_tokens_need_no_origin(tw: Any) -> None:
    url = f"/api/v1/cases/{tw.t.own_case}"
    c = tw.login("analyst")
    evil = {"Origin": "https://evil.example"}
    assert c.patch(url, json={"priority": "low"}, headers=evil).status_code == 403
    assert c.post(f"{url}/notes", json={"text": "x"}, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert c.post("/api/v1/cases", json={"cluster_id": tw.t.cluster}, headers=evil).status_code == 403
    assert _case(tw, tw.t.own_case)["priority"] == "normal"
    assert c.patch(url, json={"priority": "low"}, headers={"Origin": "http://testserver"}).status_code == 200
    assert bearer(tw, "analyst").patch(url, json={"priority": "high"}).status_code == 200  # no Origin: not a browser


# -- alerts -----------------------------------------------------------------------------------------------------


def test_alerts_by_team(tw: Any) -> None:
    t = tw.t
    everything = bearer(tw, "analyst").get("/api/v1/alerts").json()
    assert everything["total"] == 3 and [a["id"] for a in everything["items"]] == [
        t.own_alert,
        t.other_alert,
        t.lang_alert,
    ]
    teams = {a["id"]: a["team"] for a in everything["items"]}
    assert teams == {t.own_alert: OWN_TEAM, t.other_alert: OTHER_TEAM, t.lang_alert: "Management"}
    first = everything["items"][0]
    assert first["post_ids"] == [tw.ids["p4"], tw.ids["p5"]] and first["terms"] == ["tips", "<b>late</b>"]
    assert first["case_id"] == t.own_case and first["description"].startswith("Spike in Pay and tips: 19 posts")
    owner = bearer(tw, "owner").get("/api/v1/alerts").json()
    assert owner["total"] == 1 and owner["items"][0]["id"] == t.own_alert
    assert owner["items"][0]["post_ids"] == []  # owners do not read posts
    paged = bearer(tw, "admin").get("/api/v1/alerts", params={"limit": 1, "offset": 2}).json()
    assert paged["total"] == 3 and [a["id"] for a in paged["items"]] == [t.lang_alert]
    assert bearer(tw, "admin").get("/api/v1/alerts", params={"status": "closed"}).json()["total"] == 0
    assert bearer(tw, "viewer").get("/api/v1/alerts").status_code == 403


def test_one_alert_and_its_acknowledgement_by_team(tw: Any, db_url: str) -> None:
    t = tw.t
    owner = bearer(tw, "owner")
    one = owner.get(f"/api/v1/alerts/{t.own_alert}").json()
    assert one["team"] == OWN_TEAM and one["case_id"] == t.own_case and one["status"] == "open"
    for other in (t.other_alert, t.lang_alert, 999999):
        assert owner.get(f"/api/v1/alerts/{other}").status_code == 404
        assert owner.patch(f"/api/v1/alerts/{other}", json={"status": "closed"}).status_code == 404
    r = owner.patch(f"/api/v1/alerts/{t.own_alert}", json={"status": "acknowledged"})
    assert r.status_code == 200 and r.json()["status"] == "acknowledged"
    assert owner.patch(f"/api/v1/alerts/{t.own_alert}", json={"status": "gone"}).status_code == 422
    statuses = {a["id"]: a["status"] for a in bearer(tw, "admin").get("/api/v1/alerts").json()["items"]}
    assert statuses == {t.own_alert: "acknowledged", t.other_alert: "open", t.lang_alert: "open"}
    with tw.store.connect() as conn:
        acks = [e for e in audit.entries(conn) if e["action"] == "alert.acknowledged"]
    assert [(e["actor"], e["target"]) for e in acks] == [("owner", f"alert:{t.own_alert}")]
    other_case = bearer(tw, "admin").get(f"/api/v1/alerts/{t.other_alert}").json()
    assert other_case["case_id"] == t.other_case and other_case["team"] == OTHER_TEAM


# -- reports ----------------------------------------------------------------------------------------------------


def test_reports_archive_lists_and_downloads_with_the_right_type(tw: Any) -> None:
    c = bearer(tw, "viewer")
    listing = c.get("/api/v1/reports").json()
    assert listing["total"] == 2
    by_id = {r["id"]: r for r in listing["items"]}
    assert by_id[tw.t.html_report]["format"] == "html" and by_id[tw.t.pdf_report]["audience"] == OTHER_TEAM
    html = c.get(by_id[tw.t.html_report]["url"])
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert "Weekly report: Payments" in html.text and "script-src" not in html.headers["content-security-policy"]
    pdf = c.get(f"/api/v1/reports/{tw.t.pdf_report}")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert c.get("/api/v1/reports/99999").status_code == 404
    assert c.get("/api/v1/reports", params={"offset": 1, "limit": 1}).json()["items"].__len__() == 1


# -- clusters ---------------------------------------------------------------------------------------------------


def test_clusters_are_paged_and_one_cluster_names_its_visible_cases(tw: Any) -> None:
    page = bearer(tw, "viewer").get("/api/v1/clusters", params={"limit": 1}).json()
    assert page["total"] >= 1 and page["items"][0]["id"] == tw.t.cluster and page["items"][0]["post_id"] is None
    assert bearer(tw, "viewer").get("/api/v1/clusters", params={"offset": 50}).json()["items"] == []
    one = bearer(tw, "analyst").get(f"/api/v1/clusters/{tw.t.cluster}").json()
    assert one["size"] == 2 and one["post_id"] == tw.ids["p4"] and one["excerpt"].startswith("Tips are missing")
    assert one["category"] == "pay_tips" and [x["id"] for x in one["cases"]] == [tw.t.own_case]
    viewer = bearer(tw, "viewer").get(f"/api/v1/clusters/{tw.t.cluster}").json()
    assert viewer["cases"] == [] and viewer["post_id"] is None  # viewers: aggregates only
    assert bearer(tw, "viewer").get("/api/v1/clusters/999999").status_code == 404


# -- the document -----------------------------------------------------------------------------------------------


def test_the_openapi_document_describes_the_triage_endpoints(tw: Any) -> None:
    doc = tw.login("viewer").get("/openapi.json").json()
    for path in (
        "/api/v1/cases",
        "/api/v1/cases/{case_id}",
        "/api/v1/cases/{case_id}/notes",
        "/api/v1/alerts",
        "/api/v1/reports",
        "/api/v1/reports/{report_id}",
        "/api/v1/clusters/{cluster_id}",
    ):
        assert path in doc["paths"], path
    assert set(doc["paths"]["/api/v1/cases/{case_id}"]) == {"get", "patch"}
    assert "409" in doc["paths"]["/api/v1/cases/{case_id}"]["patch"]["responses"]
    assert "application/pdf" in doc["paths"]["/api/v1/reports/{report_id}"]["get"]["responses"]["200"]["content"]
    schemas = doc["components"]["schemas"]
    fields = [f for k in ("CasePostOut", "CaseDetail", "AlertOut") for f in schemas[k]["properties"]]
    assert "text" in fields and not [f for f in fields if "author" in f or "pseudonym" in f]
    params = [p["name"] for ops in doc["paths"].values() for op in ops.values() for p in op.get("parameters", [])]
    assert not [p for p in params if "author" in p.lower() or "pseudonym" in p.lower()]
