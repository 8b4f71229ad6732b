"""Setting a post's label to the value it has changes nothing: no label row, no audit record (API and dashboard)."""

from __future__ import annotations

import json
from typing import Any

from casework import bearer
from sqlalchemy import func, select

from openear import audit
from openear.labels import nice
from openear.store.schema import audit_log, labels, posts
from openear.web import labeling


def _audit_count(web: Any) -> int:
    with web.store.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(audit_log)).scalar_one())


def _label_rows(web: Any, pid: int) -> list[tuple[Any, ...]]:
    """Every label row of the post, ids included (a delete and re-insert would show as a new id)."""
    with web.store.connect() as conn:
        rows = conn.execute(
            select(labels.c.id, labels.c.name, labels.c.value, labels.c.enricher)
            .where(labels.c.post_id == pid)
            .order_by(labels.c.id)
        ).all()
    return [tuple(r) for r in rows]


def _current(web: Any, pid: int) -> tuple[str, str]:
    with web.store.connect() as conn:
        return tuple(conn.execute(select(posts.c.category, posts.c.sentiment).where(posts.c.id == pid)).one())


def _changes(web: Any) -> list[dict[str, Any]]:
    with web.store.connect() as conn:
        assert audit.verify(conn)
        return [json.loads(e["detail"]) for e in audit.entries(conn) if e["action"] == "label.change"]


def _other(value: str, choices: list[str]) -> str:
    return next(c for c in choices if c != value)


def test_api_label_to_its_current_value_writes_nothing(web: Any) -> None:
    pid = web.ids["p1"]
    allowed = labeling.choices(web.settings.taxonomy_path)
    category, sentiment = _current(web, pid)
    assert category in allowed["primary"] and sentiment in allowed["sentiment"]
    c = bearer(web, "analyst")

    new = _other(sentiment, allowed["sentiment"])
    r = c.put(f"/api/v1/posts/{pid}/labels/sentiment", json={"value": new})
    assert r.status_code == 200
    assert r.json() == {"name": "sentiment", "to": new, "enricher": "analyst@analyst", "changed": True}
    assert _changes(web) == [{"name": "sentiment", "from": sentiment, "to": new, "enricher": "analyst@analyst"}]

    # the same value again, by this analyst or another: nothing written, the first analyst's label row kept
    rows, count = _label_rows(web, pid), _audit_count(web)
    for who in ("analyst", "admin"):
        again = bearer(web, who).put(f"/api/v1/posts/{pid}/labels/sentiment", json={"value": new})
        assert again.status_code == 200, who
        assert again.json() == {"name": "sentiment", "to": new, "enricher": "analyst@analyst", "changed": False}
        assert _label_rows(web, pid) == rows and _audit_count(web) == count, who
    assert _current(web, pid) == (category, new)

    # the model's category, confirmed, is a change of that one field: it becomes the analyst's label
    r = c.put(f"/api/v1/posts/{pid}/labels/primary", json={"value": category})
    assert r.status_code == 200 and r.json()["changed"] is True
    assert _audit_count(web) == count + 1
    assert _changes(web)[1:] == [{"name": "primary", "from": category, "to": category, "enricher": "analyst@analyst"}]
    assert _current(web, pid) == (category, new)
    rows, count = _label_rows(web, pid), _audit_count(web)
    assert c.put(f"/api/v1/posts/{pid}/labels/primary", json={"value": category}).json()["changed"] is False
    assert _label_rows(web, pid) == rows and _audit_count(web) == count


def test_dashboard_label_to_its_current_value_writes_nothing_and_says_so(web: Any) -> None:
    pid = web.ids["p4"]
    allowed = labeling.choices(web.settings.taxonomy_path)
    category, sentiment = _current(web, pid)
    c = web.login("analyst")

    new = _other(category, allowed["primary"])
    r = c.post(f"/posts/{pid}/labels", data={"name": "primary", "value": new})
    assert r.status_code == 303 and r.headers["location"] == f"/posts/{pid}?changed=primary"
    assert _changes(web) == [{"name": "primary", "from": category, "to": new, "enricher": "analyst@analyst"}]
    assert _current(web, pid) == (new, sentiment)  # only the field changed
    page = c.get(r.headers["location"]).text
    assert "Saved your category." in page and "Nothing changed" not in page

    rows, count = _label_rows(web, pid), _audit_count(web)
    r = c.post(f"/posts/{pid}/labels", data={"name": "primary", "value": new})
    assert r.status_code == 303 and r.headers["location"] == f"/posts/{pid}?unchanged=primary"
    assert _label_rows(web, pid) == rows and _audit_count(web) == count and len(_changes(web)) == 1
    page = c.get(r.headers["location"]).text
    assert f"Nothing changed: the post's category was already {nice(new)}." in page
    assert "Saved your category" not in page
