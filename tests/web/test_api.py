"""The REST API: tokens, posts with the query language, one post, labels, exports, saved searches, audit coverage."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC
from typing import Any

import pytest
from casework import seed
from sqlalchemy import func, select

from openear import audit
from openear.store.schema import api_tokens, audit_log, labels, posts
from openear.web import tokens
from openear.web.roles import iter_routes


def _token(web: Any, username: str) -> str:
    with web.store.begin() as conn:
        return tokens.create_token(conn, username, "test")[1]


def _bearer(web: Any, username: str) -> Any:
    c = web.client()
    c.headers["Authorization"] = f"Bearer {_token(web, username)}"
    return c


def _audit_count(web: Any) -> int:
    with web.store.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(audit_log)).scalar_one())


# -- tokens -----------------------------------------------------------------------------------------------------


def test_tokens_are_hashed_at_rest_and_act_with_the_users_role(web: Any) -> None:
    token = _token(web, "analyst")
    assert token.startswith("oe_") and len(token) > 40
    with web.store.connect() as conn:
        row = conn.execute(select(api_tokens)).mappings().one()
    assert token not in json.dumps({k: str(v) for k, v in row.items()})
    assert row["token_hash"] == tokens.token_hash(token) and row["role"] == "analyst"
    c = web.client()
    me = c.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["username"] == "analyst" and "posts.read" in me.json()["permissions"]
    assert c.get("/api/v1/me", headers={"Authorization": "Bearer oe_wrong"}).status_code == 401
    assert c.get("/api/v1/me").headers["www-authenticate"] == "Bearer"
    assert c.get("/", headers={"Authorization": f"Bearer {token}"}).status_code == 303  # tokens are for /api only


def test_a_token_stops_working_when_revoked_disabled_or_the_role_changes(web: Any) -> None:
    from sqlalchemy import update

    from openear.store.schema import users
    from openear.web.auth import set_disabled

    for change in ("revoke", "disable", "role"):
        token = _token(web, "analyst")
        h = {"Authorization": f"Bearer {token}"}
        c = web.client()
        assert c.get("/api/v1/me", headers=h).status_code == 200
        with web.store.begin() as conn:
            if change == "revoke":
                tid = conn.execute(select(api_tokens.c.id).where(api_tokens.c.token_hash == tokens.token_hash(token)))
                assert tokens.revoke_token(conn, tid.scalar_one())
            elif change == "disable":
                set_disabled(conn, "analyst", True)
            else:
                conn.execute(update(users).where(users.c.username == "analyst").values(role="admin"))
        assert c.get("/api/v1/me", headers=h).status_code == 401, change
        with web.store.begin() as conn:
            set_disabled(conn, "analyst", False)
            conn.execute(update(users).where(users.c.username == "analyst").values(role="analyst"))


def test_the_openapi_document_is_published_to_signed_in_users(web: Any) -> None:
    assert web.client().get("/openapi.json").status_code == 303
    doc = web.login("viewer").get("/openapi.json").json()
    paths = set(doc["paths"])
    assert {"/api/v1/posts", "/api/v1/posts/{post_id}", "/api/v1/aggregates", "/api/v1/posts/export"} <= paths
    assert all(p.startswith("/api/v1/") for p in paths)  # pages stay out of the API document
    params = [p["name"] for ops in doc["paths"].values() for op in ops.values() for p in op.get("parameters", [])]
    assert params and not [p for p in params if "author" in p.lower() or "pseudonym" in p.lower() or p == "sort"]
    lists = json.dumps(doc["components"]["schemas"]["PostOut"])
    assert "author" not in lists  # only a single post (PostDetail) carries the pseudonym


# -- posts ------------------------------------------------------------------------------------------------------


def test_posts_search_with_the_query_language_and_pagination(web: Any) -> None:
    c = _bearer(web, "analyst")
    everything = c.get("/api/v1/posts").json()
    assert everything["total"] == 7 and len(everything["items"]) == 7
    assert all("author_pseudonym" not in p for p in everything["items"])
    ids = [p["id"] for p in everything["items"]]
    page = c.get("/api/v1/posts", params={"limit": 2, "offset": 2}).json()
    assert [p["id"] for p in page["items"]] == ids[2:4] and page["total"] == 7
    tips = c.get("/api/v1/posts", params={"q": "tips -chat"}).json()
    assert tips["total"] == 0
    tips = c.get("/api/v1/posts", params={"q": "(tips OR pago) lang:en"}).json()
    assert {p["id"] for p in tips["items"]} == {web.ids["p4"], web.ids["p5"]}
    spanish = c.get("/api/v1/posts", params={"q": "llego", "lang": "es"}).json()
    assert [p["id"] for p in spanish["items"]] == [web.ids["p2"]]
    news = c.get("/api/v1/posts", params={"kind": "news"}).json()
    assert [p["id"] for p in news["items"]] == [web.ids["p7"]]
    bad = c.get("/api/v1/posts", params={"q": "app AND"})
    assert bad.status_code == 400 and "expected a term" in bad.json()["error"]
    assert c.get("/api/v1/posts", params={"q": "author:abc"}).status_code == 400  # no field selects by author
    assert c.get("/api/v1/posts", params={"limit": 0}).status_code == 422
    assert c.get("/api/v1/posts", params={"sort": "author_pseudonym"}).json()["total"] == 7  # ignored, never used


def test_one_post_has_labels_and_its_pseudonym(web: Any) -> None:
    c = _bearer(web, "admin")
    r = c.get(f"/api/v1/posts/{web.ids['p1']}").json()
    assert r["id"] == web.ids["p1"] and len(r["author_pseudonym"]) >= 16
    assert {lb["name"] for lb in r["labels"]} >= {"lang", "sentiment", "primary"}
    assert all("@" in lb["enricher"] for lb in r["labels"])
    assert c.get("/api/v1/posts/999999").status_code == 404


def test_viewers_and_owners_cannot_read_posts(web: Any) -> None:
    for role in ("viewer", "owner"):
        c = _bearer(web, role)
        assert c.get("/api/v1/posts").status_code == 403
        assert c.get(f"/api/v1/posts/{web.ids['p1']}").status_code == 403
        assert c.get("/api/v1/posts/export").status_code == 403
        assert c.get("/api/v1/aggregates").status_code == 200
        clusters = c.get("/api/v1/clusters").json()["items"]
        assert clusters and all(cl["post_id"] is None for cl in clusters)  # no way into posts
    assert _bearer(web, "analyst").get("/api/v1/clusters").json()["items"][0]["post_id"] is not None


def test_aggregates_carry_the_guards_counts(web: Any) -> None:
    r = _bearer(web, "viewer").get("/api/v1/aggregates", params={"since": "30d"}).json()
    assert r["totals"]["posts"] == 7 and r["totals"]["withheld"] == 1 and r["totals"]["rejected"] == 1
    assert sum(v["n"] for v in r["volume"]) == 7
    assert r["guard"]["withheld"] and r["guard"]["rejected"]
    assert _bearer(web, "viewer").get("/api/v1/aggregates", params={"since": "whenever"}).status_code == 400


# -- labels -----------------------------------------------------------------------------------------------------


def test_analyst_label_override_is_stored_as_analyst_label_and_audited(web: Any) -> None:
    pid = web.ids["p1"]
    c = _bearer(web, "analyst")
    r = c.put(f"/api/v1/posts/{pid}/labels/sentiment", json={"value": "positive"})
    assert r.status_code == 200 and r.json() == {"name": "sentiment", "to": "positive", "enricher": "analyst@analyst",
                                                 "changed": True}
    r = c.put(f"/api/v1/posts/{pid}/labels/primary", json={"value": "support"})
    assert r.status_code == 200
    c.put(f"/api/v1/posts/{pid}/labels/primary", json={"value": "pay_tips"})  # a second change replaces the first
    with web.store.connect() as conn:
        mine = conn.execute(
            select(labels.c.name, labels.c.value, labels.c.score)
            .where(labels.c.post_id == pid, labels.c.enricher == "analyst@analyst")
            .order_by(labels.c.name)
        ).all()
        post = conn.execute(select(posts.c.category, posts.c.sentiment).where(posts.c.id == pid)).one()
        changes = [e for e in audit.entries(conn) if e["action"] == "label.change"]
        assert audit.verify(conn)
    assert [tuple(m) for m in mine] == [("primary", "pay_tips", 1.0), ("sentiment", "positive", 1.0)]
    assert tuple(post) == ("pay_tips", "positive")
    assert len(changes) == 3 and all(e["target"] == f"post:{pid}" for e in changes)
    assert json.loads(changes[-1]["detail"])["from"] == "support"
    bad = c.put(f"/api/v1/posts/{pid}/labels/primary", json={"value": "union_organising"})
    assert bad.status_code == 400  # protected topics are not labels anyone can pick
    typo = c.put(f"/api/v1/posts/{pid}/labels/primary", json={"value": "account_standing"}).json()["error"]
    assert typo.startswith("primary: 'account_standing' is not one of ")  # names the values to pick from
    assert "account_status" in typo and "pay_tips" in typo and "union" not in typo
    assert c.put(f"/api/v1/posts/{pid}/labels/lang", json={"value": "en"}).status_code == 422
    assert c.put("/api/v1/posts/999999/labels/sentiment", json={"value": "positive"}).status_code == 404
    viewer = _bearer(web, "viewer")
    assert viewer.put(f"/api/v1/posts/{pid}/labels/sentiment", json={"value": "neutral"}).status_code == 403


# -- exports ----------------------------------------------------------------------------------------------------


def test_exports_in_three_formats_carry_the_notice_and_no_authors(web: Any) -> None:
    import pyarrow.parquet as pq

    c = _bearer(web, "analyst")
    before = _audit_count(web)
    r = c.get("/api/v1/posts/export", params={"format": "csv", "q": "tips"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"] and "withheld 1" in r.headers["x-openear-notice"]
    lines = r.text.splitlines()
    assert lines[0].startswith("# ") and "withheld 1 items" in lines[0]
    rows = list(csv.DictReader(io.StringIO("\n".join(lines[1:]))))
    assert {int(x["id"]) for x in rows} == {web.ids["p4"], web.ids["p5"]}
    assert "author_pseudonym" not in rows[0]

    r = c.get("/api/v1/posts/export", params={"format": "jsonl"})
    records = [json.loads(line) for line in r.text.splitlines()]
    assert "withheld" in records[0]["notice"] and len(records) == 8
    assert all("author_pseudonym" not in rec for rec in records)

    r = c.get("/api/v1/posts/export", params={"format": "parquet", "kind": "news"})
    table = pq.read_table(io.BytesIO(r.content))
    assert table.num_rows == 1 and "author_pseudonym" not in table.column_names
    assert str(table.schema.field("created_at").type) == "timestamp[us, tz=UTC]"  # a date, not a string to parse
    with web.store.connect() as conn:
        stored = conn.execute(select(posts.c.created_at).where(posts.c.id == table.column("id")[0].as_py())).scalar()
    assert table.column("created_at")[0].as_py() == stored.replace(tzinfo=UTC)  # the store's naive UTC
    assert b"withheld" in table.schema.metadata[b"openear.notice"]

    with web.store.connect() as conn:
        exports = [e for e in audit.entries(conn) if e["action"] == "posts.export"]
    assert _audit_count(web) == before + 3 and len(exports) == 3
    assert json.loads(exports[0]["detail"]) == {"format": "csv", "q": "tips", "rows": 2}
    assert {e["target"] for e in exports} == {"api:posts"}  # told apart from the explorer's downloads


def test_csv_export_defuses_spreadsheet_formulas(web: Any) -> None:
    web.add_posts([("f1", 1, '=HYPERLINK("http://evil") the app froze', None, "social", "public")], "other")
    text = _bearer(web, "analyst").get("/api/v1/posts/export", params={"q": "froze"}).text
    assert "'=HYPERLINK" in text


def test_explorer_download_links_export_the_same_search(web: Any) -> None:
    c = web.login("analyst")
    page = c.get("/posts", params={"q": "tips", "lang": "en"}).text
    assert 'href="/posts/export?q=tips&amp;lang=en&amp;format=csv"' in page
    r = c.get("/posts/export", params={"q": "tips", "lang": "en", "format": "csv"})
    assert r.status_code == 200 and r.text.startswith("# Exported from")
    with web.store.connect() as conn:
        assert [e["target"] for e in audit.entries(conn) if e["action"] == "posts.export"] == ["posts"]
    assert c.get("/posts/export", params={"format": "xlsx"}).status_code == 400
    assert web.login("viewer").get("/posts/export").status_code == 403


def test_the_export_notice_names_any_organisation_without_a_possessive(web: Any) -> None:
    import dataclasses

    from openear.web.exports import guard_notice

    web.app.state.settings = dataclasses.replace(web.settings, organisation="openear demo (synthetic data)")
    c = web.login("analyst")
    first = c.get("/posts/export", params={"q": "tips", "format": "csv"}).text.splitlines()[0]
    assert first.startswith("# Exported from openear (organisation: openear demo (synthetic data)) on ")
    assert "'s openear" not in first
    header = _bearer(web, "analyst").get("/api/v1/posts/export", params={"q": "tips"}).headers["x-openear-notice"]
    assert "Exported from openear (organisation: openear demo (synthetic data)) on " in header
    assert guard_notice({}, "Acme's Couriers").startswith("Exported from openear (organisation: Acme's Couriers) on ")
    assert guard_notice({}).startswith("Exported from openear on ")  # the default name is not repeated


# -- saved searches ---------------------------------------------------------------------------------------------


def test_saved_searches_belong_to_their_user(web: Any) -> None:
    a = _bearer(web, "analyst")
    made = a.post("/api/v1/searches", json={"name": "Late pay", "query": "pago OR pay", "filters": {"lang": "es"}})
    assert made.status_code == 201, made.text
    sid = made.json()["id"]
    assert [s["name"] for s in a.get("/api/v1/searches").json()] == ["Late pay"]
    other = _bearer(web, "admin")
    assert other.get("/api/v1/searches").json() == []
    assert other.delete(f"/api/v1/searches/{sid}").status_code == 404  # not theirs: as if not there
    bad = a.post("/api/v1/searches", json={"name": "x", "filters": {"author": "abc"}})
    assert bad.status_code == 422 and "unknown filter 'author'" in bad.json()["error"]  # named, never saved
    assert a.delete(f"/api/v1/searches/{sid}").status_code == 204
    assert a.delete(f"/api/v1/searches/{sid}").status_code == 404


def test_saved_searches_on_the_posts_page(web: Any) -> None:
    c = web.login("analyst")
    r = c.post("/searches", data={"name": "Tips in English", "query": "tips", "filters": "lang=en&page=3"})
    assert r.status_code == 303 and r.headers["location"] == "/posts?q=tips&lang=en"
    page = c.get("/posts").text
    assert "Tips in English" in page and 'href="/posts?q=tips&amp;lang=en"' in page
    sid = int(page.split('action="/searches/')[1].split("/")[0])
    assert web.login("admin").post(f"/searches/{sid}/delete", data={"confirm": "1"}).status_code == 404
    assert c.post(f"/searches/{sid}/delete", data={"confirm": "1"}).status_code == 303
    assert "Tips in English" not in c.get("/posts").text


def test_an_unreadable_query_is_not_saved_and_the_api_says_why(web: Any) -> None:
    a = _bearer(web, "analyst")
    before = _audit_count(web)
    bad = a.post("/api/v1/searches", json={"name": "Broken", "query": "tips NEAR/5", "filters": {}})
    assert bad.status_code == 400
    assert bad.json()["error"] == "The search could not be read: col 12: expected a term after NEAR/5"
    assert a.get("/api/v1/searches").json() == [] and _audit_count(web) == before + 1  # only the list is audited
    good = a.post("/api/v1/searches", json={"name": "Fine", "query": "tips NEAR/5 app"})
    assert good.status_code == 201 and good.json()["query"] == "tips NEAR/5 app"
    assert a.post("/api/v1/searches", json={"name": "Everything", "query": "  "}).status_code == 201


# -- audit coverage ---------------------------------------------------------------------------------------------

READS = [
    ("viewer", "/api/v1/me"),
    ("viewer", "/api/v1/aggregates"),
    ("viewer", "/api/v1/clusters"),
    ("viewer", "/api/v1/clusters/{cluster}"),
    ("viewer", "/api/v1/clusters/999999"),
    ("analyst", "/api/v1/cases"),
    ("owner", "/api/v1/cases?status=new"),
    ("analyst", "/api/v1/cases/{case}"),
    ("owner", "/api/v1/cases/{other_case}"),
    ("analyst", "/api/v1/cases/999999"),
    ("owner", "/api/v1/alerts"),
    ("owner", "/api/v1/alerts/{alert}"),
    ("owner", "/api/v1/alerts/{other_alert}"),
    ("viewer", "/api/v1/reports"),
    ("viewer", "/api/v1/reports/{report}"),
    ("viewer", "/api/v1/reports/999999"),
    ("analyst", "/api/v1/posts"),
    ("analyst", "/api/v1/posts?q=app"),
    ("analyst", "/api/v1/posts?q=app%20AND"),
    ("analyst", "/api/v1/posts/{p1}"),
    ("analyst", "/api/v1/posts/999999"),
    ("analyst", "/api/v1/posts/export?format=jsonl"),
    ("analyst", "/api/v1/searches"),
    ("admin", "/api/v1/sources"),
    ("admin", "/api/v1/audit"),
    ("admin", "/api/v1/users"),
    ("analyst", "/"),
    ("analyst", "/posts"),
    ("analyst", "/posts?q=pay"),
    ("analyst", "/posts/{p1}"),
    ("analyst", "/posts/export?format=csv"),
    ("admin", "/sources"),
    ("admin", "/admin/users"),
    ("admin", "/admin/audit"),
    ("admin", "/admin/audit/export?format=jsonl"),
    ("admin", "/admin/settings"),
    ("owner", "/cases"),
    ("owner", "/cases/{case}"),
    ("owner", "/cases/{other_case}"),
    ("analyst", "/cases/{case}"),
    ("owner", "/alerts"),
    ("viewer", "/reports"),
    ("viewer", "/reports/{report}"),
]


@pytest.mark.parametrize(("role", "path"), READS)
def test_every_read_writes_exactly_one_audit_record(web: Any, role: str, path: str) -> None:
    t = seed(web)
    c = web.login(role)
    before = _audit_count(web)
    r = c.get(
        path.format(
            p1=web.ids["p1"],
            cluster=t.cluster,
            case=t.own_case,
            other_case=t.other_case,
            report=t.html_report,
            alert=t.own_alert,
            other_alert=t.other_alert,
        )
    )
    assert r.status_code in (200, 400, 404), r.text
    assert _audit_count(web) == before + 1
    with web.store.connect() as conn:
        last = conn.execute(select(audit_log).order_by(audit_log.c.id.desc()).limit(1)).mappings().one()
        assert audit.verify(conn)
    assert last["actor"] == role


def test_every_api_read_endpoint_is_in_the_coverage_list(web: Any) -> None:
    import re

    listed = {re.sub(r"\{[^}]+\}|\d{6}", "{}", p.split("?")[0]) for _, p in READS}
    found = [path for method, path, _ in iter_routes(web.app.routes) if method == "GET" and path.startswith("/api/")]
    assert len(found) >= 15  # the walk reaches the routes inside included routers
    for path in found:
        assert re.sub(r"\{[^}]+\}", "{}", path) in listed, f"add {path} to READS"
