"""Bad input to the REST API, as an integrator sends it: each gets a 4xx in the documented shape,
``{"error": ...}`` naming the field (422 adds ``detail``), never a 500, and never passes silently as "nothing to
change" (docs/api.md, "Rules every endpoint follows")."""

from __future__ import annotations

import json
from typing import Any

import pytest
from casework import bearer, seeded
from sqlalchemy import func, select

from openear import audit, triage
from openear.store.schema import case_events, saved_searches


@pytest.fixture
def tw(web: Any) -> Any:
    return seeded(web)


def _history(web: Any, case_id: int) -> int:
    with web.store.connect() as conn:
        stmt = select(func.count()).select_from(case_events).where(case_events.c.case_id == case_id)
        return int(conn.execute(stmt).scalar_one())


def _invalid(r: Any, field: str) -> str:
    """A 422 in the documented shape whose ``error`` starts with the field's name; the message."""
    assert r.status_code == 422, r.text
    body = r.json()
    assert set(body) == {"error", "detail"} and isinstance(body["detail"], list) and body["detail"], body
    assert body["error"].startswith(f"{field}: "), body["error"]
    return str(body["error"])


def test_a_misspelt_or_null_field_in_a_case_change_is_refused_not_ignored(tw: Any) -> None:
    c = bearer(tw, "analyst")
    url = f"/api/v1/cases/{tw.t.own_case}"
    events = _history(tw, tw.t.own_case)
    assert "unknown field" in _invalid(c.patch(url, json={"stauts": "resolved"}), "stauts")
    _invalid(c.patch(url, json={"priority": None}), "priority")  # only the assignee can be cleared with null
    _invalid(c.patch(url, json={"status": None}), "status")
    _invalid(c.post(f"{url}/notes", json={"text": "ok", "private": True}), "private")
    _invalid(c.post("/api/v1/cases", json={"cluster_id": tw.t.cluster, "teem": "Payments"}), "teem")
    _invalid(c.patch(f"/api/v1/alerts/{tw.t.own_alert}", json={"status": "closed", "note": "x"}), "note")
    assert _history(tw, tw.t.own_case) == events  # nothing changed, nothing recorded
    assert c.patch(url, json={"priority": "urgent"}).json()["priority"] == "urgent"  # the right spelling works


def test_wrong_json_types_are_not_coerced(tw: Any) -> None:
    c = bearer(tw, "analyst")
    with tw.store.connect() as conn:
        cases_before = len(triage.list_cases(conn))
    _invalid(c.post("/api/v1/cases", json={"post_id": True}), "post_id")  # not post 1
    _invalid(c.post("/api/v1/cases", json={"cluster_id": str(tw.t.cluster)}), "cluster_id")
    _invalid(c.put(f"/api/v1/posts/{tw.ids['p1']}/labels/sentiment", json={"value": 5}), "value")
    with tw.store.connect() as conn:
        assert len(triage.list_cases(conn)) == cases_before


def test_a_body_that_is_not_a_json_object_is_named(tw: Any) -> None:
    c = bearer(tw, "analyst")
    url = f"/api/v1/cases/{tw.t.own_case}"
    headers = {"Content-Type": "application/json"}
    assert "not valid JSON" in _invalid(c.patch(url, content=b'{"status": "investigating",', headers=headers), "body")
    _invalid(c.patch(url, content=b"[1]", headers=headers), "body")
    _invalid(c.patch(url, headers=headers), "body")


def test_query_parameter_errors_name_each_field(tw: Any) -> None:
    c = bearer(tw, "analyst")
    r = c.get("/api/v1/posts", params={"limit": 501, "offset": -1})
    msg = _invalid(r, "limit")
    assert "; offset: " in msg and [d["loc"] for d in r.json()["detail"]] == [["query", "limit"], ["query", "offset"]]
    _invalid(c.get("/api/v1/clusters", params={"limit": 101}), "limit")
    _invalid(c.get("/api/v1/posts", params={"since": "2026-13-01"}), "since")
    _invalid(c.get("/api/v1/cases/abc"), "case_id")
    _invalid(c.get("/api/v1/cases", params={"status": "closed"}), "status")


def test_a_facet_value_that_cannot_match_is_refused(tw: Any) -> None:
    c = bearer(tw, "analyst")
    _invalid(c.get("/api/v1/posts", params={"sentiment": "bad"}), "sentiment")  # not an empty page
    _invalid(c.get("/api/v1/posts", params={"kind": "tweet"}), "kind")
    _invalid(c.get("/api/v1/posts/export", params={"sentiment": "mixed"}), "sentiment")
    assert c.get("/api/v1/posts", params={"sentiment": "", "kind": ""}).json()["total"] == 7  # empty: any
    assert c.get("/api/v1/posts", params={"kind": "news"}).json()["total"] == 1


def test_a_saved_search_keeps_only_filters_the_posts_list_takes(tw: Any) -> None:
    c = bearer(tw, "analyst")
    r = c.post("/api/v1/searches", json={"name": "who", "filters": {"author": "p_0123"}})
    assert "unknown filter 'author'" in _invalid(r, "filters")  # was saved as an empty filter
    _invalid(c.post("/api/v1/searches", json={"name": "d", "filters": {"since": "last week"}}), "filters")
    _invalid(c.post("/api/v1/searches", json={"name": "s", "filters": {"sentiment": "angry"}}), "filters")
    with tw.store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(saved_searches)).scalar_one() == 0
    ok = c.post("/api/v1/searches", json={"name": "n", "filters": {"since": "2026-11-01", "sentiment": "negative"}})
    assert ok.status_code == 201 and ok.json()["filters"] == {"since": "2026-11-01", "sentiment": "negative"}


def test_nul_characters_are_a_422_on_every_store(tw: Any, db_url: str) -> None:
    c = bearer(tw, "analyst")
    url = f"/api/v1/cases/{tw.t.own_case}"
    _invalid(c.patch(url, json={"status": "investigating", "note": "a\x00b"}), "note")
    _invalid(c.post(f"{url}/notes", json={"text": "a\x00b"}), "text")
    _invalid(c.post("/api/v1/searches", json={"name": "n\x00"}), "name")
    _invalid(c.post("/api/v1/searches", json={"name": "n", "filters": {"lang": "e\x00"}}), "filters")
    assert _case_status(tw, tw.t.own_case) == "new"


def _case_status(web: Any, case_id: int) -> str:
    with web.store.connect() as conn:
        found = triage.get_case(conn, case_id)
    assert found is not None
    return str(found["status"])


def test_the_openapi_document_states_the_422_shape_the_api_sends(tw: Any) -> None:
    doc = bearer(tw, "viewer").get("/openapi.json").json()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            schema = op["responses"]["422"]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/InvalidOut"}, (method, path)
    invalid = doc["components"]["schemas"]["InvalidOut"]
    assert set(invalid["required"]) == {"error", "detail"}
    patch = doc["components"]["schemas"]["CasePatch"]
    assert patch["additionalProperties"] is False and "null" not in json.dumps(patch["properties"]["status"])


def test_the_openapi_document_declares_the_bearer_token(tw: Any) -> None:
    doc = bearer(tw, "viewer").get("/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    assert [s["scheme"].lower() for s in schemes.values() if s["type"] == "http"] == ["bearer"]
    name = next(iter(schemes))
    assert all(op.get("security") == [{name: []}] for ops in doc["paths"].values() for op in ops.values())
    assert tw.login("analyst").get("/api/v1/me").status_code == 200  # the session cookie still works


def _last_audit(web: Any) -> tuple[int, dict[str, Any]]:
    """How many audit records there are, and the newest one (its ``detail`` parsed)."""
    with web.store.connect() as conn:
        entries = list(audit.entries(conn))
        assert audit.verify(conn)
    last = dict(entries[-1])
    last["detail"] = json.loads(last["detail"]) if last["detail"] else None
    return len(entries), last


def test_a_refused_export_is_audited_like_a_refused_search(tw: Any) -> None:
    c = bearer(tw, "analyst")
    bad_q = {"q": "tips NEAR/5", "lang": "en"}
    r = c.get("/api/v1/posts", params=bad_q)
    assert r.status_code == 400 and r.json()["error"].startswith("q: ")
    n, searched = _last_audit(tw)
    assert (searched["action"], searched["target"]) == ("posts.search", "api:posts") and "error" in searched["detail"]

    r = c.get("/api/v1/posts/export", params={**bad_q, "format": "jsonl"})
    assert r.status_code == 400 and r.json()["error"].startswith("q: ")
    count, exported = _last_audit(tw)
    assert count == n + 1 and (exported["action"], exported["target"]) == ("posts.export", "api:posts")
    error = searched["detail"]["error"]
    assert exported["detail"] == {"q": "tips NEAR/5", "lang": "en", "format": "jsonl", "error": error}

    # the dashboard's download: every refused attempt is recorded too (target "posts", as its downloads are)
    page = tw.login("analyst")
    count = _last_audit(tw)[0]  # after the sign-in's own record
    for params, said in [
        ({"q": "tips NEAR/5"}, "The search is not valid"),
        ({"q": "tips", "format": "xlsx"}, "Unknown export format"),
        ({"since": "2026-11-20", "until": "2026-11-10"}, "is after To"),
    ]:
        n = count
        r = page.get("/posts/export", params=params)
        assert r.status_code == 400 and said in r.text, params
        count, exported = _last_audit(tw)
        assert count == n + 1 and (exported["action"], exported["target"]) == ("posts.export", "posts"), params
        assert "error" in exported["detail"] and "rows" not in exported["detail"], exported
    assert exported["detail"]["since"] == "2026-11-20" and exported["detail"]["until"] == "2026-11-10"


def test_until_before_since_is_refused_naming_it_not_an_empty_page(tw: Any) -> None:
    c = bearer(tw, "analyst")
    backwards = {"since": "2026-11-20", "until": "2026-11-10"}
    for path in ("/api/v1/posts", "/api/v1/posts/export"):
        r = c.get(path, params=backwards)
        assert _invalid(r, "until").startswith("until: before since"), path
        assert [d["loc"] for d in r.json()["detail"]] == [["query", "until"]]
    one_day = c.get("/api/v1/posts", params={"since": "2026-11-20", "until": "2026-11-20"})
    assert one_day.status_code == 200  # the same day is a one-day range
    assert c.get("/api/v1/posts", params={"since": "2026-11-10", "until": "2026-11-20"}).status_code == 200
    r = c.post("/api/v1/searches", json={"name": "never", "filters": backwards})
    assert "until: before since" in _invalid(r, "filters")  # a saved search that could never match
    # the dashboard's explorer stays lenient: the form is shown again with a notice naming the problem
    page = tw.login("analyst").get("/posts", params=backwards)
    assert page.status_code == 200 and "is after To" in page.text


def test_an_api_403_speaks_of_the_request_not_a_page(tw: Any) -> None:
    c = bearer(tw, "viewer")
    for path in ("/api/v1/posts", "/api/v1/posts/export", "/api/v1/audit", "/api/v1/cases"):
        r = c.get(path)
        assert r.status_code == 403, path
        error = r.json()["error"]
        assert "page" not in error and "request" in error and "viewer" in error, error
    assert "posts.read" in c.get("/api/v1/posts").json()["error"]  # the permission it lacks, as /me lists them
    html = tw.login("viewer").get("/posts")
    assert html.status_code == 403 and "You do not have access to this page." in html.text
    # a bare 403 under /api/ (no message of its own) gets the API's wording too
    from starlette.requests import Request

    from openear.web.app import render_error

    bare = render_error(Request({"type": "http", "method": "GET", "path": "/api/v1/x", "headers": []}), 403)
    assert json.loads(bytes(bare.body)) == {"error": "Your role may not make this request."}
